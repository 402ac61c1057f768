import { decodeJsonlGz } from '../document/jsonl-partition';
import { nearDedupFolder } from '../pipeline/near-dedup';
import { runFolder, type RunKey } from '../pipeline/stage-output';
import type { PipelineProgress } from '../contracts/pipeline-results';
import { findCommittedManifest, openVerified, readAll, type TieredStore } from '../storage';
import type { ClusterSizes } from './model';

/** Cluster size (kept document included) → number of clusters, from kept-document ids, one per removed copy. */
function sizesOf(keptIds: Iterable<string>): { sizes: Record<number, number>; removed: number } {
  const removedPerKept = new Map<string, number>();
  let removed = 0;
  for (const id of keptIds) {
    removedPerKept.set(id, (removedPerKept.get(id) ?? 0) + 1);
    removed += 1;
  }
  const sizes: Record<number, number> = {};
  for (const n of removedPerKept.values()) sizes[n + 1] = (sizes[n + 1] ?? 0) + 1;
  return { sizes, removed };
}

/** Exact dedup's clusters, from its rejected records: each names the first document it repeats (`duplicateOf`). */
async function exactClusters(store: TieredStore, folder: string, documents: number): Promise<ClusterSizes | undefined> {
  const stage = await findCommittedManifest(store, `${folder}/dedup/manifest.json`);
  if (!stage) return undefined;
  const rejected = await findCommittedManifest(store, `${folder}/dedup/rejected.json`);
  const kept: string[] = [];
  for (const partition of rejected?.manifest.objects ?? []) {
    for await (const record of decodeJsonlGz<{ duplicateOf?: string }>(await openVerified(store, partition)))
      if (record.duplicateOf !== undefined) kept.push(record.duplicateOf);
  }
  return { method: 'exact', documents, ...sizesOf(kept) };
}

/** Near dedup's clusters, from the per-partition removal files of its cluster step (`{doc, duplicateOf}` lines). */
async function nearClusters(store: TieredStore, folder: string, documents: number): Promise<ClusterSizes | undefined> {
  const clusters = await findCommittedManifest(store, `${nearDedupFolder(folder)}/clusters/manifest.json`);
  if (!clusters) return undefined;
  const kept: string[] = [];
  for (const part of clusters.manifest.objects) {
    const text = (await readAll(await openVerified(store, part))).toString('utf8');
    for (const line of text.split('\n')) if (line) kept.push((JSON.parse(line) as { duplicateOf: string }).duplicateOf);
  }
  return { method: 'near', documents, ...sizesOf(kept) };
}

/**
 * The duplicate-cluster sizes of a pipeline run, read from its stage outputs under
 * warm://pipelines/<dataset>/<version>/<digest>/. Stages that did not run, or whose outputs were collected as
 * garbage since, are left out.
 */
export async function dedupClusterSizes(
  store: TieredStore,
  key: RunKey,
  stages: PipelineProgress['stages'],
): Promise<ClusterSizes[]> {
  const folder = runFolder(key);
  const found = await Promise.all([
    stages.dedup && (stages.dedup.dropped['dedup.exact'] ?? 0) >= 0
      ? exactClusters(store, folder, stages.dedup.input)
      : undefined,
    stages.nearDedup ? nearClusters(store, folder, stages.nearDedup.input) : undefined,
  ]);
  return found.filter((c): c is ClusterSizes => c !== undefined);
}
