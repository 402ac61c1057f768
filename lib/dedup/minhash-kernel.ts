import { assembleModule, Body, i32, i64, v128 } from './wasm-assembler';

/**
 * The MinHash inner loop as WebAssembly (SIMD, four permutations per instruction). One pass over a document's
 * UTF-8 bytes normalizes (table-driven ASCII rules), splits words and hashes each word; a second pass hashes each
 * word n-gram and folds it into the signature. `reference.ts` is the same algorithm in plain BigInt arithmetic, and
 * the tests hold the two bit-for-bit equal.
 */

export const HASH = {
  fnvOffset: 0xcbf29ce484222325n,
  fnvPrime: 0x100000001b3n,
  /** Odd multiplier that chains word hashes into shingle, band and exact hashes. */
  chain: 0x9e3779b97f4a7c15n,
  shingleSeed: 0x243f6a8885a308d3n,
  exactSeed: 0x13198a2e03707344n,
  bandSeed: 0xa4093822299f31d0n,
  fmix64a: 0xff51afd7ed558ccdn,
  fmix64b: 0xc4ceb9fe1a85ec53n,
  fmix32a: 0x85ebca6b,
  fmix32b: 0xc2b2ae35,
} as const;

/** Byte classes of the normalization table. */
export const CLASS = { separator: 0, emit: 1, digit: 2, drop: 3 } as const;

/** Fixed memory layout: results, the class table, the output-byte table, then the caller's areas. */
export const LAYOUT = {
  exactHash: 0,
  shingleCount: 8,
  scratchHash: 16,
  classTable: 32,
  outTable: 32 + 256,
  /** First byte the caller may use (16-byte aligned). */
  free: 32 + 512,
} as const;

// sign(text, len, words, n, coef, sig, nvec) -> words
const P = { text: 0, len: 1, words: 2, n: 3, coef: 4, sig: 5, nvec: 6 };
const L = { p: 7, end: 8, c: 9, cls: 10, h: 11, wlen: 12, m: 13, inDigit: 14, e: 15, j: 16, count: 17 };
const L2 = { width: 18, k: 19, s: 20, x: 21, vx: 22, q: 23, wp: 24, w: 25, nbytes: 26 };

function fmix64(b: Body, local: number): void {
  const shift = () => b.get(local).get(local).i64Const(33n).i64ShrU().i64Xor().set(local);
  shift();
  b.get(local).i64Const(HASH.fmix64a).i64Mul().set(local);
  shift();
  b.get(local).i64Const(HASH.fmix64b).i64Mul().set(local);
  shift();
}

function fmix32(b: Body, local: number): void {
  const shift = (n: number) => b.get(local).get(local).i32Const(n).i32ShrU().i32Xor().set(local);
  shift(16);
  b.get(local).i32Const(HASH.fmix32a).i32Mul().set(local);
  shift(13);
  b.get(local).i32Const(HASH.fmix32b).i32Mul().set(local);
  shift(16);
}

/** local = rotl((local ^ value) * chain, rot); the value is on the stack. */
function chain(b: Body, local: number, rot: number, pushValue: () => void): void {
  b.get(local);
  pushValue();
  b.i64Xor().i64Const(HASH.chain).i64Mul().i64Const(BigInt(rot)).i64Rotl().set(local);
}

/**
 * `sign` folds each shingle into the signature; `shingles` instead writes each shingle's permutation input (the
 * 32-bit value the permutations see) to `sig + 4·j`: the document's shingle multiset, for exact Jaccard.
 */
