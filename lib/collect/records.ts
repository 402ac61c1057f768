import { FlywheelError } from '../common';
import type { Document, QuarantineRecord } from '../document';

/** Stable codes for why a record became a quarantine record instead of a document; stats count by these. */
export const QUARANTINE_REASONS = [
  'binary',
  'oversize',
  'json_parse',
  'not_an_object',
  'missing_text',
  'text_not_string',
  'email_parse',
  'no_text',
  'nested_too_deep',
  'expansion_ratio',
  'corrupt_compression',
  'zstd_window',
  'corrupt_archive',
  'unsafe_tar_entry',
  'unsupported_tar_entry',
  'nested_archive',
  'not_found',
  'forbidden',
  'unreadable',
  'fetch_failed',
  'too_large',
  'corrupt_parquet',
  'warc_header',
  'truncated',
  'unsupported_payload',
  'charset',
  'html_parse',
  'empty',
] as const;
export type QuarantineReason = (typeof QUARANTINE_REASONS)[number];

/** One record of a unit, in order. `ordinal` is its position in the unit: resume a unit from it with `startAt`. */
export type CollectEvent =
  | { kind: 'document'; doc: Document; ordinal: number }
  | { kind: 'quarantine'; record: QuarantineRecord; ordinal: number };

/** Where a record sits inside its file: a line (JSON lines, mbox) or an item of a JSON array. */
export type RecordPosition = { line: number } | { item: number };

/**
 * Where a record sits in a file read by structure rather than lines: a Parquet row (0-based, counted over the whole
 * file) in its row group, a whole row group, or the byte offset a WARC record starts at (of its gzip member in a
 * .warc.gz, as Common Crawl's indexes count it).
 */
export type StructuredPosition = { rowGroup: number; row: number } | { rowGroup: number } | { offset: number };

interface RawCommon {
  /** The tar entry the record came from, if any. */
  entry?: string;
  position?: RecordPosition | StructuredPosition;
}

/** A document as a format reader sees it, before limits, ids and timestamps are applied. */
export interface RawDocument extends RawCommon {
  kind: 'document';
  text: string;
  id?: string;
  created?: string;
  metadata: Record<string, unknown>;
  utf8Repaired?: boolean;
}

export interface RawQuarantine extends RawCommon {
  kind: 'quarantine';
  reason: QuarantineReason;
  detail: string;
  sample?: string;
}

/**
 * A record of the source that is not a document and not a problem, passed over and counted by `what` (a WARC
 * `request` or `metadata` record, a redirect): the stage's stats say how many, so nothing read goes unaccounted.
 */
export interface RawSkipped extends RawCommon {
  kind: 'skipped';
  what: string;
}

export type RawRecord = RawDocument | RawQuarantine | RawSkipped;

/**
 * `#12` for line 12, `#[3]` for array item 3, `#row=7` for Parquet row 7, `#rowgroup=2` for a whole row group,
 * `#offset=4096` for the WARC record at byte 4096: appended to Document.source.
 */
export function positionSuffix(position: RecordPosition | StructuredPosition | undefined): string {
  if (position === undefined) return '';
  if ('line' in position) return `#${position.line}`;
  if ('item' in position) return `#[${position.item}]`;
  if ('row' in position) return `#row=${position.row}`;
  if ('rowGroup' in position) return `#rowgroup=${position.rowGroup}`;
  return `#offset=${position.offset}`;
}

/** `line 12`, `item 3`, `row group 2, row 7`, `row group 2`, `offset 4096`: the quarantine record's location. */
export function positionLabel(position: RecordPosition | StructuredPosition | undefined): string | undefined {
  if (position === undefined) return undefined;
  if ('line' in position) return `line ${position.line}`;
  if ('item' in position) return `item ${position.item}`;
  if ('row' in position) return `row group ${position.rowGroup}, row ${position.row}`;
  if ('rowGroup' in position) return `row group ${position.rowGroup}`;
  return `offset ${position.offset}`;
}

/**
 * A problem in the data of one input layer (a decompressor, an archive): it ends that layer with a quarantine
 * record. `layer` tells which layer raised it, so an archive entry does not claim its archive's failure.
 */
export class InputDataError extends FlywheelError {
  constructor(
    readonly layer: symbol,
    readonly reason: QuarantineReason,
    readonly detail: string,
  ) {
    super('InputDataError', detail, { retryable: true });
  }
}

/** Parses a date a source gives (ISO text, RFC 2822, epoch seconds or milliseconds) into ISO 8601. */
export function toIsoDate(value: unknown): string | undefined {
  let date: Date | undefined;
  if (value instanceof Date) date = value;
  else if (typeof value === 'number' && Number.isFinite(value)) {
    // Below 1e11 an epoch number is seconds (1e11 s is the year 5138); above, milliseconds.
    date = new Date(Math.abs(value) < 1e11 ? value * 1000 : value);
  } else if (typeof value === 'string' && value.trim() !== '') {
    date = new Date(value.trim());
  }
  if (date === undefined || Number.isNaN(date.getTime())) return undefined;
  return date.toISOString();
}
