import * as path from 'node:path';
import { BINARY_SNIFF_BYTES, binaryReason, peekBytes } from './bytes';
import type { CollectContext } from './context';
import { compressionFromMagic, compressionFromName } from './decompress';
import { CollectError } from './errors';
import { formatFromName } from './formats/parse-input';
import { linesBeforeCuts, type LineRange } from './line-ranges';
import { rangeUnit, type SourceUnit } from './source-unit';
import { openPathUnit } from './sources/local-files';
import { openS3Unit } from './sources/s3-objects';

export interface SplitOptions {
  /** A file larger than this is read as ranges of about this many bytes each. */
  unitBytes: number;
  ctx: CollectContext;
  /** Bytes scanned so far, for heartbeats: finding where each range's lines start reads the split files once. */
  onProgress?: (scannedBytes: number) => void;
}

/**
 * Divides the units of large line-based files into byte ranges of about `unitBytes`, so one big file is collected
 * by several activities at once; every other unit stays whole. Only uncompressed JSON lines files and S3 objects
 * split: compressed files, archives, whole-file formats (json, txt, md, email), URLs (no size, no ranges) and tier
 * objects cannot be read from the middle. Each split file is read once here to count the lines before each cut, so
 * documents keep the ids and line numbers an unsplit read gives. Deterministic: the same files and `unitBytes` give
 * the same ranges.
 */
export async function splitUnits(units: SourceUnit[], opts: SplitOptions): Promise<SourceUnit[]> {
  const out: SourceUnit[] = [];
  let scanned = 0;
  for (const unit of units) {
    const count = unit.bytes > opts.unitBytes && mayReadFromMiddle(unit) ? Math.ceil(unit.bytes / opts.unitBytes) : 1;
    if (count === 1) {
      out.push(unit);
      continue;
    }
    // Even cuts: ranges differ by at most a byte, so batches of ranges weigh the same.
    const cuts = Array.from({ length: count - 1 }, (_, i) => Math.floor(((i + 1) * unit.bytes) / count));
    const done = scanned;
    const ranged = await splitUnitAt(unit, cuts, opts.ctx, (bytes) => opts.onProgress?.(done + bytes));
    scanned += unit.bytes;
    out.push(...(ranged ?? [unit]));
  }
  return out;
}

/**
 * The units of `unit`'s byte ranges cut at `cuts` (ascending offsets inside the file), or undefined when the file
 * cannot be read from the middle or cannot be scanned now (reading it whole then reports any problem).
 */
export async function splitUnitAt(
  unit: SourceUnit,
  cuts: number[],
  ctx: CollectContext,
  onBytes?: (bytes: number) => void,
): Promise<SourceUnit[] | undefined> {
  if (!mayReadFromMiddle(unit) || cuts.some((cut, i) => cut < 1 || cut >= unit.bytes || cut <= (cuts[i - 1] ?? 0))) {
    return undefined;
  }
  let opened;
  try {
    opened = unit.source.type === 's3' ? await openS3Unit(unit, ctx) : await openPathUnit(unit, ctx);
  } catch (err) {
    if (err instanceof CollectError) return undefined;
    throw err;
  }
  try {
    // What parseInput would decide from the head: data compressed despite its name, or binary, is read whole.
    const { head, rest } = await peekBytes(opened.input.chunks, BINARY_SNIFF_BYTES);
    if (compressionFromMagic(head) !== undefined || binaryReason(head) !== undefined) return undefined;
    const { linesBefore, bytes } = await linesBeforeCuts(rest, cuts, onBytes);
    if (bytes !== unit.bytes) return undefined; // changed since it was listed
    const starts = [0, ...cuts];
    return starts.map((start, i) => {
      const range: LineRange = {
        start,
        end: cuts[i] ?? unit.bytes,
        linesBefore: i === 0 ? 0 : linesBefore[i - 1],
        fileBytes: unit.bytes,
      };
      return rangeUnit(unit, range);
    });
  } catch (err) {
    if (err instanceof CollectError) return undefined;
    throw err;
  } finally {
    await opened.close();
  }
}

/** Whether the unit is a whole file or S3 object that parseInput would read as uncompressed JSON lines. */
function mayReadFromMiddle(unit: SourceUnit): boolean {
  if (unit.range !== undefined || (unit.source.type !== 'path' && unit.source.type !== 's3')) return false;
  const name = path.basename(unit.uri);
  if (compressionFromName(name) !== undefined) return false;
  const format = unit.source.format === 'auto' ? formatFromName(name) : unit.source.format;
  return format === 'jsonl';
}
