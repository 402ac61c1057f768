import { isUtf8 } from 'node:buffer';
import * as fs from 'node:fs';
import { DedupInputError } from './errors';
import { exactDedupKey } from './exact';
import { MinHasher } from './minhash';
import type { ResolvedDedupOptions } from './options';

/**
 * One chunk of a JSON-lines file, parsed and signed: the unit of work of the command's worker threads. Each line is
 * `{"id": ..., "text": ...}`; other fields pass through untouched. Blank lines are not documents. A chunk is a byte
 * range of the file and owns the lines that start inside it, so workers read the file themselves, in parallel.
 */
export interface SignedChunk {
  /** Where the chunk's first line starts and how many bytes its lines span (0 when it owns no line). */
  start: number;
  length: number;
  count: number;
  /** Line number of each document, counting from 1 at the chunk's first line. */
  lines: Uint32Array;
  /** Each document's id as JSON (a string or number), as written to duplicates.jsonl. */
  ids: string[];
  idHi: Uint32Array;
  idLo: Uint32Array;
  sigs: Uint32Array;
  exactHi: Uint32Array;
  exactLo: Uint32Array;
  words: Uint32Array;
  /** count × bands × 2 (lo, hi) band keys; meaningless where words = 0. */
  bandKeys: Uint32Array;
  /** Bytes each document's line takes in kept.jsonl (repaired, with its newline). */
  outBytes: Uint32Array;
  /** Lines whose invalid UTF-8 was replaced by U+FFFD. */
  repairedLines: number;
  /** Lines the chunk owns, blank ones included. */
  lineCount: number;
  /** Every document's shingle set, when the settings ask for them (exact verification in the pipeline stage). */
  shingles?: PackedShingles;
}

/** Shingle sets of n documents back to back: set i is values[offsets[i] .. offsets[i + 1]). */
export interface PackedShingles {
  offsets: Uint32Array;
  values: Uint32Array;
}

/** Packs sets in order. */
export function packShingles(sets: readonly Uint32Array[]): PackedShingles {
  const offsets = new Uint32Array(sets.length + 1);
  for (let i = 0; i < sets.length; i++) offsets[i + 1] = offsets[i] + sets[i].length;
  const values = new Uint32Array(offsets[sets.length]);
  sets.forEach((set, i) => values.set(set, offsets[i]));
  return { offsets, values };
}

/** Set i of packed sets (a view, no copy). */
export function shingleSetOf(packed: PackedShingles, i: number): Uint32Array {
  return packed.values.subarray(packed.offsets[i], packed.offsets[i + 1]);
}

/** Signatures and band keys go to SharedArrayBuffers: the band join reads them on other threads without copies. */
function sharedU32(length: number): Uint32Array {
  return new Uint32Array(new SharedArrayBuffer(length * 4));
}

export type ChunkSettings = Pick<ResolvedDedupOptions, 'minhash' | 'lsh' | 'exactField'> & {
  /** Also return every document's shingle set. */
  shingles?: boolean;
};

const NEWLINE = 10;
const decoder = new TextDecoder('utf-8');

/**
 * One line at a time, with its byte range and, when `decode` is set, its text (invalid UTF-8 replaced by U+FFFD).
 * Lines are decoded one by one: a whole chunk decoded at once becomes a two-byte string as soon as one character is
 * not Latin-1, and every line cut from it (and every JSON.parse of it) is slower for that.
 */
function forEachLine(
  bytes: Uint8Array,
  decode: boolean,
  visit: (line: string, index: number, start: number, end: number, repaired: boolean) => void,
): number {
  const valid = isUtf8(bytes);
  let start = 0;
  let index = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(NEWLINE, start);
    if (end < 0) end = bytes.length;
    const raw = bytes.subarray(start, end);
    const repaired = !valid && !isUtf8(raw);
    visit(decode || repaired ? decoder.decode(raw) : '', index, start, end, repaired);
    start = end + 1;
    index++;
  }
  return index;
}

/**
 * Reads the lines that start in [start, end): from the first line start at or after `start` to the newline that
 * ends the line holding byte end − 1 (or the end of the file).
 */
