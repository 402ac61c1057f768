import type { RawBytePairRanks } from 'gpt-tokenizer/cjs/BytePairEncodingCore';
import { FNV_START, LONGEST_HELD, SubstringTable, fnvStep as fnvStepImported } from '../common/substring-table';
import { BAIL, type PieceScanner } from './ascii-split';

// An imported function is a property read per call in CommonJS builds, and this one runs per character.
const fnvStep = fnvStepImported;

/**
 * tiktoken's byte-pair encoding (`CoreBPE::encode_ordinary`: cut text into pieces by the encoding's pattern; a piece
 * that is a token is that token; any other is merged byte pair by byte pair, lowest rank first), written here
 * because it is the pipeline's hottest loop and the libraries were measurably slower on it: gpt-tokenizer looks
 * every piece up in a Map of 100k–200k strings and merges through UTF-8 → string round trips, tiktoken's
 * WebAssembly build pays a copy across the boundary per call (`npm run bench -- tokenize` has all three against
 * native tiktoken). gpt-tokenizer still supplies the rank tables.
 *
 * Where the time goes, and what this does about it:
 * - Most pieces repeat (words, spaces, punctuation): a piece's ids are kept in a table keyed by the piece's UTF-16
 *   units (SubstringTable), so a repeated piece costs its hash and one comparison: no substring, no Map.
 * - A new piece is looked up by its UTF-8 bytes in an open-addressing table over all tokens' bytes (FNV-1a hash,
 *   bytes compared in one flat array): no string is built.
 * - Merging works on ranks: the rank of two adjacent parts joined is found by continuing the left part's hash over
 *   the right part's bytes, and kept in a small pair table, so a pair seen before costs one probe.
 * The ids are tiktoken's: the tokenize tests hold them equal on every encoding, code point and real text.
 */

/** Slots of the table of pieces seen (it holds half as many pieces before it is emptied). */
const PIECE_SLOTS = 1 << 17;

/** A merged pair's rank, or this when the joined bytes are no token. */
const NO_MERGE = -1;

export class BytePairEncoder {
  /** Every token's bytes, back to back, and where each rank's start (`starts[rank]`…`starts[rank + 1]`). */
  private readonly bytes: Uint8Array;
  private readonly starts: Int32Array;
  /** FNV-1a hash of each rank's bytes (continued over a right part's bytes to hash a pair without joining it). */
  private readonly hashes: Uint32Array;
  /** Open addressing over the tokens' bytes: rank + 1 per slot, 0 when empty. */
  private readonly slots: Int32Array;
  private readonly slotMask: number;
  private readonly byteRanks = new Int32Array(256);
  /**
   * Pieces of one ASCII character (at the character's code) or two (at 0x80 + first × 128 + second): the rank of
   * the piece, or -1 when a two-character piece is no token (it is then its two bytes' tokens: no pair of single
   * bytes merges into anything but the pair itself).
   */
  private readonly shortRanks = new Int32Array(0x80 + 0x80 * 0x80);

  /** Pairs met so far: left, right, merged rank (or NO_MERGE) per entry; left is -1 in an empty entry. */
  private pairs: Int32Array;
  private pairMask: number;
  private pairCount = 0;

  /** Pieces seen lately, each with the offset in pieceIds of its id count and ids. */
  private readonly pieces = new SubstringTable(PIECE_SLOTS, 1 << 20);
  private readonly pieceIds = new Uint32Array(1 << 20);
  private pieceIdsUsed = 0;

  /** Scratch for one piece's bytes, parts and pair ranks; grown for a longer piece. */
  private pieceBytes = new Uint8Array(256);
  private parts = new Int32Array(256);
  private partRanks = new Float64Array(256);
  private readonly utf8 = new TextEncoder();

  /**
   * The pattern anchored where the last piece ended: \`test\` then gives the next piece's end without building a
   * match array, the larger part of splitting's cost.
   */
  private readonly sticky: RegExp;

