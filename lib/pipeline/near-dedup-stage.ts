import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { Document } from '../document/schema';
import { decodeJsonlGz } from '../document/jsonl-partition';
import {
  decodeBandRun,
  decodeEdges,
  decodeSignatureIndex,
  decodeSignatures,
  EdgeList,
  encodeBandRun,
  encodeEdges,
  encodeSignatures,
  indexMismatches,
  joinBand,
  MinHasher,
  partitionBandRuns,
  resolveClusters,
  resolveDedupOptions,
  sCurveThreshold,
  signatureIndexParts,
  signatureOffset,
  SignatureSubset,
  UnionFind,
  verifyGroups,
  type BandRun,
  type ChunkSettings,
  type MinHashParams,
  type PartitionSignatures,
  type ResolvedDedupOptions,
  type SignatureIndexMeta,
  type SignedChunk,
} from '../dedup';
import type { NearDedupSpec } from '../spec/pipeline';
import { InvalidSpec } from '../spec/invalid-spec';
import { countDrop, emptyStats, mergeStats, type StageStats } from '../spec/pipeline-results';
import {
  commitManifest,
  findCommittedManifest,
  openVerified,
  readManifest,
  type ArtifactRef,
  type Manifest,
} from '../storage/manifest';
import type { TieredStore } from '../storage/tiered-store';
import { commitStage, runFolder, STAGE_EPOCH, type StageOutput } from './stage-output';
import { stageWriters, type PartitionLimits } from './stage-io';

/**
 * Near-duplicate dedup as a pipeline stage, in steps that fan out like datatrove's, every step's output claim-checked
 * under `<run>/near-dedup/` and committed by a manifest written last (a retried or repeated step returns it):
 *
 *   a. sign, per partition:   signatures/part-N/  sigs.bin, ids.txt, band-B.bin (sorted by key) for every band
 *   b. join, per band group:  edges/band-B.bin    candidate pairs of the band, verified by estimated Jaccard
 *   c. cluster, once:         clusters/part-N.jsonl  union-find over every band's edges; per partition, what it removes
 *   d. filter, per partition: filter/part-N/      kept and rejected partitions, and index.bin of the kept documents
 *   e. commit, once:          index.json (the kept documents' signature index), then manifest.json, last
 *
 * Documents are numbered in input order across partitions (an `against` index's documents first), so the earliest
 * document of a cluster is kept, whatever ran where and in what order.
 */