function signBody(nvec: number, mode: 'sign' | 'shingles' = 'sign'): Body {
  const b = new Body();
  const flush = () => {
    // w = fmix64(h ^ wlen); words[m] = w; m++; e = chain(e, w); h = offset; wlen = 0
    b.get(L.h).get(L.wlen).i64ExtendI32U().i64Xor().set(L2.w);
    fmix64(b, L2.w);
    b.get(P.words).get(L.m).i32Const(3).i32Shl().i32Add().get(L2.w).i64Store();
    b.get(L.m).i32Const(1).i32Add().set(L.m);
    chain(b, L.e, 31, () => b.get(L2.w));
    b.i64Const(HASH.fnvOffset).set(L.h).i32Const(0).set(L.wlen);
  };
  const emit = (pushByte: () => void) => {
    b.get(L.h);
    pushByte();
    b.i64ExtendI32U().i64Xor().i64Const(HASH.fnvPrime).i64Mul().set(L.h);
    b.get(L.wlen).i32Const(1).i32Add().set(L.wlen);
  };

  // Pass 1: normalize, split and hash words.
  b.get(P.text).set(L.p);
  b.get(P.text).get(P.len).i32Add().set(L.end);
  b.i64Const(HASH.fnvOffset).set(L.h);
  b.i64Const(HASH.exactSeed).set(L.e);
  b.block().loop();
  {
    b.get(L.p).get(L.end).i32GeU().brIf(1);
    b.get(L.p).i32Load8U().set(L.c);
    b.get(L.p).i32Const(1).i32Add().set(L.p);
    b.get(L.c).i32Load8U(LAYOUT.classTable).set(L.cls);
    b.block();
    {
      b.get(L.cls).i32Const(CLASS.emit).i32Eq().if();
      emit(() => b.get(L.c).i32Load8U(LAYOUT.outTable));
      b.i32Const(0).set(L.inDigit).br(1).end();

      b.get(L.cls).i32Const(CLASS.digit).i32Eq().if();
      b.get(L.inDigit).i32Eqz().if();
      emit(() => b.i32Const(0x30));
      b.i32Const(1).set(L.inDigit).end();
      b.br(1).end();

      b.i32Const(0).set(L.inDigit);
      b.get(L.cls).i32Const(CLASS.drop).i32Eq().brIf(0);
      b.get(L.wlen).if();
      flush();
      b.end();
    }
    b.end();
    b.br(0);
  }
  b.end().end();
  b.get(L.wlen).if();
  flush();
  b.end();
  b.get(L.e).get(L.m).i64ExtendI32U().i64Xor().set(L.e);
  fmix64(b, L.e);
  b.i32Const(LAYOUT.exactHash).get(L.e).i64Store();

  if (mode === 'sign') {
    // Signature starts at the maximum value in every permutation.
    b.get(P.nvec).i32Const(4).i32Shl().set(L2.nbytes);
    b.i32Const(0).set(L2.q);
    b.loop();
    b.get(P.sig).get(L2.q).i32Add().i32Const(-1).i32x4Splat().v128Store();
    b.get(L2.q).i32Const(16).i32Add().tee(L2.q).get(L2.nbytes).i32LtU().brIf(0);
    b.end();
  }

  b.get(L.m).i32Eqz().if();
  b.i32Const(LAYOUT.shingleCount).i32Const(0).i32Store();
  b.i32Const(0).return();
  b.end();

  // width = min(m, n); count = m < n ? 1 : m - n + 1
  b.get(L.m).get(P.n).get(L.m).get(P.n).i32LtU().select().set(L2.width);
  b.get(L.m).get(L2.width).i32Sub().i32Const(1).i32Add().set(L.count);
  b.i32Const(LAYOUT.shingleCount).get(L.count).i32Store();

  // Pass 2: one hash per shingle, then sig[i] = min(sig[i], a[i] * x + b[i]) for every permutation.
  b.get(P.words).set(L2.wp);
  b.i32Const(0).set(L.j);
  b.loop();
  {
    b.i64Const(HASH.shingleSeed).set(L2.s);
    b.i32Const(0).set(L2.k);
    b.loop();
    chain(b, L2.s, 29, () => b.get(L2.wp).get(L2.k).i32Const(3).i32Shl().i32Add().i64Load());
    b.get(L2.k).i32Const(1).i32Add().tee(L2.k).get(L2.width).i32LtU().brIf(0);
    b.end();
    b.get(L2.s).get(L2.width).i64ExtendI32U().i64Xor().set(L2.s);
    fmix64(b, L2.s);
    b.get(L2.s).i32WrapI64().get(L2.s).i64Const(32n).i64ShrU().i32WrapI64().i32Xor().set(L2.x);
    fmix32(b, L2.x);
    if (mode === 'shingles') {
      b.get(P.sig).get(L.j).i32Const(2).i32Shl().i32Add().get(L2.x).i32Store();
    } else {
      b.get(L2.x).i32x4Splat().set(L2.vx);
      // Unrolled over the permutations (their count is fixed per module): constant offsets, no loop overhead.
      for (let q = 0; q < nvec * 16; q += 16) {
        b.get(P.sig);
        b.get(P.sig).v128Load(q);
        b.get(P.coef).v128Load(q).get(L2.vx).i32x4Mul();
        b.get(P.coef)
          .v128Load(nvec * 16 + q)
          .i32x4Add();
        b.i32x4MinU().v128Store(q);
      }
    }

    b.get(L2.wp).i32Const(8).i32Add().set(L2.wp);
    b.get(L.j).i32Const(1).i32Add().tee(L.j).get(L.count).i32LtU().brIf(0);
  }
  b.end();
  b.get(L.m);
  return b;
}

