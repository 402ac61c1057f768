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
 * The '\n' bytes among the first `length` bytes of a stream (it may go on; the rest is not read), reporting the bytes
 * counted so far. Planning counts them between cuts: the lines before a cut are 1 plus the newlines in `[0, cut - 1)`,
 * since a line starts at byte 0 and after every '\n'.
 */
export async function countNewlines(
  chunks: ByteChunks,
  length: number,
  onBytes?: (bytes: number) => void,
): Promise<number> {
  let newlines = 0;
  let seen = 0;
  if (length <= 0) return 0;
  for await (const chunk of chunks) {
    const take = Math.min(chunk.length, length - seen);
    // indexOf is memchr: counting runs at memory speed, well ahead of the disk or network.
    const window = take === chunk.length ? chunk : chunk.subarray(0, take);
    for (let at = window.indexOf(0x0a); at !== -1; at = window.indexOf(0x0a, at + 1)) newlines++;
    seen += take;
    onBytes?.(seen);
    if (seen >= length) break;
  }
  return newlines;
}
