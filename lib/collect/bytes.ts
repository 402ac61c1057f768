import { isUtf8 } from 'node:buffer';

/** A stream of raw bytes, as every reader here consumes it: file streams, S3 bodies, decompressors, tar entries. */
export type ByteChunks = AsyncIterable<Buffer>;

/** Reads the first `n` bytes (fewer at the end of the input) and gives back a stream that still starts at byte 0. */
export async function peekBytes(source: ByteChunks, n: number): Promise<{ head: Buffer; rest: ByteChunks }> {
  const iterator = source[Symbol.asyncIterator]();
  const seen: Buffer[] = [];
  let length = 0;
  let done = false;
  while (length < n) {
    const next = await iterator.next();
    if (next.done) {
      done = true;
      break;
    }
    seen.push(next.value);
    length += next.value.length;
  }
  const head = Buffer.concat(seen);
  async function* rest(): AsyncGenerator<Buffer> {
    try {
      if (head.length > 0) yield head;
      if (done) return;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      if (!done) await iterator.return?.();
    }
  }
  return { head: head.subarray(0, n), rest: rest() };
}

/**
 * Keeps the first `cap` bytes and counts the rest without holding it, so an oversized input costs a read, not
 * memory. Reads to the end: a tar entry must be drained before the next one arrives.
 */
export async function readCapped(source: ByteChunks, cap: number): Promise<{ head: Buffer; total: number }> {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let total = 0;
  for await (const chunk of source) {
    total += chunk.length;
    if (keptBytes < cap) {
      const take = Math.min(chunk.length, cap - keptBytes);
      kept.push(take === chunk.length ? chunk : chunk.subarray(0, take));
      keptBytes += take;
    }
  }
  return { head: kept.length === 1 ? kept[0] : Buffer.concat(kept), total };
}

export interface Line {
  /** 1-based line number. */
  number: number;
  /** The line without its '\n' (and '\r'); empty when the line was over the limit. */
  bytes: Buffer;
  /** Set when the line was longer than the limit: its full length, none of which was kept. */
  overflowBytes?: number;
}

/**
 * Splits a byte stream on '\n' without ever holding more than `maxLineBytes` of one line. `firstNumber` numbers the
 * first line: a byte range of a file continues the file's numbering.
 */
export async function* splitLines(source: ByteChunks, maxLineBytes: number, firstNumber = 1): AsyncGenerator<Line> {
  let pieces: Buffer[] = [];
  let pendingBytes = 0;
  let overflow = 0;
  let number = firstNumber - 1;
  const emit = (): Line => {
    number++;
    let line: Line;
    if (overflow > 0) {
      line = { number, bytes: Buffer.alloc(0), overflowBytes: overflow };
    } else {
      let bytes = pieces.length === 1 ? pieces[0] : Buffer.concat(pieces, pendingBytes);
      if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, bytes.length - 1);
      line = { number, bytes };
    }
    pieces = [];
    pendingBytes = 0;
    overflow = 0;
    return line;
  };
  for await (const chunk of source) {
    let start = 0;
    while (start <= chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      const piece = chunk.subarray(start, end);
      if (overflow > 0) {
        overflow += piece.length;
      } else if (pendingBytes + piece.length > maxLineBytes) {
        overflow = pendingBytes + piece.length;
        pieces = [];
        pendingBytes = 0;
      } else if (piece.length > 0) {
        pieces.push(piece);
        pendingBytes += piece.length;
      }
      if (newline === -1) break;
      yield emit();
      start = newline + 1;
    }
  }
  if (pendingBytes > 0 || overflow > 0) yield emit();
}

export const BINARY_SNIFF_BYTES = 8192;
/** Above this share of control bytes, text is not text. */
const MAX_CONTROL_RATIO = 0.1;

/** Control bytes that do not occur in text; tab, newlines, form feed, backspace and escape (ANSI colours) do. */
function isControl(byte: number): boolean {
  if (byte === 0x7f) return true;
  return (
    byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d && byte !== 0x0c && byte !== 0x08 && byte !== 0x1b
  );
}

/** Why the first 8 KiB look like a binary file, or undefined when they look like text. */
export function binaryReason(head: Buffer): string | undefined {
  const sample = head.subarray(0, BINARY_SNIFF_BYTES);
  if (sample.length === 0) return undefined;
  if (sample.includes(0)) {
    return 'NUL bytes in the first 8 KiB (a binary file, or UTF-16 text: convert it to UTF-8)';
  }
  let control = 0;
  for (const byte of sample) if (isControl(byte)) control++;
  const ratio = control / sample.length;
  if (ratio > MAX_CONTROL_RATIO) {
    return `${(ratio * 100).toFixed(1)}% control bytes in the first 8 KiB (limit ${MAX_CONTROL_RATIO * 100}%)`;
  }
  return undefined;
}

/** Decodes UTF-8, replacing invalid sequences with U+FFFD and saying whether it had to. Drops a leading BOM. */
export function decodeUtf8(bytes: Buffer): { text: string; repaired: boolean } {
  const repaired = !isUtf8(bytes);
  const text = bytes.toString('utf8');
  return { text: text.charCodeAt(0) === 0xfeff ? text.slice(1) : text, repaired };
}

/** Drops a multi-byte character cut off at the end of a buffer (from a byte limit), so it is not taken as invalid. */
export function trimPartialUtf8(bytes: Buffer): Buffer {
  let i = bytes.length;
  let continuation = 0;
  while (i > 0 && continuation < 4 && (bytes[i - 1] & 0xc0) === 0x80) {
    i--;
    continuation++;
  }
  if (i === 0) return bytes;
  const lead = bytes[i - 1];
  const expected = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return expected > continuation + 1 ? bytes.subarray(0, i - 1) : bytes;
}

/** The longest prefix of `text` that fits in `maxBytes` of UTF-8, never splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  return trimPartialUtf8(bytes.subarray(0, maxBytes)).toString('utf8');
}

/** A short excerpt of a bad record for its quarantine entry, to find it again. */
export function excerpt(text: string, maxChars = 200): string {
  return text.length <= maxChars ? text : `${text.slice(0, maxChars)}…`;
}

/**
 * Iterates `source` through one iterator that an early stop does not close: a tar entry must be drained, never
 * destroyed (destroying an entry destroys the whole archive stream). Call `drain()` once the reader is done.
 */
export function detachable(source: ByteChunks): { chunks: ByteChunks; drain(): Promise<void> } {
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  const next = async (): Promise<IteratorResult<Buffer>> => {
    if (finished) return { done: true, value: undefined };
    const result = await iterator.next();
    if (result.done) finished = true;
    return result;
  };
  return {
    chunks: {
      [Symbol.asyncIterator]: () => ({
        next,
        return: async () => ({ done: true, value: undefined }),
      }),
    },
    drain: async () => {
      while (!(await next()).done) {
        // discard the rest of the entry
      }
    },
  };
}
