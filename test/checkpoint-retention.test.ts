import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  InvalidRetentionPolicy,
  keepBestN,
  keepEveryNSteps,
  keepLastN,
  retain,
  type RetentionCandidate,
  type RetentionPolicy,
} from '../lib/checkpoint';

const candidates = (steps: number[], losses: Record<number, number> = {}): RetentionCandidate[] =>
  steps.map((step) => (step in losses ? { step, metrics: { valLoss: losses[step] } } : { step }));

describe('retention policies are checked data', () => {
  it('refuses keepLastN below 2, naming why', () => {
    assert.throws(
      () => keepLastN(1),
      (err: unknown) => err instanceof InvalidRetentionPolicy && /keep at least 2/.test(err.message),
    );
    assert.throws(() => keepLastN(0), InvalidRetentionPolicy);
    assert.throws(() => keepLastN(2.5), InvalidRetentionPolicy);
    assert.throws(() => retain(candidates([1, 2]), [{ kind: 'keepLastN', n: 1 }]), InvalidRetentionPolicy);
  });

  it('refuses an empty policy list, bad milestones and bad best-N settings', () => {
    assert.throws(() => retain(candidates([1]), []), InvalidRetentionPolicy);
    assert.throws(() => keepEveryNSteps(0), InvalidRetentionPolicy);
    assert.throws(() => keepBestN(0, 'valLoss'), InvalidRetentionPolicy);
    assert.throws(() => keepBestN(1, ''), InvalidRetentionPolicy);
    assert.throws(() => keepBestN(1, 'acc', 'up' as 'max'), InvalidRetentionPolicy);
  });

  it('round-trips through JSON, as a spec would carry it', () => {
    const policies = [keepLastN(3), keepEveryNSteps(1000), keepBestN(2, 'valLoss', 'min')];
    assert.deepEqual(JSON.parse(JSON.stringify(policies)), policies);
  });
});

describe('retain()', () => {
  it('keeps the last N', () => {
    assert.deepEqual(retain(candidates([10, 20, 30, 40]), [keepLastN(2)]), {
      keep: [30, 40],
      milestonesToCold: [],
      delete: [10, 20],
    });
  });

  it('marks every Nth step as a milestone for cold', () => {
    assert.deepEqual(retain(candidates([100, 200, 300, 400, 500]), [keepLastN(2), keepEveryNSteps(200)]), {
      keep: [400, 500],
      milestonesToCold: [200, 400],
      delete: [100, 300],
    });
  });

  it('keeps the best N by a metric, min or max, ties to the newer', () => {
    const losses = { 1: 0.9, 2: 0.5, 3: 0.7, 4: 0.5, 5: 0.8, 6: 0.95 };
    assert.deepEqual(
      retain(candidates([1, 2, 3, 4, 5, 6], losses), [keepBestN(2, 'valLoss', 'min')], 6).keep,
      [2, 4, 6],
    );
    assert.deepEqual(retain(candidates([1, 2, 3, 4, 5, 6], losses), [keepBestN(1, 'valLoss', 'min')], 6).keep, [4, 6]);
    assert.deepEqual(retain(candidates([1, 2, 3, 4, 5, 6], losses), [keepBestN(1, 'valLoss', 'max')], 6).keep, [6]);
    assert.deepEqual(retain(candidates([1, 2, 3, 4, 5, 6], losses), [keepBestN(1, 'valLoss', 'max')], 5).keep, [5, 6]);
    // A checkpoint without the metric never counts as best.
    assert.deepEqual(retain(candidates([1, 2, 3], { 1: 2 }), [keepBestN(2, 'valLoss', 'min')], 3).keep, [1, 3]);
  });

  it('never deletes the checkpoint latest names', () => {
    assert.deepEqual(retain(candidates([10, 20, 30, 40, 50]), [keepLastN(2)], 20), {
      keep: [20, 40, 50],
      milestonesToCold: [],
      delete: [10, 30],
    });
  });

  it('with no latest pointer, protects the newest', () => {
    assert.deepEqual(retain(candidates([10, 20]), [keepEveryNSteps(1000)]).keep, [20]);
  });
});

