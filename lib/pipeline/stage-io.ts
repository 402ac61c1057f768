import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { mapLimit } from '../common/map-limit';
import type { Document, RejectedDocument } from '../document/schema';
import type { StageStats } from '../contracts/pipeline-results';
import { decodeJsonlGzLines, partitionGunzip } from '../document/jsonl-partition';
import { openVerified, readManifest, type ArtifactRef } from '../storage/manifest';
import { readAll } from '../storage/object-store';
import type { TieredStore } from '../storage/tiered-store';
import { PartitionWriter } from './partition-writer';

export interface PartitionLimits {
  maxDocuments: number;
  maxBytes: number;
}

/** Every document of the stage manifests given, in order, each partition verified against its sha256 as it streams. */
export async function* readStageDocuments(
  store: TieredStore,
  stages: readonly ArtifactRef[],
): AsyncGenerator<Document> {
  for await (const { doc } of readStageRecords(store, stages)) yield doc;
}

/** readStageDocuments, each document with its line's JSON: a stage that keeps documents unchanged writes that back. */
export async function* readStageRecords(
  store: TieredStore,
  stages: readonly ArtifactRef[],
): AsyncGenerator<{ doc: Document; json: string }> {
  for (const ref of stages) {
    for (const partition of (await readManifest(store, ref)).objects) yield* readPartitionRecords(store, partition);
  }
}

/** One partition's documents, each with its line's JSON, verified against its sha256 as it streams. */
export async function* readPartitionRecords(
  store: TieredStore,
  partition: ArtifactRef,
): AsyncGenerator<{ doc: Document; json: string }> {
  for await (const json of decodeJsonlGzLines(await openVerified(store, partition)))
    yield { doc: JSON.parse(json) as Document, json };
}

/** The partitions listed by stage manifests, in order (what the next stage reads). */
export async function stagePartitions(store: TieredStore, stages: readonly ArtifactRef[]): Promise<ArtifactRef[]> {
  const out: ArtifactRef[] = [];
  for (const ref of stages) out.push(...(await readManifest(store, ref)).objects);
  return out;
}

/** Bytes of a decompressed partition per thread job: enough work to outweigh a job's round trip to a thread. */
const PARTITION_RANGE_BYTES = 1 << 20;

/**
 * Runs `job` on every byte range (about 1 MiB, a line belongs to the range it starts in) of a partition decompressed
 * to a local JSON-lines file, all at once, for worker threads that read their own range of it (near-dup signing,
 * exact-dedup keys); results in range order. On a failure the other jobs are awaited before the file is removed and
 * the first failure thrown (mapLimit's rule).
 */
export async function mapPartitionRanges<T>(
  store: TieredStore,
  partition: ArtifactRef,
  job: (file: string, start: number, end: number) => Promise<T>,
): Promise<T[]> {
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'flywheel-partition-'));
  try {
    const file = path.join(dir, 'partition.jsonl');
    await pipeline(await openVerified(store, partition), partitionGunzip(), fs.createWriteStream(file));
    const size = (await fs.promises.stat(file)).size;
    const starts: number[] = [];
    for (let start = 0; start < size; start += PARTITION_RANGE_BYTES) starts.push(start);
    return await mapLimit(starts, Math.max(1, starts.length), (start) =>
      job(file, start, Math.min(start + PARTITION_RANGE_BYTES, size)),
    );
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/** Stores `body` at `uri` and returns its reference, as a manifest lists it. */
export async function putArtifact(store: TieredStore, uri: string, body: Buffer | string): Promise<ArtifactRef> {
  const put = await store.put(uri, body);
  return { uri, sha256: put.sha256, bytes: put.bytes };
}

/** An object's bytes, verified against its reference's sha256 and size. */
export async function readVerified(store: TieredStore, ref: ArtifactRef): Promise<Buffer> {
  return readAll(await openVerified(store, ref));
}

/** Where a stage activity stands, saved at each partition boundary: a retry goes on from here. */
export interface StageCursor {
  /** Unit (file, object, URL) of the batch being read, and how many of its records were consumed. */
  unit: number;
  record: number;
  kept: (ArtifactRef & { records: number })[];
  rejected: (ArtifactRef & { records: number })[];
  stats: StageStats;
}

/** The cursor a previous attempt of a batch saved with its progress (`{ stage, batch, cursor }`), if it is one. */
export function savedCursor(details: unknown, stage: string, batch: number): StageCursor | undefined {
  const d = details as { stage?: unknown; batch?: unknown; cursor?: StageCursor } | undefined;
  if (!d || d.stage !== stage || d.batch !== batch || !d.cursor) return undefined;
  const c = d.cursor;
  return Number.isInteger(c.unit) && Number.isInteger(c.record) && Array.isArray(c.kept) && Array.isArray(c.rejected)
    ? c
    : undefined;
}

/**
 * Writers for a stage's kept documents and its rejected records, side by side in one folder. Whenever a kept
 * partition fills, the rejected one is closed with it: at that point everything consumed is stored, which is where
 * a retried attempt can resume (`checkpoint`). The cut depends only on the input, so the partitions are the same
 * bytes whether or not an attempt was interrupted.
 */
export function stageWriters(
  store: TieredStore,
  folder: string,
  limits: PartitionLimits,
  resumeFrom?: Pick<StageCursor, 'kept' | 'rejected'>,
) {
  const sizes = { maxRecords: limits.maxDocuments, maxBytes: limits.maxBytes };
  const kept = new PartitionWriter(store, `${folder}/part`, sizes, resumeFrom?.kept);
  const rejected = new PartitionWriter(store, `${folder}/rejected`, sizes, resumeFrom?.rejected);
  return {
    /**
     * Resolves true when this document closed a partition (a resume point). `json`: the document's line as read,
     * when it is kept unchanged (written as it is, not encoded again).
     */
    keep: async (doc: Document, json?: string): Promise<boolean> => {
      await (json === undefined ? kept.write(doc) : kept.writeJson(json));
      if (!kept.atBoundary) return false;
      await rejected.cut();
      return true;
    },
    reject: (record: RejectedDocument | Record<string, unknown>) => rejected.write(record),
    /** The partitions stored so far, to save in a cursor right after `keep` returned true. */
    closed: () => ({ kept: [...kept.closed], rejected: [...rejected.closed] }),
    finish: async () => ({ kept: await kept.finish(), rejected: await rejected.finish() }),
  };
}
