import type { ByteChunks } from './bytes';

/**
 * A byte range `[start, end)` of a line-based file, read as its own unit. The range owns the lines that start in it:
 * whatever the cut, every line belongs to exactly one range, and ranges read in order give the file's lines in order.
 */
export interface LineRange {
  start: number;
  end: number;
  /** Lines of the file that start before `start`: the range's first line is line `linesBefore + 1` of the file. */
  linesBefore: number;
  /** The file's size when the range was planned; a file of another size no longer matches its ranges. */
  fileBytes: number;
}

/** Where a reader of `range` starts reading: one byte early, to see whether a line starts exactly at `start`. */
export function rangeReadOffset(range: Pick<LineRange, 'start'>): number {
  return Math.max(0, range.start - 1);
}

/**
 * The bytes of the lines `range` owns, from a stream that starts at `rangeReadOffset(range)`: after the first '\n'
 * at or after `start - 1` (from byte 0 when `start` is 0), through the first '\n' at or after `end - 1` (which ends
 * the last line starting before `end`), or to the end of the file.
 */
export async function* ownedLineBytes(chunks: ByteChunks, range: Pick<LineRange, 'start' | 'end'>): ByteChunks {
  let position = rangeReadOffset(range); // of the current chunk's first byte
  let owning = range.start === 0;
  const lastNewlineFrom = range.end - 1;
  for await (const chunk of chunks) {
    let from = 0;
    if (!owning) {
      const newline = chunk.indexOf(0x0a);
      if (newline === -1) {
        position += chunk.length;
        continue;
      }
      if (position + newline + 1 >= range.end) return; // the first line starting in the range starts after it
      owning = true;
      from = newline + 1;
    }
    const stopSearch = Math.max(from, lastNewlineFrom - position);
    const stop = stopSearch < chunk.length ? chunk.indexOf(0x0a, stopSearch) : -1;
    if (stop !== -1) {
      yield chunk.subarray(from, stop + 1);
      return;
    }
    if (from < chunk.length) yield from === 0 ? chunk : chunk.subarray(from);
    position += chunk.length;
  }
}

/**
 * For each cut (ascending, each in `1..size-1`), how many lines start before it, from one pass over the file's
 * bytes; also the bytes seen, to check the file is the size it was listed at. A line starts at byte 0 and after
 * every '\n', so the count before `cut` is 1 plus the newlines in `[0, cut - 1)`.
 */
export async function linesBeforeCuts(
  chunks: ByteChunks,
  cuts: number[],
  onBytes?: (bytes: number) => void,
): Promise<{ linesBefore: number[]; bytes: number }> {
  const linesBefore: number[] = [];
  let newlines = 0;
  let position = 0;
  let next = 0;
  for await (const chunk of chunks) {
    let from = 0;
    while (next < cuts.length && cuts[next] - 1 <= position + chunk.length) {
      const bound = cuts[next] - 1 - position;
      newlines += countNewlines(chunk, from, bound);
      from = bound;
      linesBefore.push(1 + newlines);
      next++;
    }
    newlines += countNewlines(chunk, from, chunk.length);
    position += chunk.length;
    onBytes?.(position);
  }
  return { linesBefore, bytes: position };
}

/** '\n' bytes in `bytes[from, to)`: indexOf (memchr) from newline to newline, about as fast as the disk reads. */
function countNewlines(bytes: Buffer, from: number, to: number): number {
  let count = 0;
  const window = from === 0 && to === bytes.length ? bytes : bytes.subarray(from, to);
  for (let at = window.indexOf(0x0a); at !== -1; at = window.indexOf(0x0a, at + 1)) count++;
  return count;
}
