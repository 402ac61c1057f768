import * as path from 'node:path';
import { mapLimit } from '../common/map-limit';
import { BINARY_SNIFF_BYTES, binaryReason, peekBytes } from './bytes';
import type { CollectContext } from './context';
import { compressionFromMagic, compressionFromName } from './decompress';
import { CollectError } from './errors';
import { formatFromName } from './formats/parse-input';
import { countNewlines } from './line-ranges';
import { parquetRowGroupBytes } from './formats/parquet-rows';
import { rangeUnit, rowGroupUnit, type SourceUnit } from './source-unit';
import { openPathUnit } from './sources/local-files';
import type { OpenedUnit } from './sources/opened-unit';
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
 * objects cannot be read from the middle. Each split file is read here up to its last cut (a few segments at once)
 * to count the lines before each cut, so documents keep the ids and line numbers an unsplit read gives.
 * Deterministic: the same files and `unitBytes` give the same ranges.
 */
export async function splitUnits(units: SourceUnit[], opts: SplitOptions): Promise<SourceUnit[]> {
  const out: SourceUnit[] = [];
  let scanned = 0;
  for (const unit of units) {
    if (unit.bytes > opts.unitBytes && isParquetInPlace(unit)) {
      out.push(...((await splitParquet(unit, opts.unitBytes, opts.ctx)) ?? [unit]));
      continue;
    }
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

/** Segments of a file counted at once while planning: reads in parallel, where disks and S3 serve them faster. */
const SCAN_CONCURRENCY = 4;

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
  try {
    if (!(await startsAsText(unit, ctx))) return undefined;
    // The lines before each cut are 1 plus the newlines in [0, cut - 1): counted per segment between cuts, in parallel.
    const ends = cuts.map((cut) => cut - 1);
    let scanned = 0;
    const counts = await mapLimit(ends, SCAN_CONCURRENCY, async (end, i) => {
      const from = i === 0 ? 0 : ends[i - 1];
      let seen = 0;
      // Opened as a range starting one byte later, so its read starts at `from`; the open checks the file unchanged.
      const segment = rangeUnit(unit, { start: from + 1, end: unit.bytes, linesBefore: 0, fileBytes: unit.bytes });
      const opened = await openWhere(segment, ctx);
      try {
        return await countNewlines(opened.input.chunks, end - from, (bytes) => {
          scanned += bytes - seen;
          seen = bytes;
          onBytes?.(scanned);
        });
      } finally {
        await opened.close();
      }
    });
    let newlines = 0;
    const linesBefore = [0, ...counts.map((count) => 1 + (newlines += count))];
    return [0, ...cuts].map((start, i) =>
      rangeUnit(unit, { start, end: cuts[i] ?? unit.bytes, linesBefore: linesBefore[i], fileBytes: unit.bytes }),
    );
  } catch (err) {
    if (err instanceof CollectError) return undefined;
    throw err;
  }
}

/** What parseInput would decide from the head: data compressed despite its name, or binary, is read whole. */
async function startsAsText(unit: SourceUnit, ctx: CollectContext): Promise<boolean> {
  const opened = await openWhere(unit, ctx);
  try {
    const { head } = await peekBytes(opened.input.chunks, BINARY_SNIFF_BYTES);
    return compressionFromMagic(head) === undefined && binaryReason(head) === undefined;
  } finally {
    await opened.close();
  }
}

function openWhere(unit: SourceUnit, ctx: CollectContext): Promise<OpenedUnit> {
  return unit.source.type === 's3' ? openS3Unit(unit, ctx) : openPathUnit(unit, ctx);
}

/** Whether the unit is a whole, uncompressed Parquet file or S3 object: read in place, a row group at a time. */
function isParquetInPlace(unit: SourceUnit): boolean {
  if (unit.range !== undefined || unit.rowGroups !== undefined) return false;
  if (unit.source.type !== 'path' && unit.source.type !== 's3') return false;
  const name = path.basename(unit.uri);
  if (compressionFromName(name) !== undefined) return false;
  return (unit.source.format === 'auto' ? formatFromName(name) : unit.source.format) === 'parquet';
}

/**
 * The units of a Parquet file's row groups, consecutive groups gathered up to about `unitBytes` of their column
 * chunks (a group larger than that is a unit of its own), from the file's footer; undefined when the footer cannot
 * be read now (reading the file whole then reports it, with where).
 */
async function splitParquet(
  unit: SourceUnit,
  unitBytes: number,
  ctx: CollectContext,
): Promise<SourceUnit[] | undefined> {
  let sizes: number[];
  try {
    const opened = await openWhere(unit, ctx);
    try {
      if (opened.input.randomAccess === undefined) return undefined;
      sizes = await parquetRowGroupBytes(opened.input.randomAccess);
    } finally {
      await opened.close();
    }
  } catch {
    return undefined;
  }
  const units: SourceUnit[] = [];
  let start = 0;
  let bytes = 0;
  sizes.forEach((size, index) => {
    if (index > start && bytes + size > unitBytes) {
      units.push(rowGroupUnit(unit, { start, end: index, fileBytes: unit.bytes }, bytes));
      start = index;
      bytes = 0;
    }
    bytes += size;
  });
  if (sizes.length > start) units.push(rowGroupUnit(unit, { start, end: sizes.length, fileBytes: unit.bytes }, bytes));
  return units.length > 1 ? units : undefined;
}

/** Whether the unit is a whole file or S3 object that parseInput would read as uncompressed JSON lines. */
function mayReadFromMiddle(unit: SourceUnit): boolean {
  if (unit.range !== undefined || (unit.source.type !== 'path' && unit.source.type !== 's3')) return false;
  const name = path.basename(unit.uri);
  if (compressionFromName(name) !== undefined) return false;
  const format = unit.source.format === 'auto' ? formatFromName(name) : unit.source.format;
  return format === 'jsonl';
}
