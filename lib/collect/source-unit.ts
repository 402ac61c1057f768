import { createHash } from 'node:crypto';
import type { LineRange } from './line-ranges';
import type { SourceSpec } from './source-spec';

/**
 * One unit of collection work (a file, an S3 object, a URL, a slice of a sample corpus): the grain an activity
 * reads, retries and resumes. Plain data, so it can travel in activity arguments.
 */
export interface SourceUnit {
  /** Stable across runs: a hash of `uri` and `ref`. */
  id: string;
  /** The source it belongs to, with defaults applied (readUnit needs its limits, format and fields). */
  source: SourceSpec;
  /**
   * Where in the source: a relative path, an object key, the URL, or a document range `start-end` of a sample; a
   * byte range of a file adds `@start-end`.
   */
  ref: string;
  /** The location documents name in Document.source: a path, s3:// URI, URL or `sample:<name>`. */
  uri: string;
  /** Size in bytes when known before reading (0 for URLs); of the range alone for a ranged unit. */
  bytes: number;
  /** Last modification (ISO 8601) when the store says. */
  modified?: string;
  /**
   * Set when the unit is one byte range of a larger file (see splitUnits): only formats that can start mid-file get
   * one (JSON lines; Parquet files are split by row groups instead), and their reader reads only what the range owns.
   */
  range?: LineRange;
  /**
   * Set when the unit is some row groups of a larger Parquet file (see splitUnits): row groups [start, end) of a file
   * of `fileBytes` bytes. The reader opens the whole file and reads those groups only; rows keep their file-wide
   * numbers, so ids and positions are those of an unsplit read.
   */
  rowGroups?: RowGroupRange;
}

export interface RowGroupRange {
  start: number;
  end: number;
  fileBytes: number;
}

export function unitId(uri: string, ref: string): string {
  return createHash('sha256').update(`${uri}\n${ref}`).digest('hex').slice(0, 16);
}

/** The unit of one byte range of `unit`, a whole file: its own ref and id, the file's uri (documents name the file). */
export function rangeUnit(unit: SourceUnit, range: LineRange): SourceUnit {
  const ref = `${unit.ref}@${range.start}-${range.end}`;
  return { ...unit, id: unitId(unit.uri, ref), ref, bytes: range.end - range.start, range };
}

/** The unit of row groups [start, end) of `unit`, a whole Parquet file: its own ref and id, the file's uri. */
export function rowGroupUnit(unit: SourceUnit, groups: RowGroupRange, bytes: number): SourceUnit {
  const ref = `${unit.ref}#row-groups-${groups.start}-${groups.end}`;
  return { ...unit, id: unitId(unit.uri, ref), ref, bytes, rowGroups: groups };
}

/** A document id derived from where the document sits, for sources that give none: 128 bits of sha256. */
export function derivedDocumentId(location: string): string {
  return createHash('sha256').update(location).digest('hex').slice(0, 32);
}

/** Byte-wise order of UTF-16 code units: the same on every machine and locale. */
export function compareRefs(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
