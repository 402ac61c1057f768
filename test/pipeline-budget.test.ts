import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  CARRY_PAGE_BYTES,
  ExecutionBudget,
  ExecutionFull,
  type CarryEntries,
  type CarryStore,
} from '../workflows/pipeline-budget';

/** A history that does not grow, and one that grows past the per-execution limit at every look. */
const quiet = () => ({ events: 0, bytes: 0 });
let growth = 0;
const grown = () => ({ events: (growth += 30_000), bytes: 0 });

function memoryStore(): CarryStore & { pages: Map<string, CarryEntries> } {
  const pages = new Map<string, CarryEntries>();
  return {
    pages,
    async save(execution, page, entries) {
      pages.set(`${execution}/${page}`, JSON.parse(JSON.stringify(entries)));
    },
    async load(execution, page) {
      const entries = pages.get(`${execution}/${page}`);
      if (!entries) throw new Error(`no page ${execution}/${page}`);
      return entries;
    },
  };
}

describe('ExecutionBudget (the pipeline continuing as new)', () => {
  it('stops starting work at its limit, lets started work finish, then carries exactly the finished results', async () => {
    const store = memoryStore();
    const first = new ExecutionBudget({ maxActivitiesPerExecution: 5 }, quiet);
    first.storeWith(store);
    const calls: number[] = [];
    const work = (b: ExecutionBudget) => (i: number) =>
      b.once(`item/${i}`, async () => {
        calls.push(i);
        await new Promise((r) => setTimeout(r, 1 + (i % 3)));
        return { i, twice: 2 * i };
      });
    await assert.rejects(first.mapBounded(20, work(first)), ExecutionFull);
    assert.deepEqual(calls, [0, 1, 2, 3, 4]);
    const carry = await first.persist();
    assert.deepEqual(carry, { execution: 2, saved: [{ execution: 1, pages: 1 }] });

    // The next execution reads them back and starts only what is left, five at a time.
    calls.length = 0;
    const second = new ExecutionBudget({ maxActivitiesPerExecution: 5, carry }, quiet);
    second.storeWith(store);
    await second.restore();
    await assert.rejects(second.mapBounded(20, work(second)), ExecutionFull);
    assert.deepEqual(calls, [5, 6, 7, 8, 9]);

    // With room for everything, the results come back in index order, carried and new alike.
    // Each execution saves only what it finished; the carry lists every execution's pages.
    const secondCarry = await second.persist();
    assert.deepEqual(secondCarry, {
      execution: 3,
      saved: [
        { execution: 1, pages: 1 },
        { execution: 2, pages: 1 },
      ],
    });
    assert.deepEqual(
      store.pages
        .get('2/0')!
        .map(([key]) => key)
        .sort(),
      ['item/5', 'item/6', 'item/7', 'item/8', 'item/9'],
    );
    const third = new ExecutionBudget({ carry: secondCarry }, quiet);
    third.storeWith(store);
    await third.restore();
    const results = await third.mapBounded(20, work(third));
    assert.deepEqual(
      results.map((r) => r.twice),
      Array.from({ length: 20 }, (_, i) => 2 * i),
    );
  });

  it('continues when its history has grown enough since the read-back, but always starts at least one activity', async () => {
    const budget = new ExecutionBudget({}, grown);
    budget.storeWith(memoryStore());
    assert.equal(await budget.once('a', async () => 1), 1);
    await assert.rejects(
      budget.once('b', async () => 2),
      ExecutionFull,
    );
    assert.equal(await budget.once('a', async () => assert.fail('carried results are not recomputed')), 1);
  });

  it('saves large carries in pages below the payload limit, and remembers undefined results as null', async () => {
    const store = memoryStore();
    const budget = new ExecutionBudget({ maxActivitiesPerExecution: 10_000 }, quiet);
    budget.storeWith(store);
    const blob = 'x'.repeat(1000);
    for (let i = 0; i < 1500; i++) await budget.once(`k/${i}`, async () => ({ blob, i }));
    await budget.once('nothing', async () => undefined);
    const carry = await budget.persist();
    assert.ok(carry.saved[0].pages >= 3, `${carry.saved[0].pages} pages`);
    for (const entries of store.pages.values()) assert.ok(JSON.stringify(entries).length <= CARRY_PAGE_BYTES + 2048);

    const next = new ExecutionBudget({ carry }, quiet);
    next.storeWith(store);
    await next.restore();
    assert.deepEqual(await next.once('k/1499', async () => assert.fail('carried')), { blob, i: 1499 });
    assert.equal(await next.once('nothing', async () => assert.fail('carried')), null);
  });
});
