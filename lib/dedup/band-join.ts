import type { LshParams } from './lsh-params';
import type { MinHasher } from './minhash';
import { sortByKey64 } from './radix-sort';
import type { PartitionSignatures, SimilarityOracle } from './signatures';
import type { UnionFind } from './union-find';

/** One band's 64-bit keys for a set of documents, sorted by key then document: what stage a writes per band. */
export interface BandRun {
  band: number;
  keyHi: Uint32Array;
  keyLo: Uint32Array;
  docs: Uint32Array;
}

/** Stage a's band output for one partition: one sorted run per band. Documents without shingles are left out. */
export function partitionBandRuns(hasher: MinHasher, part: PartitionSignatures, lsh: LshParams): BandRun[] {
  const { bands, rows } = lsh;
  const eligible: number[] = [];
  for (let i = 0; i < part.count; i++) if (part.words[i] > 0) eligible.push(i);
  const runs: BandRun[] = Array.from({ length: bands }, (_, band) => ({
    band,
    keyHi: new Uint32Array(eligible.length),
    keyLo: new Uint32Array(eligible.length),
    docs: new Uint32Array(eligible.length),
  }));
  const keys = new Uint32Array(bands * 2);
  eligible.forEach((i, at) => {
    hasher.bandKeys(part.sigs, i, bands, rows, keys, 0);
    for (let band = 0; band < bands; band++) {
      runs[band].keyLo[at] = keys[band * 2];
      runs[band].keyHi[at] = keys[band * 2 + 1];
      runs[band].docs[at] = part.docBase + i;
    }
  });
  for (const run of runs) sortByKey64(run.keyHi, run.keyLo, run.docs);
  return runs;
}

/** Documents whose whole band matches: group g is docs[offsets[g] .. offsets[g + 1]), ascending. */
export interface CandidateGroups {
  band: number;
  offsets: Uint32Array;
  docs: Uint32Array;
}

/**
 * Stage b for one band: the runs of every partition for that band (any order) joined into groups of documents
 * with equal keys. Runs are concatenated and sorted again: one linear radix sort beats a k-way merge in JavaScript.
 */
export function joinBand(runs: readonly BandRun[]): CandidateGroups {
  const band = runs[0]?.band ?? 0;
  const total = runs.reduce((n, r) => n + r.docs.length, 0);
  const hi = new Uint32Array(total);
  const lo = new Uint32Array(total);
  const docs = new Uint32Array(total);
  let at = 0;
  for (const r of runs) {
    if (r.band !== band) throw new Error(`joinBand: runs of bands ${band} and ${r.band} mixed`);
    hi.set(r.keyHi, at);
    lo.set(r.keyLo, at);
    docs.set(r.docs, at);
    at += r.docs.length;
  }
  sortByKey64(hi, lo, docs);
  const offsets: number[] = [];
  const members: number[] = [];
  for (let i = 0; i < total;) {
    let j = i + 1;
    while (j < total && hi[j] === hi[i] && lo[j] === lo[i]) j++;
    if (j - i > 1) {
      offsets.push(members.length);
      // The sort is stable, but runs may come in any partition order.
      for (const doc of docs.subarray(i, j).sort()) members.push(doc);
    }
    i = j;
  }
  offsets.push(members.length);
  return { band, offsets: Uint32Array.from(offsets), docs: Uint32Array.from(members) };
}

/** Verified duplicate edges (a < b), growable. */
export class EdgeList {
  a = new Uint32Array(1024);
  b = new Uint32Array(1024);
  similarity = new Float32Array(1024);
  count = 0;

  push(a: number, b: number, similarity: number): void {
    if (this.count === this.a.length) {
      const grow = <T extends Uint32Array | Float32Array>(x: T): T => {
        const y = new (x.constructor as new (n: number) => T)(x.length * 2);
        y.set(x);
        return y;
      };
      this.a = grow(this.a);
      this.b = grow(this.b);
      this.similarity = grow(this.similarity);
    }
    this.a[this.count] = Math.min(a, b);
    this.b[this.count] = Math.max(a, b);
    this.similarity[this.count] = similarity;
    this.count++;
  }
}

export interface VerifyOptions {
  /** Accept a candidate pair when its Jaccard reaches this; undefined: accept every candidate. */
  minSimilarity?: number;
  /**
   * Where the oracle tells exact from estimated similarity (`isExact`), the bar for an estimated pair (the threshold
   * less the estimator's margin); `minSimilarity` then applies to exact ones. Default: minSimilarity.
   */
  minEstimated?: number;
  /** Comparisons per document and group before giving up on joining it to earlier members. */
  maxComparisons?: number;
}

