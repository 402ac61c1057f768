import { B1 as BASE1, B2 as BASE2, type Words } from './token-facts';

// Local copies: an imported binding is a property read per use in CommonJS builds, and these sit in the inner loops.
const B1 = BASE1;
const B2 = BASE2;

/*
 * N-grams are compared by two independent 32-bit polynomial hashes of their characters, read off prefix hashes in
 * O(1) per n-gram with integer arithmetic only, and counted in an open-addressing table of typed arrays (no
 * allocation per n-gram). Hashing characters, not word ids, keeps datatrove's semantics: its repeated n-grams are
 * words joined with '' ("ab"+"c" equals "a"+"bc"), its top n-grams words joined with ' '. Building those strings
 * and counting them in a Map instead is about ten times slower. Two n-grams collide with odds near 2^-64.
 */
const SPACE = 0x20;

export type Separator = '' | ' ';

/** Prefix hashes of the tokens joined with '' and with ' ', and lengths (code points) to cut n-grams out. */
export interface TokenHashes {
  count: number;
  /** Code points of tokens [0, k) joined with ''. */
  offset: Float64Array;
  /** Hashes of tokens [0, k) joined with ''. */
  plain1: Int32Array;
  plain2: Int32Array;
  /** Hashes of tokens [0, k), each followed by ' '. */
  spaced1: Int32Array;
  spaced2: Int32Array;
  /** Hashes of tokens [0, k) joined with ' ' (no trailing space). */
  joined1: Int32Array;
  joined2: Int32Array;
  pow1: Int32Array;
  pow2: Int32Array;
}

export function hashTokens(words: Words): TokenHashes {
  const { facts } = words;
  const n = facts.length;
  let longest = 0;
  for (let k = 0; k < n; k++) if (facts[k].length > longest) longest = facts[k].length;
  const t: TokenHashes = {
    count: n,
    offset: new Float64Array(n + 1),
    plain1: new Int32Array(n + 1),
    plain2: new Int32Array(n + 1),
    spaced1: new Int32Array(n + 1),
    spaced2: new Int32Array(n + 1),
    joined1: new Int32Array(n + 1),
    joined2: new Int32Array(n + 1),
    pow1: new Int32Array(0),
    pow2: new Int32Array(0),
  };
  // Enough for n-grams of up to 16 typical tokens; longer ones (a giant token) fall back to squaring.
  const tableSize = Math.min(16 * (longest + 1), POWER_TABLE_LIMIT) + 1;
  t.pow1 = powers(B1, tableSize);
  t.pow2 = powers(B2, tableSize);
  for (let k = 0; k < n; k++) {
    const { h1, h2, length } = facts[k];
    const p1 = powerOf(t.pow1, B1, length);
    const p2 = powerOf(t.pow2, B2, length);
    t.offset[k + 1] = t.offset[k] + length;
    t.plain1[k + 1] = (Math.imul(t.plain1[k], p1) + h1) | 0;
    t.plain2[k + 1] = (Math.imul(t.plain2[k], p2) + h2) | 0;
    t.joined1[k + 1] = (Math.imul(t.spaced1[k], p1) + h1) | 0;
    t.joined2[k + 1] = (Math.imul(t.spaced2[k], p2) + h2) | 0;
    t.spaced1[k + 1] = (Math.imul(t.joined1[k + 1], B1) + SPACE) | 0;
    t.spaced2[k + 1] = (Math.imul(t.joined2[k + 1], B2) + SPACE) | 0;
  }
  return t;
}

const POWER_TABLE_LIMIT = 1 << 16;

/** base^exponent mod 2^32, from the table when it reaches that far. */
function powerOf(table: Int32Array, base: number, exponent: number): number {
  if (exponent < table.length) return table[exponent];
  let result = 1;
  let b = base;
  for (let e = exponent; e > 0; e >>>= 1) {
    if (e & 1) result = Math.imul(result, b);
    b = Math.imul(b, b);
  }
  return result;
}

function powers(base: number, count: number): Int32Array {
  const table = new Int32Array(Math.max(count, 1));
  table[0] = 1;
  for (let i = 1; i < table.length; i++) table[i] = Math.imul(table[i - 1], base);
  return table;
}

/** Code points of tokens [start, start + n) joined by `separator`. */
export function nGramLength(t: TokenHashes, start: number, n: number, separator: Separator): number {
  return t.offset[start + n] - t.offset[start] + (separator === ' ' ? n - 1 : 0);
}

const scratch = {
  slots: new Int32Array(0),
  keys1: new Int32Array(0),
  keys2: new Int32Array(0),
  first: new Int32Array(0),
  counts: new Int32Array(0),
};

/**
 * Distinct n-grams of one size with their first position and count, in order of first occurrence (entries [0, size) of
 * `first` and `counts`). `add` returns how often the n-gram had been seen before.
 */
export class NGramCounter {
  readonly first: Int32Array;
  readonly counts: Int32Array;
  size = 0;
  private readonly keys1: Int32Array;
  private readonly keys2: Int32Array;
  private readonly slots: Int32Array;
  private readonly mask: number;

  constructor(
    private readonly t: TokenHashes,
    private readonly n: number,
    private readonly separator: Separator,
  ) {
    const capacity = Math.max(0, t.count - n + 1);
    let buckets = 16;
    while (buckets < capacity * 2) buckets *= 2;
    this.mask = buckets - 1;
    // The table lives in the thread's scratch arrays, grown as needed and never freed: a document's nine counters
    // would otherwise allocate (and the collector free) five arrays each. A new counter ends the previous one.
    if (scratch.slots.length < buckets) scratch.slots = new Int32Array(buckets);
    if (scratch.first.length < capacity) {
      const size = Math.max(capacity, scratch.first.length * 2);
      scratch.keys1 = new Int32Array(size);
      scratch.keys2 = new Int32Array(size);
      scratch.first = new Int32Array(size);
      scratch.counts = new Int32Array(size);
    }
    this.slots = scratch.slots;
    this.slots.fill(-1, 0, buckets);
    this.keys1 = scratch.keys1;
    this.keys2 = scratch.keys2;
    this.first = scratch.first;
    this.counts = scratch.counts;
  }

  add(start: number): number {
    const { t, n } = this;
    const length = nGramLength(t, start, n, this.separator);
    let h1: number;
    let h2: number;
    if (this.separator === '') {
      h1 = (t.plain1[start + n] - Math.imul(t.plain1[start], powerOf(t.pow1, B1, length))) | 0;
      h2 = (t.plain2[start + n] - Math.imul(t.plain2[start], powerOf(t.pow2, B2, length))) | 0;
    } else {
      h1 = (t.joined1[start + n] - Math.imul(t.spaced1[start], powerOf(t.pow1, B1, length))) | 0;
      h2 = (t.joined2[start + n] - Math.imul(t.spaced2[start], powerOf(t.pow2, B2, length))) | 0;
    }
    let bucket = (h1 ^ Math.imul(h2, 0x9e3779b1)) & this.mask;
    for (;;) {
      const slot = this.slots[bucket];
      if (slot === -1) {
        const fresh = this.size++;
        this.slots[bucket] = fresh;
        this.keys1[fresh] = h1;
        this.keys2[fresh] = h2;
        this.first[fresh] = start;
        this.counts[fresh] = 1;
        return 0;
      }
      if (this.keys1[slot] === h1 && this.keys2[slot] === h2) return this.counts[slot]++;
      bucket = (bucket + 1) & this.mask;
    }
  }
}
