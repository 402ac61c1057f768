import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, ScheduleOverlapPolicy } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect/sample-corpus';
import { ModelRegistry } from '../lib/registry';
import type { FlywheelInput, FlywheelProgress } from '../lib/contracts/flywheel';
import { tieredStoreFromConfig } from '../lib/storage';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { temporalAddress, testConfig } from './support/temporal';

const corpus = sampleCorpus('moby-dick').documents;
const DAY = new Date('2026-11-26T02:00:00Z');

/** A day of feedback on chapters the base dataset does not have: corrections, ratings, an unknown version. */
function feedbackOn(chapters: number[], prefix: string, modelVersion: string) {
  return chapters.map((c, i) => {
    const text = corpus[c].text;
    const cut = text.indexOf(' ', 200);
    const base = {
      id: `${prefix}-${c}`,
      ts: `2026-11-25T${String(10 + (i % 10)).padStart(2, '0')}:00:00Z`,
      modelVersion: i === 1 ? 'fw@v9' : modelVersion,
      prompt: text.slice(0, cut),
      user: 'a'.repeat(64),
    };
    // Every third is a thumbs-down of a bad answer (left out); the rest correct it or rate a good one.
    if (i % 3 === 2) return { ...base, response: 'whale whale whale', rating: { thumbs: 'down' as const } };
    if (i % 3 === 1) return { ...base, response: text.slice(cut), rating: { score: 0.9 } };
    return { ...base, response: 'I do not know.', rating: { thumbs: 'down' as const }, correction: text.slice(cut) };
  });
}

