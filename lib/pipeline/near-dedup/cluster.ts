import { decodeEdges, ExactSimilarity, resolveClusters, SignatureSubset, UnionFind } from '../../dedup';
import { mapLimit } from '../../common/map-limit';
import { z } from 'zod';
import { commitManifest, findCommittedManifest, parseManifestMeta, type ArtifactRef } from '../../storage/manifest';
import { STAGE_EPOCH } from '../stage-output';
import { putArtifact, readVerified } from '../stage-io';
import { BandJoinCountsSchema } from './join';
import { clustersFile, clustersManifestUri, edgesManifestUri } from './layout';
import { byUnit, loadShingles, loadSignatures, signatureUnits, unitFile, unitOf } from './signature-units';
import { nearDedupOptions, READ_CONCURRENCY, round, type NearDedupStepInput } from './step';

export interface NearDedupClusters {
  /** Manifest of the per-partition removal files, in partition order. */
  clusters: ArtifactRef;
  documents: number;
  removed: number;
}

/** One line of a removal file: a document of the partition (by position) and the kept document of its cluster. */
export interface Removal {
  doc: number;
  duplicateOf: string;
  similarity: number;
}

/** What the clusters manifest records beside the removal files. */
export const ClustersMetaSchema = z.looseObject({
  documents: z.number(),
  indexed: z.number(),
  removed: z.number(),
  clusters: z.number(),
  indexDuplicates: z.number(),
  candidatePairs: z.number(),
  verifiedPairs: z.number(),
});
export type ClustersMeta = z.infer<typeof ClustersMetaSchema>;

/**
 * Step c: connected components of every band's edges (union-find over all documents); the earliest document of a
 * component is kept, an indexed one when it has one. Writes, per input partition, its removed documents with the
 * kept document's id and their Jaccard (exact with exact verification, else estimated).
 */
export async function clusterNearDuplicates(
  input: NearDedupStepInput & {
    indexPartitions: number;
    partitions: number;
    bands: number;
    onProgress?: (step: { phase: 'union' | 'similarity' | 'write'; bands?: number }) => void;
  },
): Promise<NearDedupClusters> {
  const { store, folder } = input;
  const manifestUri = clustersManifestUri(folder);
  const committed = await findCommittedManifest(store, manifestUri);
  if (committed) {
    const { meta } = parseManifestMeta(manifestUri, committed.manifest, ClustersMetaSchema);
    return { clusters: committed.ref, documents: meta.documents, removed: meta.removed };
  }
  const options = nearDedupOptions(input.near);
  const numPerm = options.minhash.numPerm;
  const { units, indexed, total } = await signatureUnits(store, folder, input.indexPartitions, input.partitions);
  const uf = new UnionFind(total);
  let candidatePairs = 0;
  let verifiedPairs = 0;
  let unioned = 0;
  await mapLimit(
    Array.from({ length: input.bands }, (_, b) => b),
    READ_CONCURRENCY,
    async (band) => {
      const found = await findCommittedManifest(store, edgesManifestUri(folder, band));
      if (!found) throw new Error(`near dedup: the edges of band ${band} are not committed; join that band first`);
      const { meta } = parseManifestMeta(edgesManifestUri(folder, band), found.manifest, BandJoinCountsSchema);
      candidatePairs += meta.candidates;
      verifiedPairs += meta.accepted;
      const edges = decodeEdges(await readVerified(store, found.manifest.objects[0]));
      // Union order does not matter: a root is always its set's smallest document.
      for (let i = 0; i < edges.a.length; i++) uf.union(edges.a[i], edges.b[i]);
      input.onProgress?.({ phase: 'union', bands: ++unioned });
    },
  );
  input.onProgress?.({ phase: 'similarity' });
  const needed = new Set<number>();
  for (let d = indexed; d < total; d++) {
    const root = uf.find(d);
    if (root !== d) needed.add(d).add(root);
  }
  const subset = new SignatureSubset(numPerm);
  await loadSignatures(store, units, numPerm, subset, needed);
  let oracle: SignatureSubset | ExactSimilarity = subset;
  if (options.verification === 'exact') {
    oracle = new ExactSimilarity(subset);
    await loadShingles(store, units, oracle, needed);
  }
  const clusters = resolveClusters(uf, total, oracle, { removableFrom: indexed });

  // The kept documents' ids, from the units that hold them.
  const keptIds = new Map<number, string>();
  await mapLimit(
    [
      ...byUnit(
        units,
        Array.from(clusters.removed, (d) => clusters.keptOf[d]),
      ),
    ],
    READ_CONCURRENCY,
    async ([u, locals]) => {
      const lines = (await readVerified(store, unitFile(units[u], 'ids.txt'))).toString('utf8').split('\n');
      for (const local of locals) keptIds.set(units[u].docBase + local, JSON.parse(lines[local]) as string);
    },
  );
  let indexDuplicates = 0;
  const perPartition: Removal[][] = Array.from({ length: input.partitions }, () => []);
  clusters.removed.forEach((d, i) => {
    const kept = clusters.keptOf[d];
    if (kept < indexed) indexDuplicates++;
    const u = unitOf(units, d);
    perPartition[u - input.indexPartitions].push({
      doc: d - units[u].docBase,
      duplicateOf: keptIds.get(kept) as string,
      similarity: round(clusters.similarity[i], 4),
    });
  });
  input.onProgress?.({ phase: 'write' });
  const objects = await mapLimit(perPartition, READ_CONCURRENCY, (removals, p) =>
    putArtifact(store, clustersFile(folder, p), removals.map((r) => JSON.stringify(r) + '\n').join('')),
  );
  const meta: ClustersMeta = {
    documents: total - indexed,
    indexed,
    removed: clusters.removed.length,
    clusters: clusters.clusters,
    indexDuplicates,
    candidatePairs,
    verifiedPairs,
  };
  const ref = await commitManifest(store, manifestUri, {
    kind: 'near-dedup-clusters',
    name: `${folder}/clusters`,
    objects,
    meta,
    createdAt: STAGE_EPOCH,
  });
  return { clusters: ref, documents: meta.documents, removed: meta.removed };
}
