import type { Context } from '@temporalio/activity';
import type { SegmentHooks } from '../lib/train';

/** A training segment's hooks on the running activity: its heartbeat, logger, cancellation, attempt and meter. */
export function segmentHooks(ctx: Context): SegmentHooks {
  return {
    // Looked up on each call: withFailureMapping keeps the latest details alive through `ctx.heartbeat`.
    heartbeat: (details) => ctx.heartbeat(details),
    log: ctx.log,
    signal: ctx.cancellationSignal,
    attempt: ctx.info.attempt,
    meter: ctx.metricMeter,
  };
}
