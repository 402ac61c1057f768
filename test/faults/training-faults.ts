import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CheckpointManager, keepLastN } from '../../lib/checkpoint';
import type { SegmentSummary, TrainingResult } from '../../lib/contracts/training';
import { startS3Gate } from '../support/s3-gate';
import type { TestS3Server } from '../support/s3-server';
import {
  faultTrainingSpec,
  s3WarmTier,
  scenarioSetup,
  TRAINING_DATA,
  type FaultContext,
  type ScenarioSetup,
} from './context';
import { activityRuns, recoveredAfter, startedActivity, waitFor, type ActivityRun, type Scenario } from './harness';
import { startWorker, type WorkerProcess } from '../support/worker-process';

const RUN = 'faults';
const CHECKPOINTS = `runs/${RUN}/checkpoints`;
const stepFolder = (step: number) => `step-${String(step).padStart(12, '0')}`;

function checkpointsOf(setup: ScenarioSetup): CheckpointManager {
  return new CheckpointManager({ store: setup.store, runPrefix: CHECKPOINTS, policy: [keepLastN(2)] });
}

/** The scenario's worker, and the dataset it built (the same bytes in every home: the pipeline is deterministic). */
async function trainingSetup(
  ctx: FaultContext,
  name: string,
  extra: Record<string, string> = {},
): Promise<{ setup: ScenarioSetup; worker: WorkerProcess; dataset: string }> {
  const setup = scenarioSetup(ctx, name, extra);
  const worker = startWorker(setup.env);
  try {
    const dataset = (await (await setup.startPipeline(TRAINING_DATA)).result()).manifest.uri;
    assert.equal(dataset, (await ctx.clean.training()).dataset);
    return { setup, worker, dataset };
  } catch (err) {
    await worker.kill();
    throw err;
  }
}

/** Final weights equal the clean run's, and every checkpoint left in warm is committed and verifies. */
async function assertSameTraining(ctx: FaultContext, setup: ScenarioSetup, result: TrainingResult): Promise<string> {
  assert.equal(result.step, 60);
  assert.equal(
    result.weightsSha256,
    (await ctx.clean.training()).weightsSha256,
    "final weights differ from the clean run's",
  );
  const manager = checkpointsOf(setup);
  const warm = (await manager.list()).filter((c) => c.tiers.includes('warm')).map((c) => c.step);
  assert.deepEqual(warm, [50, 60], 'warm keeps the last two checkpoints, nothing half-written or extra');
  for (const step of warm) await manager.restore(step);
  const folders = new Set<number>();
  for await (const entry of setup.store.listAll(`warm://${CHECKPOINTS}/`)) {
    const step = /\/step-(\d+)\//.exec(entry.uri)?.[1];
    if (step) folders.add(Number(step));
  }
  assert.deepEqual(
    [...folders].sort((a, b) => a - b),
    [50, 60],
    'no half-written checkpoint folder is left in warm',
  );
  assert.equal((await manager.readLatest())?.step, 60);
  return 'same final weights';
}

/** The segments that started over from a checkpoint after the fault, as their results tell it. */
function resumedSegments(runs: ActivityRun[]): SegmentSummary[] {
  return runs.filter((r) => r.type === 'trainSegment' && r.attempt > 1).map((r) => r.result as SegmentSummary);
}

const exists = (file: string) => async () => fs.existsSync(file);

/** SIGKILL of the training worker between two checkpoints of a segment: the retry resumes from the last one. */
export function workerKilledMidSegment(ctx: FaultContext): Scenario {
  return {
    name: 'worker SIGKILL during a training segment',
    async run() {
      const { setup, worker, dataset } = await trainingSetup(ctx, 'kill-segment');
      let second: WorkerProcess | undefined;
      try {
        const handle = await setup.startTraining(faultTrainingSpec(RUN, dataset));
        const hot = path.join(setup.config.tiers.hot, CHECKPOINTS, stepFolder(10), 'manifest.json');
        await waitFor('the checkpoint of step 10 in hot', exists(hot), 180_000, 10);
        await worker.kill();
        const killedAt = Date.now();
        second = startWorker(setup.env);
        const same = await assertSameTraining(ctx, setup, await handle.result());
        const resumed = resumedSegments(await activityRuns(handle));
        assert.deepEqual(
          resumed.map((s) => s.resumedFrom),
          [10],
          'the killed segment resumed from step 10',
        );
        return {
          outcome: `resumed from step 10; ${same}`,
          recoverSeconds: await recoveredAfter(handle, 'trainSegment', killedAt),
        };
      } finally {
        await worker.kill();
        await second?.stop();
      }
    },
  };
}

/**
 * SIGKILL while a checkpoint is being committed to warm (S3): one of its files is stored but the worker never
 * hears so. The half-copied checkpoint is never visible (no manifest) and is removed later; training goes on.
 */
