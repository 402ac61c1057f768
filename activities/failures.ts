import { ApplicationFailure, Context } from '@temporalio/activity';
import { StorageError } from '../lib/storage/errors';
import { InvalidSpec } from '../lib/spec/invalid-spec';
import { CollectError } from '../lib/collect/errors';
import { RegistryError } from '../lib/registry/errors';
import { CorruptFeedbackPartition } from '../lib/feedback/errors';
import { DatasetVersionExists } from '../lib/pipeline/commit-dataset';
import { CheckpointMismatch, DatasetTooSmall, MalformedShard, MalformedTrainerState } from '../lib/train/errors';
import { ExternalTrainerError } from '../lib/external-trainer/errors';

/**
 * Maps domain errors to Temporal failures: transient ones are retried by the activity's retry policy,
 * the rest (missing objects, checksum mismatches, bad specs) fail at once with their type name.
 */
export function toActivityFailure(err: unknown): unknown {
  if (err instanceof ApplicationFailure) return err;
  if (err instanceof StorageError) {
    return ApplicationFailure.create({
      message: err.message,
      type: err.code,
      nonRetryable: !err.retryable,
      details: [{ uri: err.uri }],
      cause: err,
    });
  }
  if (err instanceof CollectError) {
    return ApplicationFailure.create({
      message: err.message,
      type: err.code,
      nonRetryable: !err.retryable,
      details: [{ location: err.location }],
      cause: err,
    });
  }
  if (
    err instanceof DatasetTooSmall ||
    err instanceof CheckpointMismatch ||
    err instanceof MalformedTrainerState ||
    err instanceof MalformedShard
  ) {
    // Retrying cannot change the data or the checkpoint: fail the run with the reason.
    return ApplicationFailure.create({ message: err.message, type: err.name, nonRetryable: true, cause: err });
  }
  if (err instanceof RegistryError) {
    return ApplicationFailure.create({
      message: err.message,
      type: err.type,
      nonRetryable: err.nonRetryable,
      cause: err,
    });
  }
  if (err instanceof ExternalTrainerError) {
    // A crash, stall or timeout is retried from the last checkpoint; bad configuration or protocol is not.
    return ApplicationFailure.create({
      message: err.message,
      type: err.type,
      nonRetryable: !err.retryable,
      details: [{ exitCode: err.exitCode, signal: err.signal, stderrTail: err.stderrTail }],
      cause: err,
    });
  }
  if (err instanceof CorruptFeedbackPartition) {
    return ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: true, details: [err.uri] });
  }
  if (err instanceof DatasetVersionExists) {
    return ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: true });
  }
  if (err instanceof InvalidSpec) {
    return ApplicationFailure.create({
      message: err.message,
      type: 'InvalidSpec',
      nonRetryable: true,
      details: [err.problems],
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
