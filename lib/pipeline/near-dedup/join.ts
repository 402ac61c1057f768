import {
  decodeBandRun,
  EdgeList,
  encodeEdges,
  ExactSimilarity,
  joinBand,
  SignatureSubset,
  verifyGroups,
  verifyOptionsOf,
  type BandRun,
} from '../../dedup';
import { mapLimit } from '../../common/map-limit';
import { z } from 'zod';
import { commitManifest, findCommittedManifest, parseManifestMeta } from '../../storage/manifest';
import { STAGE_EPOCH } from '../stage-output';
import { putArtifact, readVerified } from '../stage-io';
import { bandFile, edgesFile, edgesManifestUri } from './layout';
import { loadShingles, loadSignatures, signatureUnits, unitFile, type SignatureUnit } from './signature-units';
import { nearDedupOptions, READ_CONCURRENCY, type NearDedupStepInput } from './step';

/** One step's counts from the band join. */
export const BandJoinCountsSchema = z.looseObject({
  candidates: z.number(),
  compared: z.number(),
  accepted: z.number(),
});
export type BandJoinCounts = Pick<z.infer<typeof BandJoinCountsSchema>, 'candidates' | 'compared' | 'accepted'>;

/**
 * Step b for a group of bands: each band's runs from every unit joined into candidate groups, verified by the exact
 * Jaccard of their shingle sets (or, with `verify: 'estimate'` and for an `against` index's documents, the Jaccard
 * estimated from full signatures; both loaded for the candidates only), written as that band's edges. A band's
 * edges depend on that band alone, so any grouping of bands gives the same files.
 */
export async function joinNearDedupBands(
  input: NearDedupStepInput & {
    indexPartitions: number;
    partitions: number;
    bands: readonly number[];
    onProgress?: (band: number) => void;
  },
): Promise<BandJoinCounts> {
  const { store, folder } = input;
  const options = nearDedupOptions(input.near);
  const numPerm = options.minhash.numPerm;
  const total: BandJoinCounts = { candidates: 0, compared: 0, accepted: 0 };
  let units: SignatureUnit[] | undefined;
  const subset = new SignatureSubset(numPerm);
  const exact = options.verification === 'exact' ? new ExactSimilarity(subset) : undefined;
  for (const band of input.bands) {
    const manifestUri = edgesManifestUri(folder, band);
    const committed = await findCommittedManifest(store, manifestUri);
    let counts: BandJoinCounts;
    if (committed) counts = parseManifestMeta(manifestUri, committed.manifest, BandJoinCountsSchema).meta;
    else {
      units ??= (await signatureUnits(store, folder, input.indexPartitions, input.partitions)).units;
      const runs: BandRun[] = await mapLimit(units, READ_CONCURRENCY, async (unit) => {
        const run = decodeBandRun(await readVerified(store, unitFile(unit, bandFile(band))));
        for (let i = 0; i < run.docs.length; i++) run.docs[i] += unit.docBase;
        return run;
      });
      const groups = joinBand(runs.length ? runs : [emptyRun(band)]);
      await loadSignatures(store, units, numPerm, subset, groups.docs);
      if (exact) await loadShingles(store, units, exact, groups.docs);
      const edges = new EdgeList();
      counts = verifyGroups(groups, exact ?? subset, edges, verifyOptionsOf(options));
      const ref = await putArtifact(store, edgesFile(folder, band), encodeEdges(band, edges));
      await commitManifest(store, manifestUri, {
        kind: 'near-dedup-edges',
        name: `${folder}/edges/${band}`,
        objects: [ref],
        meta: { ...counts, band, edges: edges.count },
        createdAt: STAGE_EPOCH,
      });
    }
    total.candidates += counts.candidates;
    total.compared += counts.compared;
    total.accepted += counts.accepted;
    input.onProgress?.(band);
  }
  return total;
}

function emptyRun(band: number): BandRun {
  return { band, keyHi: new Uint32Array(0), keyLo: new Uint32Array(0), docs: new Uint32Array(0) };
}
