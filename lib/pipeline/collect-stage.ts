import { FlywheelError } from '../common';
import type { ArtifactRef } from '../storage/manifest';
import { ChecksumMismatch } from '../storage/errors';
import { sha256Hex } from '../storage/hashing';
import type { TieredStore } from '../storage/tiered-store';
import { countDrop, countSkipped, emptyStats } from '../contracts/pipeline-results';
import { planSource, readUnit, splitUnits, type CollectContext, type CollectReach, type SourceUnit } from '../collect';
import type { SourceSpec } from '../collect/source-spec';
import { S3Client } from '@aws-sdk/client-s3';
import { commitStage, type StageOutput } from './stage-output';
import { stageWriters, type PartitionLimits, type StageCursor } from './stage-io';

/** Batches per run at most: keeps the workflow's history and fan-out bounded whatever the number of files. */
const MAX_BATCHES = 256;

/** The byte budget of a collection unit and batch when the spec sets none. */
export const DEFAULT_UNIT_BYTES = 64 * 1024 * 1024;

export interface CollectionPlanSummary {
  plan: ArtifactRef;
  units: number;
  batches: number;
  bytes: number;
}

interface CollectionPlan {
  units: SourceUnit[];
  /** The index of each batch's first unit; a batch runs to the next one's first. */
  batchStarts?: number[];
  /** A plan stored before batches were planned by bytes: every batch held this many units. */
  unitsPerBatch?: number;
}

/** The units of one batch of a plan, whichever way the plan was stored. */
function batchOf(plan: CollectionPlan, batch: number): SourceUnit[] {
  if (plan.batchStarts === undefined) {
    const per = plan.unitsPerBatch ?? 1;
    return plan.units.slice(batch * per, (batch + 1) * per);
  }
  return plan.units.slice(plan.batchStarts[batch], plan.batchStarts[batch + 1] ?? plan.units.length);
}

function batchCount(plan: CollectionPlan): number {
  return plan.batchStarts?.length ?? Math.ceil(plan.units.length / (plan.unitsPerBatch ?? 1));
}

/**
 * Groups consecutive units into batches of at most `unitBytes` (a unit larger than that, which cannot be split, is
 * a batch alone) and at most `unitsPerBatch` units; returns each batch's first unit. Past `maxBatches` batches the
 * budgets grow until the plan fits. Batches cover the units in order, so the dataset is the same however they fall.
 *
 * The batches are then evened out: among the groupings into as many batches, the one whose largest batch is smallest
 * (the smallest budget, at most the one that fit, that still gives that many). Filling each batch to the budget would leave a small last one, and
 * a stage is as slow as its largest batch: eight 12.6 MB files under 64 MiB became 63 + 38 MB, one core idle for the
 * last 40% of each stage, where 50 + 50 MB keeps both busy.
 */
export function planBatches(
  units: Pick<SourceUnit, 'bytes'>[],
  limits: { unitBytes: number; unitsPerBatch: number; maxBatches?: number },
): number[] {
  const maxBatches = limits.maxBatches ?? MAX_BATCHES;
  const perBatch = Math.max(limits.unitsPerBatch, Math.ceil(units.length / maxBatches));
  const group = (budget: number): number[] => {
    const starts: number[] = [];
    let bytes = 0;
    units.forEach((unit, i) => {
      const count = starts.length === 0 ? 0 : i - starts[starts.length - 1];
      if (starts.length === 0 || count >= perBatch || bytes + unit.bytes > budget) {
        starts.push(i);
        bytes = 0;
      }
      bytes += unit.bytes;
    });
    return starts;
  };
  let budget = limits.unitBytes;
  let starts = group(budget);
  for (; starts.length > maxBatches; starts = group(budget)) budget *= 2;
  // The smallest budget that still gives no more batches: greedy grouping makes fewer batches as the budget grows.
  let low = 0;
  while (budget - low > 1) {
    const mid = Math.floor((low + budget) / 2);
    if (group(mid).length <= starts.length) budget = mid;
    else low = mid;
  }
  return group(budget);
}

function contextFor(store: TieredStore, reach: CollectReach): CollectContext {
  const { allowedRoots, allowedBuckets, allowedHosts } = reach;
  return { s3: s3ClientOf(store), store, now: () => new Date(), allowedRoots, allowedBuckets, allowedHosts };
}

/** S3 sources reuse the warm tier's client (endpoint and credentials) when the warm tier is on S3. */
function s3ClientOf(store: TieredStore): S3Client | undefined {
  for (const tier of ['warm', 'cold', 'hot'] as const) {
    const backend = store.tier(tier) as { client?: unknown };
    if (backend.client instanceof S3Client) return backend.client;
  }
  return undefined;
}

/**
 * Lists every source's units (files, objects, URLs, sample slices) in a deterministic order, cuts large JSON lines
 * files into byte ranges and large Parquet files into runs of row groups of about `unitBytes`, groups units into
 * batches of about `unitBytes`, and stores the plan as an
 * object: the workflow carries only its reference and counts, however many files there are.
 */
