import { estimateJaccard, exactJaccard, MinHasher } from './minhash';

/**
 * Stage a, per partition: the signatures of its documents plus what the later stages need from each (exact-dedup
 * hash, word count). Documents are numbered globally: a partition's documents are docBase, docBase + 1, ...
 */
export interface PartitionSignatures {
  docBase: number;
  count: number;
  numPerm: number;
  /** count × numPerm values, row-major. */
  sigs: Uint32Array;
  /** 64-bit hash of each document's normalized text (or of the chosen exact-dedup field). */
  exactHi: Uint32Array;
  exactLo: Uint32Array;
  /** Words after normalization; 0 means no shingles (the document only takes part in exact dedup). */
  words: Uint32Array;
}

export interface SignOptions {
  /** Exact dedup compares this value (e.g. a URL) instead of the normalized text. */
  exactKey?: (index: number) => string | undefined;
}

export function signTexts(
  hasher: MinHasher,
  texts: readonly string[],
  docBase: number,
  opts: SignOptions = {},
): PartitionSignatures {
  const count = texts.length;
  const part = emptyPartition(count, hasher.params.numPerm, docBase);
  for (let i = 0; i < count; i++) {
    part.words[i] = hasher.sign(texts[i], part.sigs, i);
    const field = opts.exactKey?.(i);
    if (field !== undefined) {
      hasher.hashString(field);
      part.exactHi[i] = hasher.hashHi;
      part.exactLo[i] = hasher.hashLo;
    } else {
      part.exactHi[i] = hasher.exactHi;
      part.exactLo[i] = hasher.exactLo;
    }
  }
  return part;
}

/** How the band join and the verification read two documents' similarity, wherever their data lives. */
export interface SimilarityOracle {
  /** Jaccard similarity of documents a and b (global indices): exact, or estimated from signatures. */
  similarity(a: number, b: number): number;
  /** Whether `similarity(a, b)` is exact; absent: always estimated. */
  isExact?(a: number, b: number): boolean;
}

/**
 * Shingle sets of some documents (the candidates), by global index, and the similarity verification uses: the exact
 * Jaccard of two documents' shingle sets where both are held, else the signatures' estimate (an `against` index
 * keeps signatures, not shingles).
 */
export class ExactSimilarity implements SimilarityOracle {
  private readonly sets = new Map<number, Uint32Array>();

  constructor(private readonly estimate: SimilarityOracle) {}

  get size(): number {
    return this.sets.size;
  }

  has(doc: number): boolean {
    return this.sets.has(doc);
  }

  add(doc: number, set: Uint32Array): void {
    this.sets.set(doc, set);
  }

  isExact(a: number, b: number): boolean {
    return this.sets.has(a) && this.sets.has(b);
  }

  similarity(a: number, b: number): number {
    const sa = this.sets.get(a);
    const sb = this.sets.get(b);
    return sa && sb ? exactJaccard(sa, sb) : this.estimate.similarity(a, b);
  }
}

/**
 * Signatures of many partitions (or chunks) held where they were made, addressed by global document index: adding
 * keeps a reference, no copy, so the arrays may live in SharedArrayBuffers that worker threads read too.
 */
export class SignatureStore implements SimilarityOracle {
  private parts: Pick<PartitionSignatures, 'docBase' | 'count' | 'sigs'>[] = [];
  private bases: number[] = [];

  constructor(readonly numPerm: number) {}

  /** Adds a partition's signatures (partitions may arrive in any order). */
  add(part: Pick<PartitionSignatures, 'docBase' | 'count' | 'sigs'>): void {
    if (part.count === 0) return;
    let at = this.parts.length;
    while (at > 0 && this.parts[at - 1].docBase > part.docBase) at--;
    this.parts.splice(at, 0, part);
    this.bases = this.parts.map((p) => p.docBase);
  }

  private locate(doc: number): Pick<PartitionSignatures, 'docBase' | 'count' | 'sigs'> {
    const bases = this.bases;
    let lo = 0;
    let hi = bases.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (bases[mid] <= doc) lo = mid;
      else hi = mid - 1;
    }
    const part = this.parts[lo];
    if (!part || doc < part.docBase || doc >= part.docBase + part.count)
      throw new RangeError(`no signature for document ${doc}`);
    return part;
  }

  similarity(a: number, b: number): number {
    const pa = this.locate(a);
    const pb = this.locate(b);
    return estimateJaccard(pa.sigs, a - pa.docBase, pb.sigs, b - pb.docBase, this.numPerm);
  }

  /** A copy of one document's signature. */
  signature(doc: number): Uint32Array {
    const part = this.locate(doc);
    const at = (doc - part.docBase) * this.numPerm;
    return part.sigs.slice(at, at + this.numPerm);
  }
}

/**
 * Signatures of a few documents out of many (the candidates of a band, the members of clusters), by global index:
 * what a pipeline stage loads instead of every partition's signatures.
 */
export class SignatureSubset implements SimilarityOracle {
  private readonly rows = new Map<number, { sigs: Uint32Array; at: number }>();

  constructor(readonly numPerm: number) {}

  get size(): number {
    return this.rows.size;
  }

  has(doc: number): boolean {
    return this.rows.has(doc);
  }

  /** Adds document `doc`, whose signature is row `row` of `sigs` (kept by reference). */
  add(doc: number, sigs: Uint32Array, row: number): void {
    this.rows.set(doc, { sigs, at: row });
  }

  similarity(a: number, b: number): number {
    const ra = this.rows.get(a);
    const rb = this.rows.get(b);
    if (!ra || !rb) throw new RangeError(`no signature loaded for document ${ra ? b : a}`);
    return estimateJaccard(ra.sigs, ra.at, rb.sigs, rb.at, this.numPerm);
  }
}

/** Zeroed signature arrays for `count` documents of `numPerm` values each, numbered from `docBase`. */
export function emptyPartition(count: number, numPerm: number, docBase = 0): PartitionSignatures {
  return {
    docBase,
    count,
    numPerm,
    sigs: new Uint32Array(count * numPerm),
    exactHi: new Uint32Array(count),
    exactLo: new Uint32Array(count),
    words: new Uint32Array(count),
  };
}
