import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { loadConfig, taskQueueName, type FlywheelConfig } from '../../lib/config';
import { parseSpec } from '../../lib/contracts/invalid-spec';
import { PipelineSpec, type PipelineInput } from '../../lib/contracts/pipeline';
import type { DatasetSummary } from '../../lib/contracts/pipeline-results';
import { TrainingSpec, type TrainingInput } from '../../lib/contracts/training';
import type { dataPipeline, trainingRun } from '../../workflows';
import { decodeJsonlGz } from '../../lib/document';
import {
  createS3Client,
  openVerified,
  readManifest,
  S3Store,
  sha256Hex,
  tieredStoreFromConfig,
  verifyManifest,
  type ArtifactRef,
  type TieredStore,
} from '../../lib/storage';
import type { RestartableS3 } from './servers';

/** What every scenario shares: the suite's Temporal server and client, its scratch folder, the corpus. */
export interface FaultContext {
  scratch: string;
  address: string;
  client: Client;
  /** A folder of JSON-lines files every pipeline scenario reads (same path, same spec, same dataset digest). */
  corpus: string;
  /** The clean runs every scenario's output is compared with, each started by its first caller. */
  clean: {
    pipeline: () => Promise<DatasetDigest>;
    training: () => Promise<{ dataset: string; weightsSha256: string }>;
  };
}

/**
 * One scenario's worker settings: its own FLYWHEEL_HOME and task queues, so scenarios never share a worker, and its
 * own workflow ids (the same specs run in every scenario, and ids are unique per namespace).
 */
export interface ScenarioSetup {
  name: string;
  env: Record<string, string>;
  config: FlywheelConfig;
  store: TieredStore;
  startPipeline(input: PipelineInput): Promise<WorkflowHandle<typeof dataPipeline>>;
  startTraining(input: TrainingInput): Promise<WorkflowHandle<typeof trainingRun>>;
}

export function scenarioSetup(
  ctx: Pick<FaultContext, 'scratch' | 'address' | 'client'>,
  name: string,
  extra: Record<string, string> = {},
): ScenarioSetup {
  const env: Record<string, string> = {
    TEMPORAL_ADDRESS: ctx.address,
    FLYWHEEL_HOME: path.join(ctx.scratch, name),
    FLYWHEEL_TASK_QUEUE_PREFIX: `faults-${name}`,
    FLYWHEEL_METRICS_PORT: '0',
    FLYWHEEL_LOG_LEVEL: 'WARN',
    FLYWHEEL_LOG_FORMAT: 'json',
    ...extra,
  };
  const config = loadConfig(env);
  const taskQueue = taskQueueName(config.worker.taskQueuePrefix, 'io');
  return {
    name,
    env,
    config,
    store: tieredStoreFromConfig(config),
    startPipeline: (input) =>
      ctx.client.workflow.start<typeof dataPipeline>('dataPipeline', {
        args: [parseSpec('dataPipeline', PipelineSpec, input)],
        taskQueue,
        workflowId: `pipeline-${input.dataset}-${name}`,
      }),
    startTraining: (input) =>
      ctx.client.workflow.start<typeof trainingRun>('trainingRun', {
        args: [parseSpec('trainingRun', TrainingSpec, input)],
        taskQueue,
        workflowId: `train-${input.run}-${name}`,
      }),
  };
}

