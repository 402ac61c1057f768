/**
 * xorshift128 (Marsaglia 2003): four 32-bit words of state, so a checkpoint stores it as four numbers and a
 * restored generator continues the exact sequence.
 */
export class Xorshift128 {
  private s: Uint32Array;

  constructor(state: readonly number[]) {
    if (state.length !== 4 || state.every((w) => w >>> 0 === 0))
      throw new RangeError('xorshift128 needs four 32-bit words, not all zero');
    this.s = Uint32Array.from(state);
  }

  /** A generator seeded from any integer via splitmix32, so nearby seeds give unrelated streams. */
  static fromSeed(seed: number, stream = 0): Xorshift128 {
    let x = (seed ^ Math.imul(stream + 1, 0x9e3779b9)) >>> 0;
    const words: number[] = [];
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      words.push((z ^ (z >>> 16)) >>> 0);
    }
    if (!words.some((w) => w !== 0)) words[0] = 1;
    return new Xorshift128(words);
  }

  nextUint32(): number {
    const s = this.s;
    let t = s[3];
    const w = s[0];
    s[3] = s[2];
    s[2] = s[1];
    s[1] = w;
    t ^= t << 11;
    t ^= t >>> 8;
    s[0] = (t ^ w ^ (w >>> 19)) >>> 0;
    return s[0];
  }

  /** Uniform in [0, 1). */
  nextFloat(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform integer in [0, n), without modulo bias. */
  nextBelow(n: number): number {
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const x = this.nextUint32();
      if (x < limit) return x % n;
    }
  }

  get state(): number[] {
    return Array.from(this.s);
  }
}
