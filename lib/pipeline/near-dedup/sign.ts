import {
  emptyPartition,
  encodeBandRun,
  encodeShingles,
  encodeSignatures,
  MinHasher,
  packShingles,
  partitionBandRuns,
  shingleSetOf,
  type ChunkSettings,
  type MinHashParams,
  type PackedShingles,
  type PartitionSignatures,
  type ResolvedDedupOptions,
  type SignedChunk,
} from '../../dedup';
import { mapLimit } from '../../common/map-limit';
import { commitManifest, findCommittedManifest, readManifest } from '../../storage/manifest';
import type { ArtifactRef } from '../../storage/manifest';
import type { TieredStore } from '../../storage/tiered-store';
import { STAGE_EPOCH } from '../stage-output';
import { mapPartitionRanges, putArtifact } from '../stage-io';
import { readAgainstUnit } from './against';
import { bandFile, signatureFolder, SHINGLES_FILE } from './layout';
import type { NearDedupPlan } from './plan';
import { nearDedupOptions, READ_CONCURRENCY, type NearDedupStepInput } from './step';

/** Signs on worker threads: the command's pool, whose workers read byte ranges of a JSON-lines file. */
export interface ChunkSigningPool {
  sign(settings: ChunkSettings, file: string, start: number, end: number): Promise<SignedChunk>;
}

const hashers = new Map<string, MinHasher>();

/** One hasher per parameters and process: building the kernel costs more than banding a partition. */
function hasherFor(params: MinHashParams): MinHasher {
  const key = JSON.stringify(params);
  let hasher = hashers.get(key);
  if (!hasher) {
    hasher = new MinHasher(params);
    hashers.set(key, hasher);
  }
  return hasher;
}

/**
 * Step a for one unit: a partition of the input (signed on the pool's worker threads) or one index file of the
 * `against` dataset (signatures already there, banded here). Writes the unit's signatures, ids and one run per band
 * sorted by key; returns its documents.
 */
export async function signNearDedupUnit(
  input: NearDedupStepInput & {
    input: ArtifactRef;
    plan: Pick<NearDedupPlan, 'indexPartitions' | 'against'>;
    unit: number;
    pool: ChunkSigningPool;
    onProgress?: (documents: number) => void;
  },
): Promise<{ documents: number }> {
  const { store, plan } = input;
  const unitFolder = signatureFolder(input.folder, input.unit, plan.indexPartitions);
  const committed = await findCommittedManifest(store, `${unitFolder}/manifest.json`);
  if (committed) return { documents: (committed.manifest.meta as { documents: number }).documents };
  const options = nearDedupOptions(input.near);
  let signed: { part: PartitionSignatures; ids: string[]; shingles?: PackedShingles };
  if (input.unit < plan.indexPartitions) {
    if (!plan.against) throw new Error('signNearDedupUnit: an index unit without the index manifest');
    signed = await readAgainstUnit(store, plan.against, input.unit);
  } else {
    const partition = (await readManifest(store, input.input)).objects[input.unit - plan.indexPartitions];
    signed = await signPartition(store, partition, options, input.pool, input.onProgress);
  }
  const { part, ids } = signed;
  const runs = partitionBandRuns(hasherFor(options.minhash), part, options.lsh);
  const objects = [
    await putArtifact(store, `${unitFolder}/sigs.bin`, encodeSignatures(part)),
    ...(signed.shingles
      ? [await putArtifact(store, `${unitFolder}/${SHINGLES_FILE}`, encodeShingles(signed.shingles))]
      : []),
    await putArtifact(store, `${unitFolder}/ids.txt`, ids.map((id) => id + '\n').join('')),
    ...(await mapLimit(runs, READ_CONCURRENCY, (run) =>
      putArtifact(store, `${unitFolder}/${bandFile(run.band)}`, encodeBandRun(run)),
    )),
  ];
  await commitManifest(store, `${unitFolder}/manifest.json`, {
    kind: 'near-dedup-signatures',
    name: unitFolder,
    objects,
    meta: { documents: part.count, eligible: runs[0]?.docs.length ?? 0 },
    createdAt: STAGE_EPOCH,
  });
  return { documents: part.count };
}

/** A partition's documents signed on worker threads, numbered from 0 in partition order; ids as JSON. */
async function signPartition(
  store: TieredStore,
  partition: ArtifactRef,
  options: ResolvedDedupOptions,
  pool: ChunkSigningPool,
  onProgress?: (documents: number) => void,
): Promise<{ part: PartitionSignatures; ids: string[]; shingles?: PackedShingles }> {
  // The pool's workers read byte ranges of a local JSON-lines file: a document record is a line {"id", "text", ...}.
  const settings: ChunkSettings = {
    minhash: options.minhash,
    lsh: options.lsh,
    exactField: undefined,
    // Exact verification reads the candidates' shingle sets in the join step: each unit keeps its documents'.
    shingles: options.verification === 'exact',
  };
  let documents = 0;
  const chunks = await mapPartitionRanges(store, partition, async (file, start, end) => {
    const chunk = await pool.sign(settings, file, start, end);
    onProgress?.((documents += chunk.count));
    return chunk;
  });
  return joinChunks(chunks, options.minhash.numPerm);
}

/** Signed chunks, in order, as one partition's signatures, ids and (when signed with them) shingle sets. */
function joinChunks(
  chunks: readonly SignedChunk[],
  numPerm: number,
): { part: PartitionSignatures; ids: string[]; shingles?: PackedShingles } {
  const count = chunks.reduce((n, c) => n + c.count, 0);
  const part = emptyPartition(count, numPerm);
  const ids: string[] = [];
  let at = 0;
  for (const c of chunks) {
    part.sigs.set(c.sigs.subarray(0, c.count * numPerm), at * numPerm);
    part.exactHi.set(c.exactHi, at);
    part.exactLo.set(c.exactLo, at);
    part.words.set(c.words, at);
    for (const id of c.ids) ids.push(id);
    at += c.count;
  }
  if (chunks.some((c) => c.shingles === undefined)) return { part, ids };
  const sets: Uint32Array[] = [];
  for (const c of chunks) for (let i = 0; i < c.count; i++) sets.push(shingleSetOf(c.shingles as PackedShingles, i));
  return { part, ids, shingles: packShingles(sets) };
}
