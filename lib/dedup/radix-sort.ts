/**
 * Stable LSD radix sort of (64-bit key, value) triples kept in three parallel arrays, in place: six passes of
 * 11-bit digits (2,048 buckets stay in cache), skipping digits that every key shares. Band joins and duplicate
 * checks sort millions of keys; this is linear and allocates only one scratch copy.
 */
const DIGITS = [
  { hi: false, shift: 0, mask: 0x7ff },
  { hi: false, shift: 11, mask: 0x7ff },
  { hi: false, shift: 22, mask: 0x3ff },
  { hi: true, shift: 0, mask: 0x7ff },
  { hi: true, shift: 11, mask: 0x7ff },
  { hi: true, shift: 22, mask: 0x3ff },
];
const BUCKETS = 2048;

export function sortByKey64(hi: Uint32Array, lo: Uint32Array, values: Uint32Array, length = values.length): void {
  if (length < 2) return;
  if (length <= 32) return insertionSort(hi, lo, values, length);
  const counts = new Uint32Array(DIGITS.length * BUCKETS);
  for (let i = 0; i < length; i++) {
    const l = lo[i];
    const h = hi[i];
    counts[l & 0x7ff]++;
    counts[BUCKETS + ((l >>> 11) & 0x7ff)]++;
    counts[2 * BUCKETS + (l >>> 22)]++;
    counts[3 * BUCKETS + (h & 0x7ff)]++;
    counts[4 * BUCKETS + ((h >>> 11) & 0x7ff)]++;
    counts[5 * BUCKETS + (h >>> 22)]++;
  }
  type Columns = { hi: Uint32Array; lo: Uint32Array; values: Uint32Array };
  let src: Columns = { hi, lo, values };
  let dst: Columns = { hi: new Uint32Array(length), lo: new Uint32Array(length), values: new Uint32Array(length) };
  DIGITS.forEach((digit, pass) => {
    const base = pass * BUCKETS;
    const { shift, mask } = digit;
    const words = digit.hi ? src.hi : src.lo;
    if (counts[base + ((words[0] >>> shift) & mask)] === length) return;
    let sum = 0;
    for (let d = 0; d < BUCKETS; d++) {
      const c = counts[base + d];
      counts[base + d] = sum;
      sum += c;
    }
    const { hi: sh, lo: sl, values: sv } = src;
    const { hi: dh, lo: dl, values: dv } = dst;
    for (let i = 0; i < length; i++) {
      const at = counts[base + ((words[i] >>> shift) & mask)]++;
      dh[at] = sh[i];
      dl[at] = sl[i];
      dv[at] = sv[i];
    }
    [src, dst] = [dst, src];
  });
  if (src.values !== values) {
    hi.set(src.hi.subarray(0, length));
    lo.set(src.lo.subarray(0, length));
    values.set(src.values.subarray(0, length));
  }
}

function insertionSort(hi: Uint32Array, lo: Uint32Array, values: Uint32Array, length: number): void {
  for (let i = 1; i < length; i++) {
    const h = hi[i];
    const l = lo[i];
    const v = values[i];
    let j = i - 1;
    while (j >= 0 && (hi[j] > h || (hi[j] === h && lo[j] > l))) {
      hi[j + 1] = hi[j];
      lo[j + 1] = lo[j];
      values[j + 1] = values[j];
      j--;
    }
    hi[j + 1] = h;
    lo[j + 1] = l;
    values[j + 1] = v;
  }
}
