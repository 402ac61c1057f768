import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { forEachLimit, mapLimit } from '../lib/common';

function deferred<T>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every settled promise's callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('mapLimit', () => {
  it('returns the results in item order, whatever order the calls finish in', async () => {
    const items = [5, 1, 4, 2, 3];
    const results = await mapLimit(items, 2, async (ms, i) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return `${i}:${ms}`;
    });
    assert.deepEqual(results, ['0:5', '1:1', '2:4', '3:2', '4:3']);
  });

  it('never has more than `limit` calls in flight, and uses all of them', async () => {
    let inFlight = 0;
    let most = 0;
    await mapLimit(
      Array.from({ length: 20 }, (_, i) => i),
      4,
      async (i) => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((resolve) => setTimeout(resolve, i % 3));
        inFlight--;
      },
    );
    assert.equal(most, 4);
    assert.equal(inFlight, 0);
  });

  it('starts nothing after the first failure, waits for the calls in flight, and throws the first failure', async () => {
    const gates = Array.from({ length: 6 }, () => deferred<number>());
    const started: number[] = [];
    const finished: number[] = [];
    const run = mapLimit([0, 1, 2, 3, 4, 5], 3, async (i) => {
      started.push(i);
      try {
        return await gates[i].promise;
      } finally {
        finished.push(i);
      }
    });
    let outcome: unknown;
    void run.catch((err: unknown) => {
      outcome = err;
    });
    await settle();
    assert.deepEqual(started, [0, 1, 2]);

    const first = new Error('first');
    gates[1].reject(first);
    await settle();
    gates[2].reject(new Error('second'));
    await settle();
    assert.equal(outcome, undefined, 'item 0 is still running');
    assert.deepEqual(started, [0, 1, 2], 'no new call after the failure');

    gates[0].resolve(0);
    await assert.rejects(run, (err: unknown) => err === first);
    assert.deepEqual(started, [0, 1, 2]);
    assert.deepEqual([...finished].sort(), [0, 1, 2]);
  });

  it('returns an empty list for no items and refuses a limit below 1', async () => {
    assert.deepEqual(await mapLimit([], 3, async () => 1), []);
    await assert.rejects(
      mapLimit([1], 0, async () => 1),
      RangeError,
    );
  });
});

describe('forEachLimit', () => {
  it('calls fn once per item with its index', async () => {
    const seen: string[] = [];
    await forEachLimit(['a', 'b', 'c'], 2, async (item, i) => {
      seen[i] = item;
    });
    assert.deepEqual(seen, ['a', 'b', 'c']);
  });
});
