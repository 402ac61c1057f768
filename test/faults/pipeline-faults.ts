import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { DatasetSummary } from '../../lib/contracts/pipeline-results';
import { assertSameDataset, faultPipelineSpec, s3WarmTier, scenarioSetup, type FaultContext } from './context';
import {
  activityRuns,
  recoveredAfter,
  resultThroughOutages,
  ScenarioSkipped,
  sleep,
  startedActivity,
  waitFor,
  type Scenario,
} from './harness';
import { startRestartableS3, startRestartableTemporal } from './servers';
import { startWorker } from '../support/worker-process';

/** The activity that does each stage's work: when a worker has started one, the stage is under way. */
const STAGE_ACTIVITY = {
  collect: 'collectBatch',
  dedup: 'exactDedupFilterStage',
  tokenize: 'tokenizePartitionStage',
  shard: 'writeShardStage',
} as const;
export type PipelineStage = keyof typeof STAGE_ACTIVITY;

/** Waits long enough for a stage that starts only after the stages before it, on a busy machine. */
const REACH_STAGE_MS = 240_000;

/** A stage can finish between the look that saw it running and the kill; the scenario then starts over. */
const AIM_ATTEMPTS = 3;

/**
 * SIGKILL of the worker process while `stage` runs, then a fresh worker. The killed activity is retried once its
 * heartbeat times out; completed work is reused, so the dataset is the clean run's. The kill counts only if an
 * activity of the stage was still running when the worker died (the server keeps it pending, STARTED, until its
 * heartbeat times out); when the stage's last activity completed in between, the run is terminated and tried again.
 */
export function workerKilledDuringStage(
  ctx: FaultContext,
  stage: PipelineStage,
  onKilled: () => void = () => undefined,
): Scenario {
  const activity = STAGE_ACTIVITY[stage];
  return {
    name: `worker SIGKILL during ${stage}`,
    async run() {
      for (let attempt = 1; ; attempt++) {
        const setup = scenarioSetup(ctx, attempt === 1 ? `kill-${stage}` : `kill-${stage}-${attempt}`);
        const first = startWorker(setup.env);
        const handle = await setup.startPipeline(faultPipelineSpec(ctx.corpus));
        let second;
        try {
          await waitFor(`a started ${activity}`, () => startedActivity(handle, activity), REACH_STAGE_MS, 25);
          await first.kill();
          const killedAt = Date.now();
          if (!(await startedActivity(handle, activity))) {
            if (attempt >= AIM_ATTEMPTS) {
              throw new Error(`the ${stage} stage finished before the kill landed, ${attempt} times`);
            }
            console.log(`[faults] the kill landed after the last ${activity} completed; trying again`);
            await handle.terminate('fault scenario: the kill missed its stage');
            continue;
          }
          second = startWorker(setup.env);
          onKilled();
          const summary = await handle.result();
          const same = await assertSameDataset(setup.store, summary, await ctx.clean.pipeline());
          const recover = await recoveredAfter(handle, activity, killedAt);
          const retried = attempt > 1 ? ` (aimed ${attempt} times)` : '';
          return { outcome: `completed; ${same}${retried}`, recoverSeconds: recover };
        } finally {
          await first.kill();
          await second?.stop();
        }
      }
    },
  };
}

/**
 * SIGKILL of the Temporal dev server mid-pipeline, then a restart on the same SQLite file and port: the worker
 * reconnects by itself and the run completes from its persisted history.
 */
export function temporalKilledMidPipeline(ctx: FaultContext): Scenario {
  return {
    name: 'Temporal dev server SIGKILL + restart',
    async run() {
      const server = await startRestartableTemporal(path.join(ctx.scratch, 'temporal-restart', 'temporal.db'));
      const connection = await Connection.connect({ address: server.address });
      const client = new Client({ connection });
      const setup = scenarioSetup({ ...ctx, address: server.address, client }, 'temporal-restart');
      const worker = startWorker(setup.env);
      try {
        const handle = await setup.startPipeline(faultPipelineSpec(ctx.corpus));
        await waitFor(
          'a started tokenizePartitionStage',
          () => startedActivity(handle, 'tokenizePartitionStage'),
          REACH_STAGE_MS,
          25,
        );
        await server.kill();
        await sleep(2000);
        await server.restart();
        const backAt = Date.now();
        const summary = await resultThroughOutages<DatasetSummary>(handle);
        assert.equal(worker.child.exitCode, null, 'the worker survived the outage and reconnected');
        const same = await assertSameDataset(setup.store, summary, await ctx.clean.pipeline());
        const after = (await activityRuns(handle)).filter((r) => r.completedAt && r.completedAt >= backAt);
        const recover = after.length ? (Math.min(...after.map((r) => r.completedAt!)) - backAt) / 1000 : undefined;
        return { outcome: `completed, worker reconnected; ${same}`, recoverSeconds: recover };
      } finally {
        await worker.stop();
        await connection.close();
        await server.stop();
      }
    },
  };
}

/** The outage lasts 30 s; FLYWHEEL_FAULTS_S3_OUTAGE_S shortens it for a quick local run. */
function s3OutageMs(): number {
  const seconds = Number(process.env.FLYWHEEL_FAULTS_S3_OUTAGE_S ?? 30);
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new Error(`FLYWHEEL_FAULTS_S3_OUTAGE_S=${process.env.FLYWHEEL_FAULTS_S3_OUTAGE_S}: give seconds, e.g. 30`);
  }
  return seconds * 1000;
}