/** What the stage manifest records beside its stats: the LSH parameters and what the join and clustering found. */
export interface NearDedupFacts {
  threshold: number;
  numPerm: number;
  ngram: number;
  bands: number;
  rows: number;
  /** (1/b)^(1/r): where the S-curve is steepest, near its 50% point. */
  sCurveMidpoint: number;
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

/** One step's counts from the band join. */
export interface BandJoinCounts {
  candidates: number;
  compared: number;
  accepted: number;
}

export interface NearDedupClusters {
  /** Manifest of the per-partition removal files, in partition order. */
  clusters: ArtifactRef;
  documents: number;
  removed: number;
}

/** Signs on worker threads: the command's pool, whose workers read byte ranges of a JSON-lines file. */
export interface ChunkSigningPool {
  sign(settings: ChunkSettings, file: string, start: number, end: number): Promise<SignedChunk>;
}

interface StageBase {
  store: TieredStore;
  /** `<run>/near-dedup` */
  folder: string;
  near: NearDedupSpec;
}

const pad = (n: number, width = 6) => String(n).padStart(width, '0');
const bandFile = (band: number) => `band-${pad(band, 3)}.bin`;
const SIGN_CHUNK_BYTES = 1 << 20;
const READ_CONCURRENCY = 8;

export function nearDedupFolder(run: string): string {
  return `${run}/near-dedup`;
}

/** The dedup options a near spec means; exact dedup is the stage before, so it is off here. */
export function nearDedupOptions(near: NearDedupSpec): ResolvedDedupOptions {
  return resolveDedupOptions({
    threshold: near.threshold,
    ngram: near.ngram,
    numPerm: near.numPerm,
    bands: near.bands,
    normalizeNumbers: near.normalizeNumbers,
    normalizeDiacritics: near.normalizeDiacritics,
    exact: false,
  });
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

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

/** Step 0: the fan-out (partitions, band groups) and the `against` index, or the committed stage. */
export async function planNearDedup(
  input: StageBase & { input: ArtifactRef; maxBandActivities?: number },
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

function againstProblem(message: string): InvalidSpec {
  return new InvalidSpec('dataPipeline', [{ field: 'dedup.near.against', message }]);
}

/**
 * The signature index of the dataset a spec dedups against: given its dataset manifest, its run folder, or the
 * near-dedup stage manifest of its run. It must have been signed the way this spec signs.
 */
export async function resolveAgainst(
  store: TieredStore,
  uri: string,
  options: ResolvedDedupOptions,
): Promise<ArtifactRef> {
  let stageUri = uri.endsWith('.json') ? uri : `${nearDedupFolder(uri.replace(/\/+$/, ''))}/manifest.json`;
  let index: ArtifactRef | undefined;
  if (uri.endsWith('.json')) {
    const found = await findCommittedManifest(store, uri);
    if (!found) throw againstProblem(`no manifest at ${uri} (${store.backendUri(uri)})`);
    // A composed dataset (base + additions) carries the index of all its documents itself.
    index = (found.manifest.meta as { nearIndex?: ArtifactRef }).nearIndex;
    if (!index && found.manifest.kind === 'dataset') {
      const meta = found.manifest.meta as { dataset: string; version: string; specDigest: string };
      stageUri = `${nearDedupFolder(runFolder({ ...meta, digest: meta.specDigest }))}/manifest.json`;
    } else if (!index && found.manifest.kind !== 'pipeline-near-dedup')
      throw againstProblem(`${uri} is a ${found.manifest.kind} manifest: give a dataset manifest`);
  }
  if (!index) {
    const stage = await findCommittedManifest(store, stageUri);
    index = (stage?.manifest.meta as { index?: ArtifactRef } | undefined)?.index;
  }
  if (!index)
    throw againstProblem(
      `${uri} has no near-dedup signature index (looked for ${stageUri}): build that dataset with dedup.near first`,
    );
  const meta = (await readManifest(store, index)).meta as unknown as SignatureIndexMeta;
  const problems = indexMismatches(meta, options, 'field');
  if (problems.length)
    throw againstProblem(`${uri} was signed another way: ${problems.join('; ')}. Use the same dedup.near settings`);
  return index;
}

/** Where step a writes signature unit `unit`: the `against` index's files first, then the input's partitions. */
function signatureFolder(folder: string, unit: number, indexPartitions: number): string {
  return unit < indexPartitions
    ? `${folder}/signatures/index-${pad(unit)}`
    : `${folder}/signatures/part-${pad(unit - indexPartitions)}`;
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

async function putRef(store: TieredStore, uri: string, body: Buffer | string): Promise<ArtifactRef> {
  const put = await store.put(uri, body);
  return { uri, sha256: put.sha256, bytes: put.bytes };
}

async function readVerified(store: TieredStore, ref: ArtifactRef): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await openVerified(store, ref)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Runs `fn` over items with at most `limit` in flight; results in item order. */
async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/**
 * Step a for one unit: a partition of the input (signed on the pool's worker threads) or one index file of the
 * `against` dataset (signatures already there, banded here). Returns its documents.
 */
export async function signNearDedupUnit(
  input: StageBase & {
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
  let signed: { part: PartitionSignatures; ids: string[] };
  if (input.unit < plan.indexPartitions) {
    if (!plan.against) throw new Error('signNearDedupUnit: an index unit without the index manifest');
    const file = (await readManifest(store, plan.against)).objects[input.unit];
    const index = decodeSignatureIndex(await readVerified(store, file));
    signed = { part: index.signatures, ids: index.ids };
  } else {
    const partition = (await readManifest(store, input.input)).objects[input.unit - plan.indexPartitions];
    signed = await signPartition(store, partition, options, input.pool, input.onProgress);
  }
  const { part, ids } = signed;
  const runs = partitionBandRuns(hasherFor(options.minhash), part, options.lsh);
  const objects = [
    await putRef(store, `${unitFolder}/sigs.bin`, encodeSignatures(part)),
    await putRef(store, `${unitFolder}/ids.txt`, ids.map((id) => id + '\n').join('')),
    ...(await mapLimit(runs, READ_CONCURRENCY, (run) =>
      putRef(store, `${unitFolder}/${bandFile(run.band)}`, encodeBandRun(run)),
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
): Promise<{ part: PartitionSignatures; ids: string[] }> {
  // The pool's workers read byte ranges of a local JSON-lines file: a document record is a line {"id", "text", ...}.
  const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'flywheel-near-dedup-'));
  try {
    const file = path.join(dir, 'partition.jsonl');
    await pipeline(await openVerified(store, partition), createGunzip(), fs.createWriteStream(file));
    const size = (await fs.promises.stat(file)).size;
    const settings: ChunkSettings = { minhash: options.minhash, lsh: options.lsh, exactField: undefined };
    const jobs: Promise<SignedChunk>[] = [];
    for (let start = 0; start < size; start += SIGN_CHUNK_BYTES)
      jobs.push(pool.sign(settings, file, start, Math.min(start + SIGN_CHUNK_BYTES, size)));
    let documents = 0;
    for (const job of jobs)
      void job.then(
        (c) => onProgress?.((documents += c.count)),
        () => undefined,
      );
    const settled = await Promise.allSettled(jobs);
    const chunks = settled.map((s) => {
      if (s.status === 'rejected') throw s.reason;
      return s.value;
    });
    const numPerm = options.minhash.numPerm;
    const count = chunks.reduce((n, c) => n + c.count, 0);
    const part: PartitionSignatures = {
      docBase: 0,
      count,
      numPerm,
      sigs: new Uint32Array(count * numPerm),
      exactHi: new Uint32Array(count),
      exactLo: new Uint32Array(count),
      words: new Uint32Array(count),
    };
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
    return { part, ids };
  } finally {
    await fs.promises.rm(dir, { recursive: true, force: true });
  }
}

/** A committed signature unit, placed in the global numbering. */
interface SignatureUnit {
  folder: string;
  docBase: number;
  documents: number;
  files: Map<string, ArtifactRef>;
}

/** Every signature unit of the stage, in numbering order, from their committed manifests. */
async function signatureUnits(
  store: TieredStore,
  folder: string,
  indexPartitions: number,
  partitions: number,
): Promise<{ units: SignatureUnit[]; indexed: number; total: number }> {
  const manifests = await mapLimit(
    Array.from({ length: indexPartitions + partitions }, (_, u) => signatureFolder(folder, u, indexPartitions)),
    16,
    async (unitFolder) => {
      const found = await findCommittedManifest(store, `${unitFolder}/manifest.json`);
      if (!found) throw new Error(`near dedup: the signatures of ${unitFolder} are not committed; sign them first`);
      return { unitFolder, manifest: found.manifest };
    },
  );
  let docBase = 0;
  let indexed = 0;
  const units = manifests.map(({ unitFolder, manifest }, u) => {
    const documents = (manifest.meta as { documents: number }).documents;
    const unit: SignatureUnit = {
      folder: unitFolder,
      docBase,
      documents,
      files: new Map(manifest.objects.map((o) => [o.uri.slice(unitFolder.length + 1), o])),
    };
    docBase += documents;
    if (u < indexPartitions) indexed += documents;
    return unit;
  });
  return { units, indexed, total: docBase };
}

function unitFile(unit: SignatureUnit, name: string): ArtifactRef {
  const ref = unit.files.get(name);
  if (!ref) throw new Error(`near dedup: ${unit.folder}/manifest.json lists no ${name}`);
  return ref;
}

/** Which unit holds global document `doc`. */
function unitOf(units: readonly SignatureUnit[], doc: number): number {
  let lo = 0;
  let hi = units.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >>> 1;
    if (units[mid].docBase <= doc) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Groups global documents by unit, as sorted unique local indices. */
function byUnit(units: readonly SignatureUnit[], docs: Iterable<number>): Map<number, number[]> {
  const out = new Map<number, number[]>();
  for (const doc of docs) {
    const u = unitOf(units, doc);
    let list = out.get(u);
    if (!list) out.set(u, (list = []));
    list.push(doc - units[u].docBase);
  }
  for (const [u, list] of out)
    out.set(
      u,
      [...new Set(list)].sort((a, b) => a - b),
    );
  return out;
}

/**
 * Loads the signatures of some documents into `subset`: a whole unit's file (verified against its sha256) when many
 * of its documents are wanted, else byte ranges of just those rows (runs of neighbours in one read).
 */
export async function loadSignatures(
  store: TieredStore,
  units: readonly SignatureUnit[],
  numPerm: number,
  subset: SignatureSubset,
  docs: Iterable<number>,
  opts: { denseShare?: number; maxRanges?: number } = {},
): Promise<void> {
  const missing: number[] = [];
  for (const doc of docs) if (!subset.has(doc)) missing.push(doc);
  const rowBytes = numPerm * 4;
  await mapLimit([...byUnit(units, missing)], READ_CONCURRENCY, async ([u, locals]) => {
    const unit = units[u];
    const file = unitFile(unit, 'sigs.bin');
    const ranges: [number, number][] = [];
    for (const local of locals) {
      const last = ranges[ranges.length - 1];
      if (last && last[1] === local) last[1] = local + 1;
      else ranges.push([local, local + 1]);
    }
    const rows = new Uint32Array(locals.length * numPerm);
    if (locals.length >= unit.documents * (opts.denseShare ?? 0.125) || ranges.length > (opts.maxRanges ?? 256)) {
      const part = decodeSignatures(await readVerified(store, file));
      locals.forEach((local, k) => rows.set(part.sigs.subarray(local * numPerm, (local + 1) * numPerm), k * numPerm));
    } else {
      let k = 0;
      for (const [from, to] of ranges) {
        const start = signatureOffset(numPerm, 0, from);
        const end = signatureOffset(numPerm, 0, to);
        if (end > file.bytes) throw new Error(`near dedup: ${file.uri} is shorter than its rows ${from}..${to}`);
        const chunks: Buffer[] = [];
        for await (const chunk of await store.get(file.uri, { range: { start, end: end - 1 } }))
          chunks.push(chunk as Buffer);
        const bytes = Buffer.concat(chunks);
        if (bytes.length !== end - start) throw new Error(`near dedup: short read of ${file.uri} at ${start}`);
        Buffer.from(rows.buffer, k * rowBytes, end - start).set(bytes);
        k += to - from;
      }
    }
    locals.forEach((local, k) => subset.add(unit.docBase + local, rows, k));
  });
}

const edgesManifestUri = (folder: string, band: number) =>
  `${folder}/edges/${bandFile(band).replace('.bin', '')}.manifest.json`;

/**
 * Step b for a group of bands: each band's runs from every unit joined into candidate groups, verified by the
 * Jaccard estimated from full signatures (loaded for the candidates only), written as that band's edges. A band's
 * edges depend on that band alone, so any grouping of bands gives the same files.
 */
export async function joinNearDedupBands(
  input: StageBase & {
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
  for (const band of input.bands) {
    const manifestUri = edgesManifestUri(folder, band);
    const committed = await findCommittedManifest(store, manifestUri);
    let counts: BandJoinCounts;
    if (committed) counts = committed.manifest.meta as unknown as BandJoinCounts;
    else {
      units ??= (await signatureUnits(store, folder, input.indexPartitions, input.partitions)).units;
      const runs: BandRun[] = await mapLimit(units, READ_CONCURRENCY, async (unit) => {
        const run = decodeBandRun(await readVerified(store, unitFile(unit, bandFile(band))));
        for (let i = 0; i < run.docs.length; i++) run.docs[i] += unit.docBase;
        return run;
      });
      const groups = joinBand(runs.length ? runs : [emptyRun(band)]);
      await loadSignatures(store, units, numPerm, subset, groups.docs);
      const edges = new EdgeList();
      counts = verifyGroups(groups, subset, edges, { minSimilarity: options.verifyThreshold });
      const ref = await putRef(store, `${folder}/edges/${bandFile(band)}`, encodeEdges(band, edges));
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

/** One line of a removal file: a document of the partition (by position) and the kept document of its cluster. */
interface Removal {
  doc: number;
  duplicateOf: string;
  similarity: number;
}

interface ClustersMeta {
  documents: number;
  indexed: number;
  removed: number;
  clusters: number;
  indexDuplicates: number;
  candidatePairs: number;
  verifiedPairs: number;
}

/**
 * Step c: connected components of every band's edges (union-find over all documents); the earliest document of a
 * component is kept, an indexed one when it has one. Writes, per input partition, its removed documents with the
 * kept document's id and their estimated Jaccard.
 */
export async function clusterNearDuplicates(
  input: StageBase & {
    indexPartitions: number;
    partitions: number;
    bands: number;
    onProgress?: (step: { phase: 'union' | 'similarity' | 'write'; bands?: number }) => void;
  },
): Promise<NearDedupClusters> {
  const { store, folder } = input;
  const manifestUri = `${folder}/clusters/manifest.json`;
  const committed = await findCommittedManifest(store, manifestUri);
  if (committed) {
    const meta = committed.manifest.meta as unknown as ClustersMeta;
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
      const meta = found.manifest.meta as unknown as BandJoinCounts;
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
  const clusters = resolveClusters(uf, total, subset, { removableFrom: indexed });

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
    putRef(store, `${folder}/clusters/part-${pad(p)}.jsonl`, removals.map((r) => JSON.stringify(r) + '\n').join('')),
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
    meta: meta as unknown as Record<string, unknown>,
    createdAt: STAGE_EPOCH,
  });
  return { clusters: ref, documents: meta.documents, removed: meta.removed };
}

/**
 * Step d for one partition: rewrites it without its removed documents, which go to the rejected partitions with
 * rule `dedup.near`, the kept document's id and the estimated Jaccard; writes the kept documents' signature index.
 */
export async function filterNearDuplicates(
  input: StageBase & {
    input: ArtifactRef;
    clusters: ArtifactRef;
    indexPartitions: number;
    index: number;
    limits: PartitionLimits;
    onProgress?: (documents: number) => void;
  },
): Promise<StageStats> {
  const { store } = input;
  const partFolder = `${input.folder}/filter/part-${pad(input.index)}`;
  const committed = await findCommittedManifest(store, `${partFolder}/manifest.json`);
  if (committed) return (committed.manifest.meta as { stats: StageStats }).stats;
  const options = nearDedupOptions(input.near);
  const removals = new Map<number, Removal>();
  const removalFile = (await readManifest(store, input.clusters)).objects[input.index];
  for (const line of (await readVerified(store, removalFile)).toString('utf8').split('\n'))
    if (line) {
      const r = JSON.parse(line) as Removal;
      removals.set(r.doc, r);
    }

  // The kept documents' signature index, from the partition's signatures: what a later `against` reads.
  const unitFolder = signatureFolder(input.folder, input.indexPartitions + input.index, input.indexPartitions);
  const unit = await findCommittedManifest(store, `${unitFolder}/manifest.json`);
  if (!unit) throw new Error(`near dedup: the signatures of ${unitFolder} are not committed; sign them first`);
  const file = (name: string) => unit.manifest.objects.find((o) => o.uri === `${unitFolder}/${name}`) as ArtifactRef;
  const part = decodeSignatures(await readVerified(store, file('sigs.bin')));
  const ids = (await readVerified(store, file('ids.txt'))).toString('utf8').split('\n');
  const kept = Array.from({ length: part.count }, (_, i) => i).filter((i) => !removals.has(i));
  const numPerm = part.numPerm;
  const keptSigs = new Uint32Array(kept.length * numPerm);
  kept.forEach((i, k) => keptSigs.set(part.sigs.subarray(i * numPerm, (i + 1) * numPerm), k * numPerm));
  const pick = (column: Uint32Array) => Uint32Array.from(kept, (i) => column[i]);
  const indexRef = await putRef(
    store,
    `${partFolder}/index.bin`,
    Buffer.concat([
      ...signatureIndexParts(
        { params: options.minhash, exactField: null },
        kept.map((i) => ids[i]),
        {
          count: kept.length,
          numPerm,
          sigs: keptSigs,
          exactHi: pick(part.exactHi),
          exactLo: pick(part.exactLo),
          words: pick(part.words),
        },
      ),
    ]),
  );

  const stats = emptyStats();
  const writers = stageWriters(store, partFolder, input.limits);
  const partition = (await readManifest(store, input.input)).objects[input.index];
  for await (const doc of decodeJsonlGz<Document>(await openVerified(store, partition))) {
    const at = stats.input++;
    if (JSON.stringify(doc.id) !== ids[at])
      throw new Error(`near dedup: ${partition.uri} document ${at} is ${doc.id}, its signatures say ${ids[at]}`);
    const removal = removals.get(at);
    if (removal) {
      countDrop(stats, 'dedup.near');
      await writers.reject({
        doc,
        stage: 'dedup',
        rule: 'dedup.near',
        detail: `near duplicate of ${removal.duplicateOf} (estimated Jaccard ${removal.similarity})`,
        duplicateOf: removal.duplicateOf,
        similarity: removal.similarity,
      });
      continue;
    }
    stats.kept += 1;
    stats.keptBytes += Buffer.byteLength(doc.text);
    await writers.keep(doc);
    if (stats.input % 1000 === 0) input.onProgress?.(stats.input);
  }
  if (stats.input !== part.count)
    throw new Error(`near dedup: ${partition.uri} holds ${stats.input} documents, its signatures ${part.count}`);
  const out = await writers.finish();
  await commitStage(store, partFolder, 'pipeline-near-dedup-partition', { ...out, stats }, { index: indexRef });
  return stats;
}

/**
 * Step e: the stage's outputs as one: every filtered partition's kept and rejected partitions in order, the kept
 * documents' signature index, and the stats with the LSH facts, in the stage manifest written last.
 */
export async function commitNearDedup(
  input: StageBase & { partitions: number; clusters: ArtifactRef },
): Promise<NearDedupOutput> {
  const { store, folder } = input;
  const committed = await committedNearDedup(store, folder);
  if (committed) return committed;
  const options = nearDedupOptions(input.near);
  const parts = await mapLimit(
    Array.from({ length: input.partitions }, (_, p) => `${folder}/filter/part-${pad(p)}`),
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
    } satisfies SignatureIndexMeta as unknown as Record<string, unknown>,
    createdAt: STAGE_EPOCH,
  });
  const clusters = (await readManifest(store, input.clusters)).meta as unknown as ClustersMeta;
  const near: NearDedupFacts = {
    threshold: options.threshold,
    numPerm: options.minhash.numPerm,
    ngram: options.minhash.ngram,
    bands: options.lsh.bands,
    rows: options.lsh.rows,
    sCurveMidpoint: round(sCurveThreshold(options.lsh), 4),
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