export function workerKilledDuringCheckpointCommit(ctx: FaultContext, s3: TestS3Server): Scenario {
  return {
    name: 'worker SIGKILL during a checkpoint commit',
    async run() {
      const gate = await startS3Gate(s3.endpoint);
      let first: WorkerProcess | undefined;
      let second: WorkerProcess | undefined;
      try {
        const warm = await s3WarmTier(s3, `faults-commit-${Date.now().toString(36)}`, gate.endpoint);
        const training = await trainingSetup(ctx, 'kill-commit', warm);
        const { setup, dataset } = training;
        first = training.worker;
        const held = gate.holdNext(new RegExp(`/${CHECKPOINTS}/${stepFolder(10)}/files/`));
        const handle = await setup.startTraining(faultTrainingSpec(RUN, dataset));
        await held;
        await first.kill();
        const killedAt = Date.now();
        gate.releaseHeld();
        second = startWorker(setup.env);
        const same = await assertSameTraining(ctx, setup, await handle.result());
        return {
          outcome: `half-copied step 10 never visible, then removed; ${same}`,
          recoverSeconds: await recoveredAfter(handle, 'trainSegment', killedAt),
        };
      } finally {
        await first?.kill();
        await second?.stop();
        await gate.close();
      }
    },
  };
}

/**
 * The newest checkpoint's weights file is corrupted on disk (in every tier holding it) while no worker runs: the
 * restore skips it with a warning, resumes from the one before, and training reaches the clean run's weights.
 */
export function checkpointCorrupted(ctx: FaultContext): Scenario {
  return {
    name: 'checkpoint file corrupted on disk',
    async run() {
      const { setup, worker, dataset } = await trainingSetup(ctx, 'corrupt');
      let second: WorkerProcess | undefined;
      try {
        const manager = checkpointsOf(setup);
        const handle = await setup.startTraining(faultTrainingSpec(RUN, dataset));
        await waitFor(
          'step 30 committed to warm',
          async () => ((await manager.readLatest())?.step ?? 0) >= 30,
          180_000,
          10,
        );
        await worker.kill();
        const committed = await manager.list();
        const newest = committed.at(-1)!;
        const previous = committed.at(-2)!.step;
        for (const tier of newest.tiers) {
          const file = path.join(
            setup.config.tiers[tier],
            CHECKPOINTS,
            stepFolder(newest.step),
            'files',
            'weights.f32',
          );
          const bytes = fs.readFileSync(file);
          bytes.fill(0x7f, bytes.length >> 2, (bytes.length >> 2) + 64);
          fs.writeFileSync(file, bytes);
        }
        const restartedAt = Date.now();
        second = startWorker(setup.env);
        const same = await assertSameTraining(ctx, setup, await handle.result());
        const resumed = resumedSegments(await activityRuns(handle));
        assert.deepEqual(
          resumed.map((s) => s.resumedFrom),
          [previous],
          `the retried segment resumed from step ${previous}, the checkpoint before the corrupt one`,
        );
        const warned = new RegExp(`checkpoint step ${newest.step} in (hot|warm) did not verify`);
        assert.match(second.output(), warned, 'the worker warned about the corrupt checkpoint');
        return {
          outcome: `step ${newest.step} skipped with a warning, resumed from ${previous}; ${same}`,
          recoverSeconds: await recoveredAfter(handle, 'trainSegment', restartedAt),
        };
      } finally {
        await worker.kill();
        await second?.stop();
      }
    },
  };
}

/** The hot tier is wiped while the run is paused between segments: the next segment restores from warm. */
export function hotTierWiped(ctx: FaultContext): Scenario {
  return {
    name: 'hot tier wiped between segments',
    async run() {
      const { setup, worker, dataset } = await trainingSetup(ctx, 'hot-wipe');
      try {
        const handle = await setup.startTraining(faultTrainingSpec(RUN, dataset));
        await waitFor('the first segment to start', () => startedActivity(handle, 'trainSegment'), 180_000);
        await handle.signal('pause');
        const paused = await waitFor(
          'the run to pause at a segment boundary',
          async () => {
            const progress = await handle.query<{ stage: string; step: number }>('progress');
            return progress.stage === 'paused' ? progress.step : undefined;
          },
          180_000,
        );
        assert.equal(paused, 20, 'paused after the first segment');
        const hot = setup.config.tiers.hot;
        fs.rmSync(hot, { recursive: true, force: true });
        fs.mkdirSync(hot);
        const resumedAt = Date.now();
        await handle.signal('resume');
        const result = await handle.result();
        const same = await assertSameTraining(ctx, setup, result);
        const next = (await activityRuns(handle))
          .filter((r) => r.type === 'trainSegment')
          .map((r) => ({ ...r, summary: r.result as SegmentSummary }))
          .find((r) => r.summary.resumedFrom === paused);
        assert.ok(next?.completedAt, `a segment resumed from step ${paused}, restored from warm with hot empty`);
        return {
          outcome: `hot emptied at step ${paused}, restored from warm; ${same}`,
          recoverSeconds: (next.completedAt - resumedAt) / 1000,
        };
      } finally {
        await worker.stop();
      }
    },
  };
}