export function readOwnedLines(
  fd: number,
  start: number,
  end: number,
  fileSize: number,
): { start: number; bytes: Uint8Array } {
  const from = Math.max(0, start - 1);
  let buf = new Uint8Array(Math.max(0, Math.min(end, fileSize) - from));
  let filled = fs.readSync(fd, buf, 0, buf.length, from);
  while (from + filled < fileSize && buf[filled - 1] !== NEWLINE) {
    const more = new Uint8Array(Math.max(buf.length * 2, 1 << 16));
    more.set(buf.subarray(0, filled));
    buf = more;
    const n = fs.readSync(fd, buf, filled, Math.min(buf.length - filled, fileSize - from - filled), from + filled);
    if (n === 0) break;
    filled += n;
    const nl = buf.subarray(0, filled).indexOf(NEWLINE, Math.max(end - from - 1, 0));
    if (nl >= 0) {
      filled = nl + 1;
      break;
    }
  }
  // The first owned line starts after the newline at or after start − 1 (at 0 for the first chunk).
  let first = 0;
  if (start > 0) {
    const nl = buf.subarray(0, filled).indexOf(NEWLINE);
    first = nl < 0 || from + nl + 1 >= end ? filled : nl + 1;
  }
  // Lines starting at or after `end` belong to the next chunk.
  let last = filled;
  if (from + filled > end) {
    const nl = buf.subarray(0, filled).indexOf(NEWLINE, Math.max(end - from - 1, first));
    last = nl < 0 ? filled : nl + 1;
  }
  if (first >= last) return { start: from + first, bytes: new Uint8Array(0) };
  return { start: from + first, bytes: buf.subarray(first, last) };
}

/** Each document's exact-dedup key and id, in order: what the pipeline's exact dedup joins on. */
export interface ExactKeys {
  keys: string[];
  ids: string[];
}

/**
 * The exact-dedup keys (`exactDedupKey`) and ids of the document lines of `file` (a pipeline partition, decompressed:
 * one Document as JSON per line) that start in [start, end).
 */
export function exactKeysOfRange(file: string, start: number, end: number): ExactKeys {
  const fd = fs.openSync(file, 'r');
  try {
    const { bytes } = readOwnedLines(fd, start, end, fs.fstatSync(fd).size);
    const out: ExactKeys = { keys: [], ids: [] };
    forEachLine(bytes, true, (line) => {
      if (line.length === 0) return;
      const doc = JSON.parse(line) as { id: string; text: string };
      out.keys.push(exactDedupKey(doc.text));
      out.ids.push(doc.id);
    });
    return out;
  } finally {
    fs.closeSync(fd);
  }
}

export class ChunkSigner {
  private readonly hasher: MinHasher;
  constructor(private readonly settings: ChunkSettings) {
    this.hasher = new MinHasher(settings.minhash);
  }

