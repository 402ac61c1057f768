import { commitManifest, findCommittedManifest, type ArtifactRef } from '../storage/manifest';
import type { TieredStore } from '../storage/tiered-store';
import type { StageStats } from '../contracts/pipeline-results';

/** A stage's committed output: a manifest of kept partitions, one of rejected records, and the counts. */
export interface StageOutput {
  partitions: ArtifactRef;
  /** How many partitions the manifest lists: the next stage's fan-out. */
  partitionCount: number;
  rejected?: ArtifactRef;
  stats: StageStats;
}

/**
 * Stage manifests carry a fixed time: a retried commit (say, by an attempt that outlived its heartbeat timeout) then
 * writes the very same bytes, so a ref handed out earlier stays valid.
 */
export const STAGE_EPOCH = new Date(0);

export interface RunKey {
  dataset: string;
  version: string;
  digest: string;
}

/** Where a run keeps its intermediate stages: named by the spec digest, so a different spec never reuses them. */
export function runFolder(key: RunKey): string {
  return `warm://pipelines/${key.dataset}/${key.version}/${key.digest}`;
}

/** The output a previous attempt or run committed at `folder`, if any: stages are reused, never recomputed. */
export async function committedStage(store: TieredStore, folder: string): Promise<StageOutput | undefined> {
  const found = await findCommittedManifest(store, `${folder}/manifest.json`);
  if (!found) return undefined;
  const meta = found.manifest.meta as { stats: StageStats; rejected?: ArtifactRef };
  return {
    partitions: found.ref,
    partitionCount: found.manifest.objects.length,
    rejected: meta.rejected,
    stats: meta.stats,
  };
}

/** Commits a stage: the rejected records' manifest first, then the stage manifest that points at it, last. */
export async function commitStage(
  store: TieredStore,
  folder: string,
  kind: string,
  out: { kept: readonly ArtifactRef[]; rejected: readonly ArtifactRef[]; stats: StageStats },
  /** More for the stage manifest's meta (a stage's own facts beside its stats). */
  meta: Record<string, unknown> = {},
): Promise<StageOutput> {
  const name = folder.slice(folder.indexOf('://') + 3);
  const rejected =
    out.rejected.length > 0
      ? await commitManifest(store, `${folder}/rejected.json`, {
          kind: `${kind}-rejected`,
          name,
          objects: out.rejected.map(({ uri, sha256, bytes }) => ({ uri, sha256, bytes })),
          meta: {},
          createdAt: STAGE_EPOCH,
        })
      : undefined;
  const partitions = await commitManifest(store, `${folder}/manifest.json`, {
    kind,
    name,
    objects: out.kept.map(({ uri, sha256, bytes }) => ({ uri, sha256, bytes })),
    meta: { ...meta, stats: out.stats, rejected },
    createdAt: STAGE_EPOCH,
  });
  return { partitions, partitionCount: out.kept.length, rejected, stats: out.stats };
}