/**
 * The S3 server behind the warm tier stops while shards are being uploaded and comes back on the same port and data
 * after the outage: uploads fail as StoreUnreachable (retryable), activities retry with backoff, the run completes.
 */
export function s3StoppedMidUpload(ctx: FaultContext): Scenario {
  return {
    name: `S3 stopped ${s3OutageMs() / 1000} s mid-upload`,
    async run() {
      const s3 = await startRestartableS3(path.join(ctx.scratch, 's3-outage', 'data'));
      const setup = scenarioSetup(ctx, 's3-outage', await s3WarmTier(s3, 'faults-outage'));
      const worker = startWorker(setup.env);
      try {
        const handle = await setup.startPipeline(faultPipelineSpec(ctx.corpus));
        await waitFor(
          'a started writeShardStage',
          () => startedActivity(handle, 'writeShardStage'),
          REACH_STAGE_MS,
          25,
        );
        await s3.stop();
        const failures = await failuresUntil(handle, Date.now() + s3OutageMs());
        await s3.start();
        const backAt = Date.now();
        assert.ok(failures.size > 0, 'activities failed while S3 was down');
        assert.ok(
          [...failures.values()].every((nonRetryable) => !nonRetryable),
          `every failure during the outage was retryable: ${[...failures.keys()].join(', ')}`,
        );
        const summary = await handle.result();
        const same = await assertSameDataset(setup.store, summary, await ctx.clean.pipeline());
        const recover = await recoveredAfter(handle, 'writeShardStage', backAt);
        return { outcome: `${[...failures.keys()].join(', ')} retried; ${same}`, recoverSeconds: recover };
      } finally {
        await worker.stop();
        await s3.stop();
      }
    },
  };
}

/** The failure types (and whether each was non-retryable) of the workflow's pending activities until `deadline`. */
async function failuresUntil(handle: WorkflowHandle, deadline: number): Promise<Map<string, boolean>> {
  const seen = new Map<string, boolean>();
  while (Date.now() < deadline) {
    const described = await handle.describe().catch(() => undefined);
    for (const pending of described?.raw.pendingActivities ?? []) {
      const info = pending.lastFailure?.applicationFailureInfo;
      if (info?.type) seen.set(info.type, seen.get(info.type) === true || info.nonRetryable === true);
    }
    await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
  }
  return seen;
}

/**
 * The folder shards are written to fills up: a small tmpfs mounted there, filled but for 256 KiB. A full disk is an
 * operator's problem, not the data's, so the store reports ENOSPC as a retryable TransientStorageError: the shard
 * activities retry with backoff (and would fail the run with that message after their last attempt); once space is
 * freed the run completes with the clean run's dataset.
 */
export function diskFullWhileSharding(ctx: FaultContext): Scenario {
  return {
    name: 'disk full while writing shards',
    async run() {
      const setup = scenarioSetup(ctx, 'disk-full');
      const mountPoint = path.join(setup.config.tiers.warm, 'datasets');
      fs.mkdirSync(mountPoint, { recursive: true });
      const filler = path.join(mountPoint, 'filler.bin');
      mountSmallDisk(mountPoint, 32);
      const worker = startWorker(setup.env);
      try {
        const { bavail, bsize } = fs.statfsSync(mountPoint);
        fs.writeFileSync(filler, Buffer.alloc(Math.max(0, bavail * bsize - 256 * 1024)));
        const handle = await setup.startPipeline(faultPipelineSpec(ctx.corpus));
        const failing = await waitFor(
          'a shard write that failed for lack of space',
          async () => {
            const described = await handle.describe();
            return described.raw.pendingActivities?.find(
              (a) => a.activityType?.name === 'writeShardStage' && /ENOSPC/.test(a.lastFailure?.message ?? ''),
            );
          },
          REACH_STAGE_MS,
          100,
        );
        const failure = failing.lastFailure!;
        const info = failure.applicationFailureInfo;
        assert.equal(info?.type, 'TransientStorageError', `a full disk fails as ${info?.type}: ${failure.message}`);
        assert.equal(info?.nonRetryable, false);
        fs.rmSync(filler);
        const freedAt = Date.now();
        const summary = await handle.result();
        const same = await assertSameDataset(setup.store, summary, await ctx.clean.pipeline());
        const recover = await recoveredAfter(handle, 'writeShardStage', freedAt);
        return {
          outcome: `ENOSPC retried as TransientStorageError, completed once freed; ${same}`,
          recoverSeconds: recover,
        };
      } finally {
        await worker.stop();
        unmount(mountPoint);
      }
    },
  };
}

/** Mounts a tmpfs of `mib` MiB; a machine that does not allow it (not root, no CAP_SYS_ADMIN) skips the scenario. */
function mountSmallDisk(mountPoint: string, mib: number): void {
  if (process.platform !== 'linux')
    throw new ScenarioSkipped(`needs Linux to mount a small tmpfs (${process.platform})`);
  const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mib}m`, 'flywheel-faults', mountPoint], {
    encoding: 'utf8',
  });
  if (mounted.error || mounted.status !== 0) {
    const why = (mounted.error?.message ?? mounted.stderr).trim();
    throw new ScenarioSkipped(`cannot mount a ${mib} MiB tmpfs (${why}); run as root or with CAP_SYS_ADMIN`);
  }
  process.once('exit', () => unmount(mountPoint));
}

/** Unmounts if still mounted; lazily when something holds it busy. */
function unmount(mountPoint: string): void {
  const mounted = fs
    .readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .some((line) => line.split(' ')[1] === mountPoint);
  if (mounted && spawnSync('umount', [mountPoint]).status !== 0) spawnSync('umount', ['-l', mountPoint]);
}