// bands(sig, nbands, rows, out): out[b] = fmix64(chain over sig[b*rows .. (b+1)*rows) ^ b)
function bandsBody(): Body {
  const b = new Body();
  const [sig, nbands, rows, out, band, r, h, at] = [0, 1, 2, 3, 4, 5, 6, 7];
  b.get(sig).set(at);
  b.get(nbands).i32Eqz().if().return().end();
  b.loop();
  {
    b.i64Const(HASH.bandSeed).set(h);
    b.i32Const(0).set(r);
    b.loop();
    chain(b, h, 29, () => b.get(at).i32Load().i64ExtendI32U());
    b.get(at).i32Const(4).i32Add().set(at);
    b.get(r).i32Const(1).i32Add().tee(r).get(rows).i32LtU().brIf(0);
    b.end();
    b.get(h).get(band).i64ExtendI32U().i64Xor().set(h);
    fmix64(b, h);
    b.get(out).get(band).i32Const(3).i32Shl().i32Add().get(h).i64Store();
    b.get(band).i32Const(1).i32Add().tee(band).get(nbands).i32LtU().brIf(0);
  }
  b.end();
  return b;
}

// hashBytes(ptr, len): FNV-1a over raw bytes, then fmix64(h ^ len), stored at LAYOUT.scratchHash.
function hashBytesBody(): Body {
  const b = new Body();
  const [ptr, len, end, h] = [0, 1, 2, 3];
  b.get(ptr).get(len).i32Add().set(end);
  b.i64Const(HASH.fnvOffset).set(h);
  b.block().loop();
  b.get(ptr).get(end).i32GeU().brIf(1);
  b.get(h).get(ptr).i32Load8U().i64ExtendI32U().i64Xor().i64Const(HASH.fnvPrime).i64Mul().set(h);
  b.get(ptr).i32Const(1).i32Add().set(ptr);
  b.br(0);
  b.end().end();
  b.get(h).get(len).i64ExtendI32U().i64Xor().set(h);
  fmix64(b, h);
  b.i32Const(LAYOUT.scratchHash).get(h).i64Store();
  return b;
}

// The WebAssembly global is in every Node.js, but not in @types/node 20: declare the little used here.
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const compiled = new Map<number, object>();

export interface KernelExports {
  memory: WasmMemory;
  sign(text: number, len: number, words: number, n: number, coef: number, sig: number, nvec: number): number;
  /** Like sign, but writes each shingle's permutation input to `out + 4·j`; the shingle count is at LAYOUT.shingleCount. */
  shingles(text: number, len: number, words: number, n: number, coef: number, out: number, nvec: number): number;
  bands(sig: number, nbands: number, rows: number, out: number): void;
  hashBytes(ptr: number, len: number): void;
}

/**
 * A fresh instance (own memory) of the kernel for signatures of `nvec` × 4 permutations; the module is compiled once
 * per thread and size.
 */
export function instantiateKernel(nvec: number): KernelExports {
  let module = compiled.get(nvec);
  module ??= new wasm.Module(
    assembleModule(
      [
        {
          name: 'sign',
          params: [i32, i32, i32, i32, i32, i32, i32],
          results: [i32],
          // p end c cls | h | wlen m inDigit | e | j count width k | s | x | vx | q wp | w | nbytes
          locals: [i32, i32, i32, i32, i64, i32, i32, i32, i64, i32, i32, i32, i32, i64, i32, v128, i32, i32, i64, i32],
          body: signBody(nvec),
        },
        {
          name: 'shingles',
          params: [i32, i32, i32, i32, i32, i32, i32],
          results: [i32],
          locals: [i32, i32, i32, i32, i64, i32, i32, i32, i64, i32, i32, i32, i32, i64, i32, v128, i32, i32, i64, i32],
          body: signBody(nvec, 'shingles'),
        },
        { name: 'bands', params: [i32, i32, i32, i32], results: [], locals: [i32, i32, i64, i32], body: bandsBody() },
        { name: 'hashBytes', params: [i32, i32], results: [], locals: [i32, i64], body: hashBytesBody() },
      ],
      1,
    ),
  );
  compiled.set(nvec, module);
  return new wasm.Instance(module).exports as unknown as KernelExports;
}
