import { CheckpointManager, CheckpointNotFound, retentionPolicies, type RestoredCheckpoint } from '../checkpoint';
import type { SegmentInput, SegmentSummary, TrainingSpec } from '../contracts/training';
import type { Meter } from '../metrics';
import type { TieredStore } from '../storage/tiered-store';

/** What a segment reports as it goes: the step it reached, the loss there, the trainer's process when it has one. */
export interface SegmentHeartbeat {
  step: number;
  loss?: number;
  pid?: number;
}

/** How a segment reaches whoever runs it: progress, logs, cancellation and metrics, free of any executor's types. */
export interface SegmentHooks {
  heartbeat(details: SegmentHeartbeat): void;
  log: { warn(message: string): void; debug(message: string): void };
  /** Aborted when the segment is to stop: it stops at its next checkpoint and reports `cancelled`. */
  signal: AbortSignal;
  /** Which try this is (1 for the first): an external trainer is told, so it can tell a retry from a fresh start. */
  attempt: number;
  meter: Meter;
}

export interface SegmentJob {
  store: TieredStore;
  input: SegmentInput;
  hooks: SegmentHooks;
}

/** How a segment ended: its summary, or cancelled at a checkpoint it left committed. */
export type SegmentOutcome =
  { status: 'completed'; summary: SegmentSummary } | { status: 'cancelled'; step: number; message: string };

/**
 * One training segment, whoever trains: restore the newest checkpoint that verifies, train up to `segmentSteps`
 * steps, checkpoint (committed to warm, retained by the spec's policies) and evaluate on the way. A retry after a
 * crash resumes from the last checkpoint. The built-in trainer and external trainers both implement it.
 */
export type SegmentRunner = (job: SegmentJob) => Promise<SegmentOutcome>;

/** The run's checkpoints, retained by the spec's policies; a copy that could not be made is logged, not fatal. */
export function runCheckpoints(
  store: TieredStore,
  spec: Pick<TrainingSpec, 'run' | 'retention'>,
  log?: SegmentHooks['log'],
): CheckpointManager {
  return new CheckpointManager({
    store,
    runPrefix: `runs/${spec.run}/checkpoints`,
    policy: retentionPolicies(spec.retention),
    onWarning: log && ((w) => log.warn(`skipped a checkpoint copy: ${w.message}`)),
  });
}

/**
 * The newest checkpoint of the run that verifies and was made by the spec of `specDigest` (hot, then warm, then
 * cold), each one skipped on the way logged; undefined when the run has none yet.
 */
export async function restoreNewest(
  checkpoints: CheckpointManager,
  specDigest: string,
  log: SegmentHooks['log'],
): Promise<RestoredCheckpoint | undefined> {
  let restored: RestoredCheckpoint;
  try {
    restored = await checkpoints.restoreLatest({ expect: { specDigest } });
  } catch (err) {
    if (err instanceof CheckpointNotFound) return undefined;
    throw err;
  }
  for (const skipped of restored.skipped)
    log.warn(`checkpoint step ${skipped.step} in ${skipped.tier} did not verify: ${skipped.message}`);
  return restored;
}
