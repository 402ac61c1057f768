import { HASH } from './minhash-kernel';
import { normalizedWords, type NormalizeOptions } from './normalize';

/**
 * The signature algorithm in plain, slow BigInt arithmetic: the specification the WebAssembly kernel is tested
 * against, bit for bit. Not for production use.
 */
const M64 = (1n << 64n) - 1n;

const mul64 = (a: bigint, b: bigint) => (a * b) & M64;
const rotl64 = (x: bigint, r: number) => ((x << BigInt(r)) | (x >> BigInt(64 - r))) & M64;

export function fmix64(k: bigint): bigint {
  k ^= k >> 33n;
  k = mul64(k, HASH.fmix64a);
  k ^= k >> 33n;
  k = mul64(k, HASH.fmix64b);
  return k ^ (k >> 33n);
}

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, HASH.fmix32a);
  h ^= h >>> 13;
  h = Math.imul(h, HASH.fmix32b);
  return (h ^ (h >>> 16)) >>> 0;
}

const chain = (acc: bigint, value: bigint, rot: number) => rotl64(mul64(acc ^ value, HASH.chain), rot);

/** FNV-1a over bytes, finished with fmix64 of the length. */
export function hashBytes64(bytes: Uint8Array): bigint {
  let h: bigint = HASH.fnvOffset;
  for (const b of bytes) h = mul64(h ^ BigInt(b), HASH.fnvPrime);
  return fmix64(h ^ BigInt(bytes.length));
}

export function wordHash(word: string): bigint {
  return hashBytes64(Buffer.from(word, 'utf8'));
}

/** The 64-bit hash of one shingle, from the hashes of its words in order. */
export function shingleHash(wordHashes: bigint[]): bigint {
  let s: bigint = HASH.shingleSeed;
  for (const w of wordHashes) s = chain(s, w, 29);
  return fmix64(s ^ BigInt(wordHashes.length));
}

/** The hash exact dedup compares: of the whole normalized word sequence. */
export function exactHash(wordHashes: bigint[]): bigint {
  let e: bigint = HASH.exactSeed;
  for (const w of wordHashes) e = chain(e, w, 31);
  return fmix64(e ^ BigInt(wordHashes.length));
}

/** The permutation input: the shingle hash folded to 32 bits and pre-mixed, as datasketch's affine32 scheme. */
export function permutationInput(shingle: bigint): number {
  return fmix32(Number(shingle & 0xffffffffn) ^ Number(shingle >> 32n));
}

export interface ReferenceSignature {
  signature: Uint32Array;
  exact: bigint;
  words: number;
}

export function referenceSignature(
  text: string,
  n: number,
  a: Uint32Array,
  b: Uint32Array,
  opts: NormalizeOptions = {},
): ReferenceSignature {
  const words = normalizedWords(text, opts).map(wordHash);
  const signature = new Uint32Array(a.length).fill(0xffffffff);
  const width = Math.min(words.length, n);
  const count = words.length === 0 ? 0 : words.length - width + 1;
  for (let j = 0; j < count; j++) {
    const x = permutationInput(shingleHash(words.slice(j, j + width)));
    for (let i = 0; i < a.length; i++) {
      const v = (Math.imul(a[i], x) + b[i]) >>> 0;
      if (v < signature[i]) signature[i] = v;
    }
  }
  return { signature, exact: exactHash(words), words: words.length };
}

/** The 64-bit key of band `band` over signature rows [band·rows, (band+1)·rows). */
export function referenceBandKey(signature: Uint32Array, band: number, rows: number): bigint {
  let h: bigint = HASH.bandSeed;
  for (let r = 0; r < rows; r++) h = chain(h, BigInt(signature[band * rows + r]), 29);
  return fmix64(h ^ BigInt(band));
}