  /** The ids of the last `encode`, grown as needed. */
  private out = new Uint32Array(1 << 16);

  constructor(
    ranks: RawBytePairRanks,
    private readonly pattern: RegExp,
    /** Finds most pieces without the regular expression (`ascii-split.ts`); BAIL where it cannot. */
    private readonly scan?: PieceScanner,
  ) {
    if (!pattern.global || !pattern.unicode) throw new Error('the split pattern needs the g and u flags');
    this.sticky = new RegExp(pattern.source, 'uy');
    const encoded = ranks.map((entry) =>
      entry === undefined ? undefined : typeof entry === 'string' ? this.utf8.encode(entry) : Uint8Array.from(entry),
    );
    const count = encoded.length;
    let total = 0;
    for (const b of encoded) total += b?.length ?? 0;
    this.bytes = new Uint8Array(total);
    this.starts = new Int32Array(count + 1);
    this.hashes = new Uint32Array(count);
    let size = 1;
    while (size < count * 2) size <<= 1;
    this.slots = new Int32Array(size);
    this.slotMask = size - 1;
    let at = 0;
    for (let rank = 0; rank < count; rank++) {
      this.starts[rank] = at;
      const b = encoded[rank];
      if (!b || b.length === 0) continue;
      this.bytes.set(b, at);
      at += b.length;
      const hash = hashBytes(FNV_START, b, 0, b.length);
      this.hashes[rank] = hash;
      let slot = hash & this.slotMask;
      while (this.slots[slot] !== 0) slot = (slot + 1) & this.slotMask;
      this.slots[slot] = rank + 1;
    }
    this.starts[count] = at;
    for (let byte = 0; byte < 256; byte++) {
      this.pieceBytes[0] = byte;
      const rank = this.rankOfBytes(this.pieceBytes, 1);
      if (rank < 0) throw new Error(`byte ${byte} is no token of this encoding`);
      this.byteRanks[byte] = rank;
    }
    for (let first = 0; first < 0x80; first++) {
      this.shortRanks[first] = this.byteRanks[first];
      for (let second = 0; second < 0x80; second++) {
        this.pieceBytes[0] = first;
        this.pieceBytes[1] = second;
        this.shortRanks[0x80 + (first << 7) + second] = this.rankOfBytes(this.pieceBytes, 2);
      }
    }
    this.pairs = new Int32Array(3 << 16).fill(-1);
    this.pairMask = (1 << 16) - 1;
  }

  /** The ids of `text`, ordinary tokens only (special-token text is plain text), in a view valid until the next call. */
  encode(text: string): Uint32Array {
    let n = 0;
    let out: Uint32Array = this.out;
    const sticky = this.sticky;
    sticky.lastIndex = 0;
    let at = 0;
    const scan = this.scan;
    while (at < text.length) {
      let end = scan === undefined ? BAIL : scan(text, at);
      if (end <= at) {
        sticky.lastIndex = at;
        if (sticky.test(text)) end = sticky.lastIndex;
        else {
          // No piece starts here (the encodings' patterns leave no character out): on to the next match, as Rust's
          // find_iter does.
          this.pattern.lastIndex = at;
          const match = this.pattern.exec(text);
          if (match === null) break;
          at = match.index;
          end = at + match[0].length;
        }
      }
      const first = text.charCodeAt(at);
      const second = end - at === 2 ? text.charCodeAt(at + 1) : 0;
      if (end - at <= 2 && (first | second) < 0x80) {
        // One or two ASCII characters: a table lookup, no string and no Map.
        const short = end - at === 1 ? first : 0x80 + (first << 7) + second;
        const rank = this.shortRanks[short];
        at = end;
        if (n + 2 > out.length) out = this.grow(n, 2);
        if (rank >= 0) out[n++] = rank;
        else {
          out[n++] = this.byteRanks[first];
          out[n++] = this.byteRanks[second];
        }
        continue;
      }
      if (end - at > LONGEST_HELD) {
        const ids = this.encodePiece(text.substring(at, end));
        at = end;
        if (n + ids.length > out.length) out = this.grow(n, ids.length);
        for (let i = 0; i < ids.length; i++) out[n++] = ids[i];
        continue;
      }
      let hash = FNV_START;
      for (let k = at; k < end; k++) hash = fnvStep(hash, text.charCodeAt(k));
      let held = this.pieces.get(text, at, end, hash);
      if (held < 0) held = this.hold(text, at, end, hash);
      at = end;
      const ids = this.pieceIds;
      const count = ids[held];
      if (n + count > out.length) out = this.grow(n, count);
      for (let i = held + 1; i <= held + count; i++) out[n++] = ids[i];
    }
    return out.subarray(0, n);
  }