  /** Signs the lines of `file` that start in [start, end). */
  signRange(file: string, start: number, end: number): SignedChunk {
    const fd = fs.openSync(file, 'r');
    try {
      const owned = readOwnedLines(fd, start, end, fs.fstatSync(fd).size);
      const chunk = this.sign(owned.bytes);
      chunk.start = owned.start;
      return chunk;
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * The shingle sets of some documents of the lines of `file` that start in [start, end): `docs` are their indices
   * among the range's documents, ascending. The second read of the command's exact verification.
   */
  shinglesOfRange(file: string, start: number, end: number, docs: Uint32Array): PackedShingles {
    const fd = fs.openSync(file, 'r');
    try {
      const { texts } = this.parseLines(readOwnedLines(fd, start, end, fs.fstatSync(fd).size).bytes);
      return packShingles(
        Array.from(docs, (d) => {
          if (d >= texts.length) throw new RangeError(`the range [${start}, ${end}) of ${file} has no document ${d}`);
          return this.hasher.shingleSet(texts[d]);
        }),
      );
    } finally {
      fs.closeSync(fd);
    }
  }

  private parseLines(bytes: Uint8Array) {
    const texts: string[] = [];
    const ids: string[] = [];
    const lines: number[] = [];
    const outBytes: number[] = [];
    const exactFields: (string | undefined)[] = [];
    let repairedLines = 0;
    const lineCount = forEachLine(bytes, true, (line, index, start, end, repaired) => {
      if (repaired) repairedLines++;
      if (line.trim().length === 0) return;
      this.parse(line, index + 1, texts, ids, exactFields);
      lines.push(index + 1);
      outBytes.push((repaired ? Buffer.byteLength(line) : end - start) + 1);
    });
    return { texts, ids, lines, outBytes, exactFields, repairedLines, lineCount };
  }

  /** Signs whole lines; line numbers count from 1 at the first. */
  sign(bytes: Uint8Array): SignedChunk {
    const { numPerm } = this.settings.minhash;
    const { bands, rows } = this.settings.lsh;
    const { texts, ids, lines, outBytes, exactFields, repairedLines, lineCount } = this.parseLines(bytes);
    const count = texts.length;
    const chunk: SignedChunk = {
      start: 0,
      length: bytes.length,
      count,
      lines: Uint32Array.from(lines),
      ids,
      idHi: new Uint32Array(count),
      idLo: new Uint32Array(count),
      sigs: sharedU32(count * numPerm),
      exactHi: new Uint32Array(count),
      exactLo: new Uint32Array(count),
      words: new Uint32Array(count),
      bandKeys: sharedU32(count * bands * 2),
      outBytes: Uint32Array.from(outBytes),
      repairedLines,
      lineCount,
    };
    const h = this.hasher;
    for (let i = 0; i < count; i++) {
      chunk.words[i] = h.sign(texts[i], chunk.sigs, i);
      chunk.exactHi[i] = h.exactHi;
      chunk.exactLo[i] = h.exactLo;
      const field = exactFields[i];
      if (field !== undefined) {
        h.hashString(field);
        chunk.exactHi[i] = h.hashHi;
        chunk.exactLo[i] = h.hashLo;
      }
      if (chunk.words[i] > 0) h.bandKeys(chunk.sigs, i, bands, rows, chunk.bandKeys, i * bands);
      h.hashString(ids[i]);
      chunk.idHi[i] = h.hashHi;
      chunk.idLo[i] = h.hashLo;
    }
    if (this.settings.shingles) chunk.shingles = packShingles(texts.map((t) => h.shingleSet(t)));
    return chunk;
  }

  private parse(
    line: string,
    lineNo: number,
    texts: string[],
    ids: string[],
    exactFields: (string | undefined)[],
  ): void {
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      throw DedupInputError.atLine(lineNo, `not valid JSON (${(err as Error).message})`);
    }
    if (typeof record !== 'object' || record === null || Array.isArray(record))
      throw DedupInputError.atLine(lineNo, 'expected a JSON object {"id": ..., "text": ...}');
    const { id, text } = record as { id?: unknown; text?: unknown };
    if (typeof text !== 'string')
      throw DedupInputError.atLine(
        lineNo,
        `${text === undefined ? 'missing "text" field' : '"text" is not a string'}; every line needs {"id": ..., "text": "..."}`,
      );
    if (!((typeof id === 'string' && id.length > 0) || (typeof id === 'number' && Number.isFinite(id))))
      throw DedupInputError.atLine(
        lineNo,
        id === undefined ? 'missing "id" field' : '"id" must be a non-empty string or a number',
      );
    texts.push(text);
    ids.push(JSON.stringify(id));
    const field = this.settings.exactField;
    if (field === undefined) exactFields.push(undefined);
    else {
      const value = (record as Record<string, unknown>)[field];
      exactFields.push(
        value === undefined || value === null ? undefined : typeof value === 'string' ? value : JSON.stringify(value),
      );
    }
  }
}

/** A chunk's part of kept.jsonl: its lines [start, start + length) of the input, the kept ones at `offset`. */
export interface KeptRange {
  input: string;
  output: string;
  start: number;
  length: number;
  offset: number;
  /** Bytes the kept lines take in the output (the sum of their outBytes). */
  size: number;
  /** Sorted line numbers (from 1 at the chunk's first line) of the kept documents. */
  keptLines: Uint32Array;
}

/**
 * Stage e for one chunk: copies its kept lines byte for byte (repairing invalid UTF-8, adding a missing final
 * newline) to their place in the output, which several threads fill at once.
 */
export function writeKeptRange(range: KeptRange): number {
  if (range.keptLines.length === 0) return 0;
  const input = fs.openSync(range.input, 'r');
  const output = fs.openSync(range.output, 'r+');
  try {
    const bytes = new Uint8Array(range.length);
    fs.readSync(input, bytes, 0, range.length, range.start);
    const out = new Uint8Array(range.size);
    let used = 0;
    let next = 0;
    forEachLine(bytes, false, (line, index, start, end, repaired) => {
      if (range.keptLines[next] !== index + 1) return;
      next++;
      if (repaired) {
        const fixed = Buffer.from(line);
        out.set(fixed, used);
        used += fixed.length;
      } else {
        out.set(bytes.subarray(start, end), used);
        used += end - start;
      }
      out[used++] = NEWLINE;
    });
    if (used !== range.size) throw new Error(`kept lines took ${used} bytes where ${range.size} were expected`);
    fs.writeSync(output, out, 0, used, range.offset);
    return used;
  } finally {
    fs.closeSync(input);
    fs.closeSync(output);
  }
}
