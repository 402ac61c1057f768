import { readManifest, type ArtifactRef } from '../../storage/manifest';
import { resolveAgainst } from './against';
import { committedNearDedup, type NearDedupOutput } from './commit';
import { nearDedupOptions, type NearDedupStepInput } from './step';

export interface NearDedupPlan {
  /** Input partitions: the sign and filter fan-out. */
  partitions: number;
  /** Index files of the `against` dataset, signed as more partitions ahead of the input's. */
  indexPartitions: number;
  /** The `against` dataset's index manifest. */
  against?: ArtifactRef;
  bands: number;
  rows: number;
  /** Bands per join activity. */
  bandGroups: number[][];
  /** The stage as an earlier run committed it: nothing left to do. */
  committed?: NearDedupOutput;
}

/** Contiguous groups of bands, at most `max` of them. */
export function bandGroups(bands: number, max: number): number[][] {
  const groups = Math.max(1, Math.min(bands, max));
  return Array.from({ length: groups }, (_, g) =>
    Array.from(
      { length: Math.floor(((g + 1) * bands) / groups) - Math.floor((g * bands) / groups) },
      (_, i) => Math.floor((g * bands) / groups) + i,
    ),
  );
}

/** Step 0: the fan-out (partitions, band groups) and the `against` index, or the committed stage. */
export async function planNearDedup(
  input: NearDedupStepInput & { input: ArtifactRef; maxBandActivities?: number },
): Promise<NearDedupPlan> {
  const options = nearDedupOptions(input.near);
  const { bands, rows } = options.lsh;
  const partitions = (await readManifest(input.store, input.input)).objects.length;
  const plan: NearDedupPlan = {
    partitions,
    indexPartitions: 0,
    bands,
    rows,
    bandGroups: bandGroups(bands, input.maxBandActivities ?? 8),
  };
  const committed = await committedNearDedup(input.store, input.folder);
  if (committed) return { ...plan, committed };
  if (input.near.against !== undefined) {
    plan.against = await resolveAgainst(input.store, input.near.against, options);
    plan.indexPartitions = (await readManifest(input.store, plan.against)).objects.length;
  }
  return plan;
}