  /** Encodes text[at, end) (not held yet) and holds its ids; returns their offset in pieceIds. */
  private hold(text: string, at: number, end: number, hash: number): number {
    const ids = this.encodePiece(text.substring(at, end));
    if (!this.pieces.roomFor(end - at) || this.pieceIdsUsed + 1 + ids.length > this.pieceIds.length) {
      this.pieces.clear();
      this.pieceIdsUsed = 0;
    }
    const offset = this.pieceIdsUsed;
    this.pieceIds[offset] = ids.length;
    for (let i = 0; i < ids.length; i++) this.pieceIds[offset + 1 + i] = ids[i];
    this.pieceIdsUsed += 1 + ids.length;
    this.pieces.set(text, at, end, hash, offset);
    return offset;
  }

  /** Drops the piece and pair caches (the tables stay). */
  clearCaches(): void {
    this.pieces.clear();
    this.pieceIdsUsed = 0;
    this.pairs = new Int32Array(3 << 16).fill(-1);
    this.pairMask = (1 << 16) - 1;
    this.pairCount = 0;
  }

  private grow(used: number, more: number): Uint32Array {
    const bigger = new Uint32Array(Math.max(this.out.length * 2, used + more));
    bigger.set(this.out.subarray(0, used));
    this.out = bigger;
    return bigger;
  }

  /** One piece's ids: its rank when it is a token, else tiktoken's merge of its bytes. */
  private encodePiece(piece: string): number[] {
    let n = piece.length;
    let ascii = true;
    for (let i = 0; i < n; i++) {
      if (piece.charCodeAt(i) > 0x7f) {
        ascii = false;
        break;
      }
    }
    if (this.pieceBytes.length < n * 3) this.pieceBytes = new Uint8Array(n * 3);
    const bytes = this.pieceBytes;
    if (ascii) for (let i = 0; i < n; i++) bytes[i] = piece.charCodeAt(i);
    else n = this.utf8.encodeInto(piece, bytes).written;
    const whole = this.rankOfBytes(bytes, n);
    if (whole >= 0) return [whole];
    return this.merge(bytes, n);
  }

  /** The rank of `bytes[0, n)`, or -1. */
  private rankOfBytes(bytes: Uint8Array, n: number): number {
    const hash = hashBytes(FNV_START, bytes, 0, n);
    for (let slot = hash & this.slotMask; ; slot = (slot + 1) & this.slotMask) {
      const entry = this.slots[slot];
      if (entry === 0) return -1;
      const rank = entry - 1;
      if (this.hashes[rank] !== hash) continue;
      const start = this.starts[rank];
      if (this.starts[rank + 1] - start !== n) continue;
      let same = true;
      for (let i = 0; i < n; i++) {
        if (this.bytes[start + i] !== bytes[i]) {
          same = false;
          break;
        }
      }
      if (same) return rank;
    }
  }