const policyArb: fc.Arbitrary<RetentionPolicy> = fc.oneof(
  fc.integer({ min: 2, max: 6 }).map(keepLastN),
  fc.integer({ min: 1, max: 50 }).map(keepEveryNSteps),
  fc
    .record({ n: fc.integer({ min: 1, max: 4 }), mode: fc.constantFrom('min' as const, 'max' as const) })
    .map((p) => keepBestN(p.n, 'valLoss', p.mode)),
);

const scenarioArb = fc
  .record({
    steps: fc.uniqueArray(fc.integer({ min: 0, max: 500 }), { minLength: 1, maxLength: 30 }),
    policies: fc.array(policyArb, { minLength: 1, maxLength: 4 }),
    losses: fc.array(fc.option(fc.double({ min: 0, max: 10, noNaN: true }), { nil: undefined }), {
      minLength: 30,
      maxLength: 30,
    }),
    latestIndex: fc.nat(),
  })
  .map(({ steps, policies, losses, latestIndex }) => ({
    checkpoints: steps.map((step, i) =>
      losses[i] === undefined ? { step } : { step, metrics: { valLoss: losses[i] } },
    ) as RetentionCandidate[],
    policies,
    latest: steps[latestIndex % steps.length],
  }));

describe('retain() properties', () => {
  it('never deletes latest, and every checkpoint lands in exactly one of kept/milestone vs deleted', () => {
    fc.assert(
      fc.property(scenarioArb, ({ checkpoints, policies, latest }) => {
        const plan = retain(checkpoints, policies, latest);
        assert.ok(!plan.delete.includes(latest));
        assert.ok(plan.keep.includes(latest));
        const survivors = new Set([...plan.keep, ...plan.milestonesToCold]);
        for (const step of plan.delete) assert.ok(!survivors.has(step));
        const all = new Set(checkpoints.map((c) => c.step));
        assert.equal(survivors.size + plan.delete.length, all.size);
      }),
    );
  });

  it('honours keepLastN: the newest N always survive in hot/warm', () => {
    fc.assert(
      fc.property(scenarioArb, ({ checkpoints, policies, latest }) => {
        const plan = retain(checkpoints, policies, latest);
        const newest = checkpoints.map((c) => c.step).sort((a, b) => b - a);
        for (const policy of policies) {
          if (policy.kind !== 'keepLastN') continue;
          for (const step of newest.slice(0, policy.n)) assert.ok(plan.keep.includes(step), `step ${step}`);
        }
        // At least two survive whenever a keepLastN is present and there are two to keep.
        if (policies.some((p) => p.kind === 'keepLastN') && newest.length >= 2) assert.ok(plan.keep.length >= 2);
      }),
    );
  });

  it('is the union of the policies taken one at a time', () => {
    fc.assert(
      fc.property(scenarioArb, ({ checkpoints, policies, latest }) => {
        const together = retain(checkpoints, policies, latest);
        const keep = new Set<number>();
        const milestones = new Set<number>();
        for (const policy of policies) {
          const alone = retain(checkpoints, [policy], latest);
          alone.keep.forEach((s) => keep.add(s));
          alone.milestonesToCold.forEach((s) => milestones.add(s));
        }
        assert.deepEqual(
          together.keep,
          [...keep].sort((a, b) => a - b),
        );
        assert.deepEqual(
          together.milestonesToCold,
          [...milestones].sort((a, b) => a - b),
        );
      }),
    );
  });

  it('does not depend on the order checkpoints are listed in', () => {
    fc.assert(
      fc.property(scenarioArb, fc.func(fc.integer()), ({ checkpoints, policies, latest }, key) => {
        const shuffled = [...checkpoints].sort((a, b) => key(a.step) - key(b.step));
        assert.deepEqual(retain(shuffled, policies, latest), retain(checkpoints, policies, latest));
      }),
    );
  });
});
