import { defineQuery, proxyActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { FlywheelActivities } from '../activities';
import { StorageCheckSpec, type StorageCheckResult } from '../lib/contracts/storage-check';
import { specDigest } from '../lib/contracts/digest';
import { validateSpec } from './invalid-spec-failure';
import { FlywheelKind, FlywheelRun, FlywheelStage } from './search-attributes';
import { taskQueueFor } from './task-queues';

export interface StorageCheckProgress {
  stage: 'validate' | 'write' | 'verify' | 'done';
  manifestUri?: string;
  objects: number;
  bytes: number;
}

export const storageCheckProgress = defineQuery<StorageCheckProgress>('progress');

/** Writes objects to a tier, commits them under a manifest, and verifies every object's checksum on read. */
export async function storageCheck(input: unknown): Promise<StorageCheckResult> {
  const progress: StorageCheckProgress = { stage: 'validate', objects: 0, bytes: 0 };
  setHandler(storageCheckProgress, () => progress);
  const spec = validateSpec('storageCheck', StorageCheckSpec, input);
  const digest = specDigest(spec);

  const io = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('io'),
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '1 minute',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });

  upsertSearchAttributes([
    { key: FlywheelKind, value: 'storage-check' },
    { key: FlywheelRun, value: workflowInfo().workflowId },
    { key: FlywheelStage, value: 'write' },
  ]);
  progress.stage = 'write';
  const manifest = await io.writeSampleObjects({ ...spec, digest });
  progress.manifestUri = manifest.uri;

  upsertSearchAttributes([{ key: FlywheelStage, value: 'verify' }]);
  progress.stage = 'verify';
  // On the io queue, like the write: a hot:// tier is a folder on the worker that wrote it.
  const verified = await io.verifyArtifact({ manifest });
  progress.objects = verified.objects;
  progress.bytes = verified.bytes;

  upsertSearchAttributes([{ key: FlywheelStage, value: 'done' }]);
  progress.stage = 'done';
  return { manifest, objects: verified.objects, bytes: verified.bytes, verified: true };
}