  /** tiktoken's `byte_pair_merge`: join the adjacent pair of lowest rank until no pair is a token. */
  private merge(bytes: Uint8Array, n: number): number[] {
    if (this.parts.length < n) {
      this.parts = new Int32Array(n * 2);
      this.partRanks = new Float64Array(n * 2);
    }
    const parts = this.parts;
    const ranks = this.partRanks; // ranks[i]: the rank of parts i and i+1 joined, Infinity when none
    for (let i = 0; i < n; i++) parts[i] = this.byteRanks[bytes[i]];
    for (let i = 0; i < n - 1; i++) ranks[i] = this.pairRank(parts[i], parts[i + 1]);
    let count = n;
    while (count > 1) {
      let lowest = Infinity;
      let at = -1;
      for (let i = 0; i < count - 1; i++) {
        if (ranks[i] < lowest) {
          lowest = ranks[i];
          at = i;
        }
      }
      if (at < 0) break;
      parts[at] = lowest;
      for (let i = at + 1; i < count - 1; i++) {
        parts[i] = parts[i + 1];
        ranks[i] = ranks[i + 1];
      }
      count--;
      if (at + 1 < count) ranks[at] = this.pairRank(parts[at], parts[at + 1]);
      if (at > 0) ranks[at - 1] = this.pairRank(parts[at - 1], parts[at]);
    }
    return Array.from(parts.subarray(0, count));
  }

  /** The rank of tokens `left` and `right` joined, or Infinity. */
  private pairRank(left: number, right: number): number {
    const mask = this.pairMask;
    let entry = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right, 0x85ebca6b)) & mask;
    for (;;) {
      const o = entry * 3;
      const l = this.pairs[o];
      if (l === -1) break;
      if (l === left && this.pairs[o + 1] === right) {
        const merged = this.pairs[o + 2];
        return merged === NO_MERGE ? Infinity : merged;
      }
      entry = (entry + 1) & mask;
    }
    const merged = this.joinedRank(left, right);
    if (++this.pairCount * 2 > mask + 1) this.growPairs();
    this.insertPair(left, right, merged);
    return merged === NO_MERGE ? Infinity : merged;
  }

  /** The rank of the bytes of `left` then `right`, found without joining them, or NO_MERGE. */
  private joinedRank(left: number, right: number): number {
    const bytes = this.bytes;
    const leftStart = this.starts[left];
    const leftLength = this.starts[left + 1] - leftStart;
    const rightStart = this.starts[right];
    const rightLength = this.starts[right + 1] - rightStart;
    const hash = hashBytes(this.hashes[left], bytes, rightStart, rightStart + rightLength);
    for (let slot = hash & this.slotMask; ; slot = (slot + 1) & this.slotMask) {
      const entry = this.slots[slot];
      if (entry === 0) return NO_MERGE;
      const rank = entry - 1;
      if (this.hashes[rank] !== hash) continue;
      const start = this.starts[rank];
      if (this.starts[rank + 1] - start !== leftLength + rightLength) continue;
      let same = true;
      for (let i = 0; i < leftLength && same; i++) same = bytes[start + i] === bytes[leftStart + i];
      for (let i = 0; i < rightLength && same; i++) same = bytes[start + leftLength + i] === bytes[rightStart + i];
      if (same) return rank;
    }
  }

  private insertPair(left: number, right: number, merged: number): void {
    const mask = this.pairMask;
    let entry = (Math.imul(left, 0x9e3779b1) ^ Math.imul(right, 0x85ebca6b)) & mask;
    while (this.pairs[entry * 3] !== -1) entry = (entry + 1) & mask;
    this.pairs[entry * 3] = left;
    this.pairs[entry * 3 + 1] = right;
    this.pairs[entry * 3 + 2] = merged;
  }

  private growPairs(): void {
    const old = this.pairs;
    this.pairMask = this.pairMask * 2 + 1;
    this.pairs = new Int32Array((this.pairMask + 1) * 3).fill(-1);
    for (let o = 0; o < old.length; o += 3) if (old[o] !== -1) this.insertPair(old[o], old[o + 1], old[o + 2]);
  }
}

/** FNV-1a over `bytes[from, to)`, continuing from `hash`. */
function hashBytes(hash: number, bytes: Uint8Array, from: number, to: number): number {
  let h = hash;
  for (let i = from; i < to; i++) h = fnvStep(h, bytes[i]);
  return h >>> 0;
}
