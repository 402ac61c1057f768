/** FNV-1a over UTF-16 units: the hash SubstringTable keys by. Start with FNV_START, step with fnvStep per unit. */
export const FNV_START = 2166136261 | 0;
export const fnvStep = (hash: number, unit: number): number => Math.imul(hash ^ unit, 16777619);

/** Longer substrings (rare, and seldom repeated) are not worth holding: the callers compute them each time. */
export const LONGEST_HELD = 256;

/**
 * An open-addressing table from substrings of a text to integers, keyed by the substring's UTF-16 units and their FNV
 * hash (computed by the caller while it scans), so that looking up a substring seen before costs its hash and one
 * comparison: no substring is cut and no string hashed again. The tokenizers meet the same words again and again
 * (language ID's words, spaCy's chunks, BPE's pieces); a Map<string, …> lookup per word cost them a substring and
 * a string hash each, a large part of what the cache saved. The table holds at most half its slots and a fixed
 * number of units; the caller empties it when `roomFor` says no, together with whatever its values index.
 */
export class SubstringTable {
  /** Four ints per slot, together so that a probe reads one cache line: hash | 1 (0: empty), length, offset, value. */
  private readonly slots: Int32Array;
  private readonly mask: number;
  private readonly units: Uint16Array;
  private unitsUsed = 0;
  /** Substrings held. */
  size = 0;

  /** `slots`: a power of two; `units`: room for the substrings' UTF-16 units. */
  constructor(slots: number, units: number) {
    if ((slots & (slots - 1)) !== 0) throw new Error(`SubstringTable: ${slots} slots is not a power of two`);
    this.slots = new Int32Array(4 * slots);
    this.mask = slots - 1;
    this.units = new Uint16Array(units);
  }

  /** The value of text[start, end) (whose hash is `hash`), or -1. */
  get(text: string, start: number, end: number, hash: number): number {
    const length = end - start;
    const key = hash | 1; // 0 marks an empty slot
    const { slots, units, mask } = this;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const at = slot << 2;
      const k = slots[at];
      if (k === 0) return -1;
      if (k === key && slots[at + 1] === length) {
        const from = slots[at + 2];
        let c = 0;
        while (c < length && units[from + c] === text.charCodeAt(start + c)) c++;
        if (c === length) return slots[at + 3];
      }
    }
  }

  /** Whether a substring of `length` units can be added without emptying the table first. */
  roomFor(length: number): boolean {
    return this.size < (this.mask + 1) / 2 && this.unitsUsed + length <= this.units.length;
  }

  /** Adds text[start, end) (not held yet) with `value`; the caller has checked roomFor. */
  set(text: string, start: number, end: number, hash: number, value: number): void {
    const length = end - start;
    let slot = hash & this.mask;
    while (this.slots[slot << 2] !== 0) slot = (slot + 1) & this.mask;
    const at = slot << 2;
    this.slots[at] = hash | 1;
    this.slots[at + 1] = length;
    this.slots[at + 2] = this.unitsUsed;
    this.slots[at + 3] = value;
    for (let c = 0; c < length; c++) this.units[this.unitsUsed + c] = text.charCodeAt(start + c);
    this.unitsUsed += length;
    this.size += 1;
  }

  clear(): void {
    this.slots.fill(0);
    this.unitsUsed = 0;
    this.size = 0;
  }
}
