import { createHash } from 'node:crypto';
import { normalizedUtf8 } from './normalize';
import { sortByKey64 } from './radix-sort';
import type { UnionFind } from './union-find';

/** Text as the pipeline's exact dedup compares it: normalized as near-dedup normalizes it (lowercase, punctuation dropped, words). */
export function exactDedupKey(text: string): string {
  // 128 bits of sha256: collisions are out of reach at any corpus size, and the set stays small.
  return createHash('sha256').update(normalizedUtf8(text)).digest('base64').slice(0, 22);
}

/**
 * Exact dedup: documents with equal 64-bit hashes (of the normalized text, or of a chosen field such as the URL)
 * are one cluster; the first occurrence is kept. Returns how many documents were found to repeat an earlier one.
 */
export function exactDuplicates(
  keyHi: Uint32Array,
  keyLo: Uint32Array,
  docs: Uint32Array,
  uf: UnionFind,
  onDuplicate?: (first: number, doc: number) => void,
): number {
  const hi = keyHi.slice();
  const lo = keyLo.slice();
  const order = docs.slice();
  sortByKey64(hi, lo, order);
  let repeats = 0;
  for (let i = 0; i < order.length;) {
    let j = i + 1;
    let first = order[i];
    while (j < order.length && hi[j] === hi[i] && lo[j] === lo[i]) {
      first = Math.min(first, order[j]);
      j++;
    }
    for (let k = i; k < j; k++) {
      if (order[k] === first) continue;
      repeats++;
      uf.union(first, order[k]);
      onDuplicate?.(first, order[k]);
    }
    i = j;
  }
  return repeats;
}
