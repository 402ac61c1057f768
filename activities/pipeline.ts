import * as os from 'node:os';
import { trace } from '@opentelemetry/api';
import { Context } from '@temporalio/activity';
import type { CollectReach } from '../lib/collect/context';
import { DedupPool } from '../lib/dedup/dedup-pool';
import { timeStage } from '../lib/metrics';
import {
  runStep,
  stepCalls,
  type PipelineStep,
  type StepCalls,
  type StepEnv,
  type StepExecutor,
} from '../lib/pipeline/stage';
import { savedCursor, type StageCursor } from '../lib/pipeline/stage-io';
import type { RunKey } from '../lib/pipeline/stage-output';
import { stepSpanAttributes } from '../lib/pipeline/step-attributes';
import { FilterPool } from '../lib/quality/filter-pool';
import { pipelineSteps } from '../lib/pipeline/steps';
import type { TieredStore } from '../lib/storage';
import { TokenizerPool } from '../lib/tokenize/pool';
import { withFailureMapping } from './failures';

/** The store, and where collection may read: a spec from the UI must not read the whole disk, nor any bucket or host. */
export interface PipelineDeps extends CollectReach {
  store: TieredStore;
  threads?: number;
}

let tokenizerPool: TokenizerPool | undefined;

/** One tokenizer pool per worker process, shared by concurrent activities: threads match cores, not activities. */
function sharedTokenizerPool(threads?: number): TokenizerPool {
  tokenizerPool ??= new TokenizerPool({ threads });
  return tokenizerPool;
}

/** Called by the worker on shutdown. */
export async function closeSharedTokenizerPool(): Promise<void> {
  const pool = tokenizerPool;
  tokenizerPool = undefined;
  await pool?.close();
}

let filterPool: FilterPool | undefined;

/** The quality filters run on their own threads, one pool per worker process like the tokenizer's. */
function sharedFilterPool(threads?: number): FilterPool {
  filterPool ??= new FilterPool({ threads: Math.max(1, threads ?? os.availableParallelism()) });
  return filterPool;
}

/** Called by the worker on shutdown. */
export async function closeSharedFilterPool(): Promise<void> {
  const pool = filterPool;
  filterPool = undefined;
  await pool?.close();
}

/** Near-dedup signing runs on the dedup worker threads, one pool per worker process like the tokenizer's. */
function sharedDedupPool(threads?: number): DedupPool {
  return DedupPool.shared(Math.max(1, threads ?? os.availableParallelism()));
}

/** Called by the worker on shutdown. */
export async function closeSharedDedupPool(): Promise<void> {
  await DedupPool.closeShared();
}

/** Heartbeats at most every few seconds: enough for liveness and progress, cheap on history and the server. */
function throttledHeartbeat(): (details: unknown) => void {
  let last = 0;
  return (details) => {
    const now = Date.now();
    if (now - last < 2000) return;
    last = now;
    Context.current().heartbeat(details);
  };
}

/**
 * Heartbeats of a batch activity that can resume: progress every few seconds, and every cursor (a partition
 * boundary) at once, the SDK keeping the latest for its next heartbeat. A retry starts from the cursor the last
 * attempt heartbeated, logging where.
 */
function resumableBatch(stage: 'collect' | 'filter', batch: number, beat: (details: unknown) => void) {
  const ctx = Context.current();
  const resumeFrom = savedCursor(ctx.info.heartbeatDetails, stage, batch);
  if (resumeFrom) {
    ctx.log.info(
      `${stage} batch ${batch}: resuming at unit ${resumeFrom.unit}, record ${resumeFrom.record} ` +
        `(${resumeFrom.kept.length} partitions already stored)`,
    );
  }
  let cursor = resumeFrom;
  let progress: Record<string, unknown> = {};
  return {
    resumeFrom,
    checkpoint: (c: StageCursor) => {
      cursor = c;
      ctx.heartbeat({ stage, batch, ...progress, cursor });
    },
    progress: (p: Record<string, unknown>) => {
      progress = p;
      beat({ stage, batch, ...p, cursor });
    },
  };
}

/**
 * The data pipeline's activities: the steps of lib/pipeline/steps.ts, each run as an activity that reuses committed
 * output (a retried or rerun step returns what its earlier attempt committed), heartbeats its progress and maps its
 * failures to Temporal's.
 */
export function createPipelineActivities({
  store,
  threads,
  allowedRoots,
  allowedBuckets,
  allowedHosts,
}: PipelineDeps): StepCalls<typeof pipelineSteps> {
  const reach: CollectReach = { allowedRoots, allowedBuckets, allowedHosts };
  const executor: StepExecutor = {
    store,
    env(folder, resumable): StepEnv {
      const beat = throttledHeartbeat();
      const env: StepEnv = {
        store,
        folder,
        heartbeat: (details) => Context.current().heartbeat(details),
        progress: beat,
        checkpoint: () => undefined,
        reach,
        dedupPool: () => sharedDedupPool(threads),
        tokenizerPool: () => sharedTokenizerPool(threads),
        filterPool: () => sharedFilterPool(threads),
      };
      return resumable ? { ...env, ...resumableBatch(resumable.stage, resumable.batch, beat) } : env;
    },
    time: (stage, work, counts) => timeStage(Context.current().metricMeter, stage, work, counts),
  };
  return stepCalls(
    pipelineSteps,
    <I extends RunKey, O>(step: PipelineStep<I, O>, name: keyof typeof pipelineSteps) =>
      (input: I) => {
        // The activity's span (when tracing is on) says which stage, dataset and unit this call works on.
        trace.getActiveSpan()?.setAttributes(stepSpanAttributes(name, input));
        return withFailureMapping(() => runStep(step, input, executor));
      },
  );
}
