import { sCurveThreshold, type SignatureIndexMeta } from '../../dedup';
import { mapLimit } from '../../common/map-limit';
import { mergeStats, type StageStats } from '../../contracts/pipeline-results';
import {
  commitManifest,
  findCommittedManifest,
  readManifest,
  type ArtifactRef,
  type Manifest,
} from '../../storage/manifest';
import type { TieredStore } from '../../storage/tiered-store';
import { commitStage, STAGE_EPOCH, type StageOutput } from '../stage-output';
import { ClustersMetaSchema } from './cluster';
import { filterFolder } from './layout';
import { nearDedupOptions, round, type NearDedupStepInput } from './step';

/** What the stage manifest records beside its stats: the LSH parameters and what the join and clustering found. */
export interface NearDedupFacts {
  threshold: number;
  numPerm: number;
  ngram: number;
  bands: number;
  rows: number;
  /** (1/b)^(1/r): where the S-curve is steepest, near its 50% point. */
  sCurveMidpoint: number;
  /** How candidate pairs were verified: the exact Jaccard of shingle sets, or the signatures' estimate. */
  verification: 'exact' | 'estimate' | 'none';
  verifyThreshold: number | null;
  /** Candidate pairs and verified ones, summed over bands: a pair found in several bands counts in each. */
  candidatePairs: number;
  verifiedPairs: number;
  /** Clusters that removed at least one document. */
  clusters: number;
  /** Documents of the dataset deduplicated against (`against`), never removed. */
  indexed: number;
  /** Removed documents whose kept document is an indexed one. */
  indexDuplicates: number;
}

export interface NearDedupOutput extends StageOutput {
  near: NearDedupFacts;
  /** The signature index of the kept documents (a manifest of index files): what a later run's `against` reads. */
  index: ArtifactRef;
}

/** The stage's committed output, if a run committed it. */
export async function committedNearDedup(store: TieredStore, folder: string): Promise<NearDedupOutput | undefined> {
  const found = await findCommittedManifest(store, `${folder}/manifest.json`);
  if (!found) return undefined;
  const meta = found.manifest.meta as {
    stats: StageStats;
    rejected?: ArtifactRef;
    near: NearDedupFacts;
    index: ArtifactRef;
  };
  return {
    partitions: found.ref,
    partitionCount: found.manifest.objects.length,
    rejected: meta.rejected,
    stats: meta.stats,
    near: meta.near,
    index: meta.index,
  };
}

/**
 * Step e: the stage's outputs as one: every filtered partition's kept and rejected partitions in order, the kept
 * documents' signature index, and the stats with the LSH facts, in the stage manifest written last.
 */
export async function commitNearDedup(
  input: NearDedupStepInput & { partitions: number; clusters: ArtifactRef },
): Promise<NearDedupOutput> {
  const { store, folder } = input;
  const committed = await committedNearDedup(store, folder);
  if (committed) return committed;
  const options = nearDedupOptions(input.near);
  const parts = await mapLimit(
    Array.from({ length: input.partitions }, (_, p) => filterFolder(folder, p)),
    16,
    async (partFolder) => {
      const found = await findCommittedManifest(store, `${partFolder}/manifest.json`);
      if (!found) throw new Error(`near dedup: ${partFolder} is not committed; filter that partition first`);
      const meta = found.manifest.meta as { stats: StageStats; rejected?: ArtifactRef; index: ArtifactRef };
      const rejected: Manifest['objects'] = meta.rejected ? (await readManifest(store, meta.rejected)).objects : [];
      return { kept: found.manifest.objects, rejected, stats: meta.stats, index: meta.index };
    },
  );
  const stats = mergeStats(parts.map((p) => p.stats));
  const index = await commitManifest(store, `${folder}/index.json`, {
    kind: 'near-dedup-index',
    name: `${folder}/index`,
    objects: parts.map((p) => p.index),
    meta: {
      version: 1,
      params: options.minhash,
      exactField: null,
      documents: stats.kept,
    } satisfies SignatureIndexMeta,
    createdAt: STAGE_EPOCH,
  });
  const clusters = (await readManifest(store, input.clusters, ClustersMetaSchema)).meta;
  const near: NearDedupFacts = {
    threshold: options.threshold,
    numPerm: options.minhash.numPerm,
    ngram: options.minhash.ngram,
    bands: options.lsh.bands,
    rows: options.lsh.rows,
    sCurveMidpoint: round(sCurveThreshold(options.lsh), 4),
    verification: options.verification,
    verifyThreshold: options.verifyThreshold === undefined ? null : round(options.verifyThreshold, 4),
    candidatePairs: clusters.candidatePairs,
    verifiedPairs: clusters.verifiedPairs,
    clusters: clusters.clusters,
    indexed: clusters.indexed,
    indexDuplicates: clusters.indexDuplicates,
  };
  const out = await commitStage(
    store,
    folder,
    'pipeline-near-dedup',
    { kept: parts.flatMap((p) => p.kept), rejected: parts.flatMap((p) => p.rejected), stats },
    { near, index },
  );
  return { ...out, near, index };
}
