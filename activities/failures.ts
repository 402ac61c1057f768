import { ApplicationFailure } from '@temporalio/activity';
import { StorageError } from '../lib/storage/errors';
import { InvalidSpec } from '../lib/spec/invalid-spec';
import { CollectError } from '../lib/collect/errors';
import { RegistryError } from '../lib/registry/errors';
import { DatasetVersionExists } from '../lib/pipeline/commit-dataset';
import { CheckpointMismatch, DatasetTooSmall, MalformedShard, MalformedTrainerState } from '../lib/train/errors';

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

/** Runs an activity body, translating what it throws. */
export async function withFailureMapping<T>(body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (err) {
    throw toActivityFailure(err);
  }
}
