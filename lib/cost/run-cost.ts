import { findCommittedManifest } from '../storage/manifest';
import { parseTierUri, TIERS, type TieredStore } from '../storage/tiered-store';
import type { PriceTable } from './prices';
import { noBytes, type ActivityUsage, type TierBytes } from './usage';

/** What a set of activity attempts used, and what that cost. */
export interface UsageLine extends Pick<
  ActivityUsage,
  'wallSeconds' | 'cpuSeconds' | 'gpuSeconds' | 'bytesRead' | 'bytesWritten' | 's3Requests'
> {
  /** A pipeline stage (collect, filter, dedup, ...), an activity type, or `total`. */
  name: string;
  attempts: number;
  cost: { cpu: number; gpu: number; requests: number; total: number };
}

/** One workflow's cost: per stage, its total, and what the data it leaves costs per month. */
export interface RunCost {
  workflowId: string;
  kind: 'pipeline' | 'training' | 'flywheel' | 'other';
  stages: UsageLine[];
  total: UsageLine;
  /** Bytes the run leaves per tier (its manifests' objects and its folders), and their price per month. */
  storage: { bytes: TierBytes; perMonth: number };
  /** Usage records that could not be read (never silently dropped). */
  unreadable: string[];
}

/** A registered model version: its training run's cost plus its share of its dataset's pipeline. */
export interface ModelVersionCost {
  model: string;
  version: string;
  run: string;
  dataset: string;
  /** The pipeline that built the dataset, when its usage was found. */
  datasetWorkflowId?: string;
  training: number;
  /** The dataset pipeline's cost split evenly over every registered version trained on that dataset. */
  datasetShare: { versions: number; cost: number };
  total: number;
}

export interface CostReport {
  currency: string;
  /** False when no price table is configured: usage is measured, every amount is 0. */
  priced: boolean;
  runs: RunCost[];
  models: ModelVersionCost[];
  /** Every run above together (a flywheel round's children included once). */
  total: UsageLine;
  storagePerMonth: number;
}

const GB = 1e9;

/** Sums attempts into one line priced by `prices` (CPU and GPU per hour, requests per thousand). */
export function usageLine(name: string, attempts: readonly ActivityUsage[], prices: PriceTable): UsageLine {
  const line = {
    name,
    attempts: attempts.length,
    wallSeconds: 0,
    cpuSeconds: 0,
    gpuSeconds: 0,
    bytesRead: noBytes(),
    bytesWritten: noBytes(),
    s3Requests: 0,
  };
  for (const a of attempts) {
    line.wallSeconds += a.wallSeconds;
    line.cpuSeconds += a.cpuSeconds;
    line.gpuSeconds += a.gpuSeconds;
    line.s3Requests += a.s3Requests;
    for (const tier of TIERS) {
      line.bytesRead[tier] += a.bytesRead[tier];
      line.bytesWritten[tier] += a.bytesWritten[tier];
    }
  }
  const cpu = (line.cpuSeconds / 3600) * prices.cpuHour;
  const gpu = (line.gpuSeconds / 3600) * prices.gpuHour;
  const requests = (line.s3Requests / 1000) * prices.per1000Requests;
  return { ...line, cost: { cpu, gpu, requests, total: cpu + gpu + requests } };
}

/** Per stage (in the order stages first ran) and in total; `stageOf` names an attempt's stage. */
export function runUsage(
  attempts: readonly ActivityUsage[],
  prices: PriceTable,
  stageOf: (activityType: string) => string = (t) => t,
): { stages: UsageLine[]; total: UsageLine } {
  const byStage = new Map<string, ActivityUsage[]>();
  for (const a of attempts) {
    const stage = stageOf(a.activityType);
    byStage.set(stage, [...(byStage.get(stage) ?? []), a]);
  }
  return {
    stages: [...byStage].map(([stage, list]) => usageLine(stage, list, prices)),
    total: usageLine('total', attempts, prices),
  };
}

/** A month of storing `bytes` per tier at the table's GB-month prices. */
export function storagePerMonth(bytes: TierBytes, prices: PriceTable): number {
  return TIERS.reduce((sum, tier) => sum + (bytes[tier] / GB) * prices.gbMonth[tier], 0);
}

/**
 * The bytes a run leaves per tier: every object its committed manifests list (each manifest too) and everything under
 * its folders (intermediates, checkpoints), each object counted once.
 */
export async function bytesLeft(
  store: TieredStore,
  where: { manifests?: readonly string[]; prefixes?: readonly string[] },
): Promise<TierBytes> {
  const seen = new Map<string, number>();
  for (const uri of where.manifests ?? []) {
    const found = await findCommittedManifest(store, uri).catch(() => undefined);
    if (!found) continue;
    seen.set(uri, found.ref.bytes);
    for (const o of found.manifest.objects) seen.set(o.uri, o.bytes);
  }
  for (const prefix of where.prefixes ?? []) {
    for await (const entry of store.listAll(prefix)) seen.set(entry.uri, entry.bytes);
  }
  const bytes = noBytes();
  for (const [uri, n] of seen) bytes[parseTierUri(uri).tier] += n;
  return bytes;
}