export interface VerifyCounts {
  /** Candidate pairs: all pairs within groups. */
  candidates: number;
  /** Pairs whose similarity was estimated. */
  compared: number;
  /** Of those, accepted. */
  accepted: number;
}

/** The bar a pair must reach: `minEstimated` where the oracle only estimates it. */
function barFor(oracle: SimilarityOracle, a: number, b: number, min: number, opts: VerifyOptions): number {
  return opts.minEstimated !== undefined && oracle.isExact?.(a, b) === false ? opts.minEstimated : min;
}

/**
 * Stage c for one band: verifies its candidate groups and appends the accepted edges. Within a group, each document
 * is compared with one member (the first met) of every cluster formed so far in that group, and joins each cluster it
 * matches; a document already in a cluster skips it. The clusters are local to the group, so a band's edges depend
 * on nothing but that band: any partitioning of bands over workers gives the same edges.
 */
export function verifyGroups(
  groups: CandidateGroups,
  oracle: SimilarityOracle,
  edges: EdgeList,
  opts: VerifyOptions = {},
): VerifyCounts {
  const counts: VerifyCounts = { candidates: 0, compared: 0, accepted: 0 };
  const maxComparisons = opts.maxComparisons ?? 64;
  const min = opts.minSimilarity;
  let parent = new Uint32Array(64);
  const find = (x: number) => {
    while (parent[x] !== x) x = parent[x] = parent[parent[x]];
    return x;
  };
  const reps: number[] = [];
  for (let g = 0; g + 1 < groups.offsets.length; g++) {
    const start = groups.offsets[g];
    const size = groups.offsets[g + 1] - start;
    counts.candidates += (size * (size - 1)) / 2;
    if (min === undefined) {
      // No verification: the whole group is one cluster.
      for (let i = 1; i < size; i++) edges.push(groups.docs[start], groups.docs[start + i], NaN);
      continue;
    }
    if (parent.length < size) parent = new Uint32Array(size * 2);
    for (let i = 0; i < size; i++) parent[i] = i;
    reps.length = 0;
    for (let i = 0; i < size; i++) {
      let joined = false;
      let comparisons = 0;
      for (let r = 0; r < reps.length && comparisons < maxComparisons; r++) {
        const rep = reps[r];
        const rootRep = find(rep);
        if (rootRep === find(i)) {
          joined = true;
          continue;
        }
        comparisons++;
        counts.compared++;
        const [da, db] = [groups.docs[start + rep], groups.docs[start + i]];
        const similarity = oracle.similarity(da, db);
        if (similarity >= barFor(oracle, da, db, min, opts)) {
          counts.accepted++;
          parent[Math.max(rootRep, find(i))] = Math.min(rootRep, find(i));
          edges.push(groups.docs[start + rep], groups.docs[start + i], similarity);
          joined = true;
        }
      }
      if (!joined) reps.push(i);
    }
  }
  return counts;
}

/** Adds edges to the clustering. */
export function unionEdges(uf: UnionFind, edges: EdgeList): void {
  for (let i = 0; i < edges.count; i++) uf.union(edges.a[i], edges.b[i]);
}

/** What stage a hands the band join for one partition or chunk: band keys as (lo, hi) pairs, bands per document. */
export interface BandKeyChunk {
  docBase: number;
  count: number;
  words: Uint32Array;
  /** count × bands × 2. */
  bandKeys: Uint32Array;
}

/** Stage b for a set of bands over in-memory chunks (one run per band from every chunk): the candidate groups. */
export function joinBandsOfChunks(
  chunks: readonly BandKeyChunk[],
  numBands: number,
  bands: readonly number[],
): CandidateGroups[] {
  let eligible = 0;
  for (const c of chunks) for (let i = 0; i < c.count; i++) if (c.words[i] > 0) eligible++;
  return bands.map((band) => {
    const run: BandRun = {
      band,
      keyHi: new Uint32Array(eligible),
      keyLo: new Uint32Array(eligible),
      docs: new Uint32Array(eligible),
    };
    let at = 0;
    for (const c of chunks)
      for (let i = 0; i < c.count; i++) {
        if (c.words[i] === 0) continue;
        const k = (i * numBands + band) * 2;
        run.keyLo[at] = c.bandKeys[k];
        run.keyHi[at] = c.bandKeys[k + 1];
        run.docs[at++] = c.docBase + i;
      }
    return joinBand([run]);
  });
}