export async function planCollection(
  input: CollectReach & {
    store: TieredStore;
    folder: string;
    sources: SourceSpec[];
    unitsPerBatch: number;
    /** Bytes per unit and per batch (DEFAULT_UNIT_BYTES when left out). */
    unitBytes?: number;
    s3?: S3Client;
    /** Bytes of large files scanned so far (where their ranges' lines start), for heartbeats. */
    onProgress?: (p: { scannedBytes: number }) => void;
  },
): Promise<CollectionPlanSummary> {
  const ctx = { ...contextFor(input.store, input), ...(input.s3 ? { s3: input.s3 } : {}) };
  const listed: SourceUnit[] = [];
  for (const source of input.sources) listed.push(...(await planSource(source, ctx)));
  const uri = `${input.folder}/plan.json`;
  // The first plan of a run stands: batches committed against it must not be mixed with batches of a new listing.
  if (await input.store.exists(uri)) {
    const bytes = await input.store.getBytes(uri);
    const kept = JSON.parse(bytes.toString('utf8')) as CollectionPlan;
    return {
      plan: { uri, sha256: sha256Hex(bytes), bytes: bytes.length },
      units: kept.units.length,
      batches: batchCount(kept),
      bytes: kept.units.reduce((n, u) => n + u.bytes, 0),
    };
  }
  const unitBytes = input.unitBytes ?? DEFAULT_UNIT_BYTES;
  const onProgress = (scannedBytes: number) => input.onProgress?.({ scannedBytes });
  const units = await splitUnits(listed, { unitBytes, ctx, onProgress });
  const plan: CollectionPlan = {
    units,
    batchStarts: planBatches(units, { unitBytes, unitsPerBatch: input.unitsPerBatch }),
  };
  const put = await input.store.put(uri, JSON.stringify(plan));
  return {
    plan: { uri, sha256: put.sha256, bytes: put.bytes },
    units: units.length,
    batches: batchCount(plan),
    bytes: units.reduce((n, u) => n + u.bytes, 0),
  };
}

async function readPlan(store: TieredStore, ref: ArtifactRef): Promise<CollectionPlan> {
  const bytes = await store.getBytes(ref.uri);
  const actual = sha256Hex(bytes);
  if (actual !== ref.sha256) {
    throw new ChecksumMismatch(
      ref.uri,
      { expectedSha256: ref.sha256, actualSha256: actual, expectedBytes: ref.bytes, actualBytes: bytes.length },
      'collection plan',
    );
  }
  return JSON.parse(bytes.toString('utf8')) as CollectionPlan;
}

/** A cursor that no longer fits its input: the retry must start the batch over (retryable). */
export class ResumeMismatch extends FlywheelError {
  constructor(message: string) {
    // Retried: the next attempt starts the batch over from the input as it is now.
    super('ResumeMismatch', message, { retryable: true });
  }
}

/**
 * Reads one batch of units into document partitions of bounded size; records that cannot become documents go to
 * the batch's rejected partitions with their reason. Each time a partition fills, `onCheckpoint` gets the cursor:
 * a retry given it (`resumeFrom`) keeps the partitions already stored, skips the records they hold, and writes the
 * rest, so a crash late in a large file costs one partition of work, not the batch. Output keys are fixed and the
 * cuts depend only on the input, so a rewrite replaces, never duplicates.
 */
export async function collectBatch(
  input: CollectReach & {
    store: TieredStore;
    folder: string;
    plan: ArtifactRef;
    batch: number;
    limits: PartitionLimits;
    resumeFrom?: StageCursor;
    onCheckpoint?: (cursor: StageCursor) => void;
    onProgress?: (p: { units: number; documents: number; quarantined: number }) => void;
  },
): Promise<StageOutput> {
  const plan = await readPlan(input.store, input.plan);
  const ctx = contextFor(input.store, input);
  const resume = input.resumeFrom;
  const stats = resume ? structuredClone(resume.stats) : emptyStats();
  const writers = stageWriters(input.store, input.folder, input.limits, resume);
  const units = batchOf(plan, input.batch);
  let quarantined = Object.values(stats.dropped).reduce((n, c) => n + c, 0);
  for (let u = resume?.unit ?? 0; u < units.length; u++) {
    // Records of this unit that the resumed-from partitions already hold are read again, not written again.
    let skip = resume && u === resume.unit ? resume.record : 0;
    let record = 0;
    // Records passed over are not records of the cursor (which counts documents and quarantine records): one passed
    // over before the resumed-from record is already in the cursor's stats.
    const onSkipped = (what: string) => {
      if (skip === 0) countSkipped(stats, what);
    };
    for await (const event of readUnit(units[u], ctx, { onSkipped })) {
      record += 1;
      if (skip > 0) {
        skip -= 1;
        continue;
      }
      stats.input += 1;
      let boundary = false;
      if (event.kind === 'document') {
        stats.kept += 1;
        stats.keptBytes += Buffer.byteLength(event.doc.text);
        boundary = await writers.keep(event.doc);
      } else {
        quarantined += 1;
        countDrop(stats, `collect.${event.record.reason}`);
        await writers.reject({ stage: 'collect', ...event.record });
      }
      if (boundary) input.onCheckpoint?.({ unit: u, record, ...writers.closed(), stats: structuredClone(stats) });
      if (stats.input % 500 === 0) input.onProgress?.({ units: u, documents: stats.kept, quarantined });
    }
    if (skip > 0) {
      // The unit gave fewer records than the attempt being resumed had read: it changed or failed this time.
      throw new ResumeMismatch(
        `collect batch ${input.batch}: resuming after record ${resume!.record} of unit ${u}, the unit ended after ` +
          `${record}: its source changed or failed since the interrupted attempt; the batch starts over`,
      );
    }
    input.onProgress?.({ units: u + 1, documents: stats.kept, quarantined });
  }
  const out = await writers.finish();
  return commitStage(input.store, input.folder, 'pipeline-collect', { ...out, stats });
}
