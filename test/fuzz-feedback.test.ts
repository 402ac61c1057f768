import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidFeedback, parseFeedbackBatch, validateFeedbackBatch } from '../lib/contracts/feedback';

const good = {
  id: 'evt-1',
  ts: '2026-11-25T10:00:00Z',
  modelVersion: 'sample@v1',
  prompt: 'Call me Ishmael.',
  response: 'Some years ago.',
  rating: { thumbs: 'up' },
  user: 'a'.repeat(64),
};

/** An event with one field replaced by anything, removed, or an unknown field added. */
const mutated = fc.oneof(
  fc.tuple(fc.constantFrom(...Object.keys(good)), fc.anything()).map(([k, v]) => ({ ...good, [k]: v })),
  fc.constantFrom(...Object.keys(good)).map((k) => Object.fromEntries(Object.entries(good).filter(([x]) => x !== k))),
  fc.tuple(fc.string(), fc.anything()).map(([k, v]) => ({ ...good, [k]: v })),
  fc.anything(),
);

describe('the feedback API under hostile input', () => {
  it('names every bad event by index and field, and refuses the whole batch', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.constant(good), mutated), { maxLength: 12 }), (events) => {
        const problems = validateFeedbackBatch(events);
        for (const p of problems) {
          assert.ok(Number.isInteger(p.index) && p.index >= 0 && p.index < events.length);
          assert.equal(typeof p.field, 'string');
          assert.ok(p.message.length > 0);
        }
        try {
          const parsed = parseFeedbackBatch(events);
          assert.equal(problems.length, 0, 'a batch with problems is never accepted');
          assert.equal(parsed.length, events.length, 'nothing dropped silently');
        } catch (err) {
          assert.ok(err instanceof InvalidFeedback, `untyped error: ${String(err)}`);
          assert.ok(problems.length > 0);
          // Every event that is itself bad is named.
          const named = new Set(problems.map((p) => p.index));
          events.forEach((e, i) => {
            if (validateFeedbackBatch([e]).length > 0) assert.ok(named.has(i), `event ${i} not named`);
          });
        }
      }),
      { numRuns: 300 },
    );
  });

  it('refuses oversized events and raw user ids, naming the field', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1025, max: 4096 }), (limit) => {
        const big = { ...good, response: 'x'.repeat(limit + 10) };
        const problems = validateFeedbackBatch([good, big], { maxEventBytes: limit });
        assert.deepEqual(
          problems.map((p) => p.index),
          [1],
        );
      }),
      { numRuns: 20 },
    );
    const raw = validateFeedbackBatch([{ ...good, user: 'alice@example.org' }]);
    assert.deepEqual(
      raw.map((p) => [p.index, p.field]),
      [[0, 'user']],
    );
  });
});
