import { ApplicationFailure, Context } from '@temporalio/activity';
import { FlywheelError } from '../lib/common';

/**
 * Maps domain errors to Temporal failures of their type: retryable ones (a store down, a lost race) are retried by
 * the activity's retry policy, the rest (missing objects, checksum mismatches, bad specs) fail at once. Temporal's
 * own failures and anything unexpected pass through to the SDK unchanged.
 */
export function toActivityFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof FlywheelError) {
    return ApplicationFailure.create({
      message: err.message,
      type: err.type,
      nonRetryable: !err.retryable,
      details: err.details === undefined ? undefined : [err.details],
      cause: err,
    });
  }
  return err;
}

/**
 * Re-sends the activity's latest heartbeat details every few seconds while its body runs, so a live worker is never
 * taken for dead between progress reports (an upload, a listing, a retried store call), and the heartbeat timeouts
 * can stay short enough to notice a dead worker quickly. A blocked event loop or a dead process still goes silent.
 */
function keepAlive<T>(body: () => Promise<T>): Promise<T> {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return body(); // called outside an activity (a unit test of the body)
  }
  // Three beats per heartbeat timeout, at most every 5 s: short timeouts (a training segment's 4 s) are kept too.
  const everyMs = Math.max(250, Math.min(5000, (ctx.info.heartbeatTimeoutMs ?? 15_000) / 3));
  const send = ctx.heartbeat;
  let last: unknown = ctx.info.heartbeatDetails; // an earlier attempt's cursor stays until this one reports
  (ctx as { heartbeat: (details?: unknown) => void }).heartbeat = (details?: unknown) => {
    last = details;
    send(details);
  };
  const timer = setInterval(() => send(last), everyMs);
  timer.unref();
  return body().finally(() => clearInterval(timer));
}

/** Runs an activity body, translating what it throws, and keeps its heartbeat alive. */
export async function withFailureMapping<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await keepAlive(body);
  } catch (err) {
    throw toActivityFailure(err);
  }
}