/** Settings that put the warm tier in a bucket of `s3` (created here), reached at `endpoint` (the server or a gate). */
export async function s3WarmTier(
  s3: Pick<RestartableS3, 'endpoint' | 'accessKeyId' | 'secretAccessKey' | 'checksums' | 'region'>,
  bucket: string,
  endpoint = s3.endpoint,
): Promise<Record<string, string>> {
  const client = createS3Client({
    endpoint: s3.endpoint,
    region: s3.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    checksums: s3.checksums,
    maxAttempts: 3,
  });
  try {
    await new S3Store({ bucket, prefix: 'warm', client }).ensureBucket();
  } finally {
    client.destroy();
  }
  return {
    FLYWHEEL_WARM: `s3://${bucket}/warm`,
    FLYWHEEL_S3_ENDPOINT: endpoint,
    FLYWHEEL_S3_CHECKSUMS: s3.checksums,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
}

/**
 * The pipeline spec of every pipeline scenario: many small collect batches, partitions and shards, so each stage
 * runs long enough (about a second or more on two cores) for a fault to land inside it.
 */
export function faultPipelineSpec(corpus: string): PipelineInput {
  return {
    dataset: 'faults',
    version: 'v1',
    sources: [{ type: 'path', path: corpus }],
    unitsPerBatch: 2,
    partitions: { maxDocuments: 100 },
    shards: { targetBytes: 64 * 1024, validationFraction: 0.1 },
  };
}

/** The small dataset the training scenarios train on, built by each scenario's own worker. */
export const TRAINING_DATA: PipelineInput = {
  dataset: 'train-data',
  sources: [{ type: 'sample', limit: 16 }],
  shards: { targetBytes: 1 << 20, validationFraction: 0.1 },
};

/** Three segments of 20 steps, a checkpoint every 10: a crash costs at most 10 steps, and is noticed in 4 s. */
export function faultTrainingSpec(run: string, dataset: string): TrainingInput {
  return {
    run,
    dataset,
    trainer: {
      seed: 7,
      model: { contextTokens: 3, embeddingDim: 16, hiddenDim: 32, maxVocab: 512 },
      sequenceTokens: 96,
      batch: { microBatchSizePerGpu: 4, gradientAccumulationSteps: 2 },
      schedule: { warmupSteps: 5 },
    },
    steps: 60,
    segmentSteps: 20,
    checkpointEvery: 10,
    heartbeatTimeoutSeconds: 4,
    retention: { keepLast: 2 },
    register: false,
  };
}

/**
 * What must be the same in every run of the fault pipeline spec. Shards are byte-identical however the work was
 * timed, but quarantined records carry the wall-clock time they were collected (Document.added), so the sha256 of
 * each rejected-records file, and with them the raw bytes of the dataset manifest, differ between two clean runs.
 * The digest therefore covers the manifest with those hashes blanked, and the rejected records without `added`.
 */
export interface DatasetDigest {
  /** sha256 of the dataset manifest, rejected-record hashes blanked: shards, their hashes, counts, stats, spec. */
  manifest: string;
  /** sha256 of every rejected record, in order, without its collection time. */
  rejected: string;
  shards: number;
  rejectedRecords: number;
}

export async function datasetDigest(store: TieredStore, summary: DatasetSummary): Promise<DatasetDigest> {
  const manifest = await readManifest(store, summary.manifest);
  const rejectedRefs = (manifest.meta.rejected ?? []) as ArtifactRef[];
  const blanked = { ...manifest, meta: { ...manifest.meta, rejected: rejectedRefs.map((r) => r.uri) } };
  const records = createHash('sha256');
  let rejectedRecords = 0;
  for (const ref of rejectedRefs) {
    for (const part of (await readManifest(store, ref)).objects) {
      for await (const record of decodeJsonlGz<{ doc?: { added?: string } }>(await openVerified(store, part))) {
        delete record.doc?.added;
        records.update(`${JSON.stringify(record)}\n`);
        rejectedRecords += 1;
      }
    }
  }
  return {
    manifest: sha256Hex(Buffer.from(JSON.stringify(blanked))),
    rejected: records.digest('hex'),
    shards: manifest.objects.length,
    rejectedRecords,
  };
}

/**
 * A dataset equals the clean run's: the same digests (so the same shards, each with its sha256, and the same
 * quarantined records), every shard in storage verifies, and the dataset folder holds nothing else (no shard written
 * twice under another name).
 */
export async function assertSameDataset(
  store: TieredStore,
  summary: DatasetSummary,
  clean: DatasetDigest,
): Promise<string> {
  const digest = await datasetDigest(store, summary);
  assert.deepEqual(digest, clean, "the dataset differs from the clean run's");
  const manifest = await readManifest(store, summary.manifest);
  const verified = await verifyManifest(store, manifest);
  const folder = summary.manifest.uri.slice(0, summary.manifest.uri.lastIndexOf('/') + 1);
  const stored: string[] = [];
  for await (const entry of store.listAll(folder)) stored.push(entry.uri);
  assert.deepEqual(
    stored.sort(),
    [...manifest.objects.map((o) => o.uri), summary.manifest.uri].sort(),
    'the dataset folder holds exactly the manifest and the shards it lists',
  );
  return `same dataset (${verified.objects} shards verified)`;
}