describe('the data flywheel', () => {
  let connection: Connection;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let flywheel: FlywheelClient;
  const registry = () => new ModelRegistry(tieredStoreFromConfig(config));
  const spec: FlywheelInput = {
    model: 'fw',
    training: { steps: 30, segmentSteps: 30, checkpointEvery: 15 },
    gate: { minImprovement: 0.0001, guards: [{ metric: 'feedback.valLoss', tolerance: 0.5 }] },
    schedule: { cron: '0 2 * * *', timezone: 'Europe/Berlin', catchupWindow: '2h' },
  };

  async function submitAndFlush(events: unknown[]) {
    const receipt = await flywheel.submitFeedback(events, { ledger: { flushIntervalMs: 200 } });
    await flywheel.waitFeedbackFlushed(receipt.ledgers);
    return receipt;
  }

  before(async () => {
    const address = await temporalAddress();
    config = testConfig(address);
    workers = await createWorkers(config);
    running = workers.run();
    connection = await Connection.connect({ address });
    flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: config.worker.taskQueuePrefix });
    const data = await flywheel.runPipeline({
      dataset: 'fw-base',
      sources: [{ type: 'sample', limit: 30 }],
      dedup: { exact: true, near: {} },
      shards: { targetBytes: 1 << 20, validationFraction: 0.1 },
    });
    const trained = await flywheel.runTraining({
      run: 'fw-first',
      model: 'fw',
      dataset: data.manifest.uri,
      trainer: {
        seed: 3,
        model: { contextTokens: 3, embeddingDim: 16, hiddenDim: 32, maxVocab: 768 },
        sequenceTokens: 32,
        batch: { microBatchSizePerGpu: 8, gradientAccumulationSteps: 1 },
      },
      steps: 40,
      segmentSteps: 40,
      checkpointEvery: 20,
    });
    assert.deepEqual(trained.model, { name: 'fw', version: 'v1' });
  });

  after(async () => {
    await workers.shutdown();
    await running;
    await connection.close();
  });

  it('with no feedback finishes at once with decision no-data', { timeout: 60_000 }, async () => {
    const result = await flywheel.runFlywheel(spec, { at: DAY });
    assert.equal(result.decision, 'no-data');
    assert.equal(result.events, 0);
    assert.equal(result.championAfter, 'v1');
  });

  it(
    'promotes a better challenger and rejects a worse one; a failed one leaves the champion',
    { timeout: 600_000 },
    async () => {
      const first = feedbackOn([60, 61, 62, 63, 64, 65, 66, 67, 68], 'day1', 'fw@v1');
      // A correction that repeats a chapter the base dataset has: near-dedup drops it.
      first.push({ ...first[0], id: 'day1-dup', correction: corpus[4].text, modelVersion: 'v1' });
      await submitAndFlush(first);

      // A challenger that passes the gate waits for a human here; the approval is recorded with the decision.
      const handle = await flywheel.startFlywheel(
        { ...spec, approval: { timeout: '1h', default: 'reject' } },
        { at: DAY },
      );
      for (;;) {
        const p = await handle.query<FlywheelProgress>('progress');
        if (p.stage === 'approval') break;
        assert.ok(p.stage !== 'done', 'the run must wait for approval');
        await new Promise((r) => setTimeout(r, 200));
      }
      await handle.signal('approve', { by: 'reviewer-1', note: 'looks good' });
      const promoted = await handle.result();
      assert.equal(promoted.decision, 'promote', promoted.reasons.join('; '));
      assert.ok(promoted.reasons.includes('approved by reviewer-1'), promoted.reasons.join('; '));
      assert.equal(promoted.events, first.length);
      assert.ok(promoted.newDocs > 0 && promoted.newDocs < first.length, `new documents ${promoted.newDocs}`);
      assert.equal(promoted.champion, 'v1');
      assert.equal(promoted.championAfter, promoted.challenger);
      const s = promoted.scores!;
      assert.ok(s.challenger['heldout.valLoss'] < s.champion['heldout.valLoss']);
      const decisions = await registry().decisions('fw');
      assert.ok(decisions.some((d) => d.id === promoted.decisionId && d.decision === 'promote'));
      const challenger = await registry().get('fw', promoted.challenger);
      assert.deepEqual(challenger.parent, { model: 'fw', version: 'v1' });

      // The watermark moved: the same feedback is not used twice.
      const again = await flywheel.runFlywheel(spec, { at: DAY });
      assert.equal(again.decision, 'no-data');

      await submitAndFlush(feedbackOn([70, 71, 72, 73, 74, 75], 'day2', promoted.challenger!));
      // A learning rate a thousand times too high ruins the challenger: the gate must refuse it.
      const worse = await flywheel.runFlywheel(
        { ...spec, training: { ...spec.training, trainer: { optimizer: { lr: 3 } } } },
        { at: DAY },
      );
      assert.equal(worse.decision, 'reject', worse.reasons.join('; '));
      assert.equal(worse.championAfter, promoted.challenger);
      assert.ok(worse.scores!.challenger['heldout.valLoss'] > worse.scores!.champion['heldout.valLoss']);

      // A challenger that cannot train (sequences longer than the data) fails; the champion stays.
      const failed = await flywheel.runFlywheel(
        { ...spec, training: { ...spec.training, trainer: { sequenceTokens: 10_000_000 } } },
        { at: DAY },
      );
      assert.equal(failed.decision, 'failed');
      assert.match(failed.reasons[0], /too few for one step/);
      assert.equal(failed.championAfter, promoted.challenger);

      const rolledBack = await registry().rollback('fw', 'test');
      assert.equal(rolledBack.champion, 'v1');
      await registry().promote('fw', promoted.challenger!, 'restore for the schedule test');
    },
  );

  it(
    'runs from a Temporal Schedule: a trigger starts a run, an overlapping one is skipped',
    { timeout: 600_000 },
    async () => {
      const handle = await flywheel.createFlywheelSchedule(spec);
      try {
        const described = await handle.describe();
        assert.equal(described.policies.overlap, ScheduleOverlapPolicy.SKIP);
        assert.equal(described.policies.pauseOnFailure, true);
        assert.equal(described.policies.catchupWindow, 2 * 3600 * 1000);
        assert.deepEqual(described.spec.timezone, 'Europe/Berlin');
        assert.ok(described.info.nextActionTimes.length > 0);

        await handle.trigger(ScheduleOverlapPolicy.SKIP);
        for (;;) {
          const d = await handle.describe();
          if (d.info.runningActions.length > 0) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        await handle.trigger(ScheduleOverlapPolicy.SKIP);
        let d = await handle.describe();
        for (let i = 0; i < 50 && d.info.numActionsSkippedOverlap === 0; i++) {
          await new Promise((r) => setTimeout(r, 100));
          d = await handle.describe();
        }
        assert.equal(d.info.numActionsSkippedOverlap, 1, 'the second trigger overlapped the first run and was skipped');
        const started = d.info.runningActions[0]?.workflow ?? d.info.recentActions[0]?.action.workflow;
        assert.ok(started, 'the trigger started a workflow');
        assert.match(started.workflowId, /^flywheel-fw-/);
        const result = await flywheel.client.workflow.getHandle(started.workflowId).result();
        assert.ok(['promote', 'reject'].includes(result.decision), `scheduled run decided ${result.decision}`);
        d = await handle.describe();
        assert.equal(d.info.recentActions.length, 1, 'exactly one run');
      } finally {
        await handle.delete();
      }
    },
  );
});
