import type { ByteChunks } from '../bytes';
import type { FieldMapping, SourceFormat } from '../source-spec';

/** One stream of bytes to read records from: a file, an S3 object, a download, or an entry of an archive. */
export interface ByteInput {
  /** File or entry name; its extensions pick the format and compression. */
  name: string;
  /** Where it is, as documents' metadata.path shows it (a path, URI, or `archive!entry`). */
  path: string;
  chunks: ByteChunks;
  modified?: Date;
  /**
   * Reads of any byte range of the same bytes, where the source offers them (a local file, an S3 object): formats
   * indexed from the end (Parquet) read only what they need through it and leave `chunks` unread.
   */
  randomAccess?: RandomAccessBytes;
}

/** Positional reads of one input: `read(start, end)` gives bytes [start, end), end exclusive. */
export interface RandomAccessBytes {
  byteLength: number;
  read(start: number, end: number): Promise<Buffer>;
}

export interface ParseOptions {
  /** Forced format for the outermost input ('auto' detects); entries of an archive are always detected. */
  format: SourceFormat;
  fields: FieldMapping;
  maxDocumentBytes: number;
  oversize: 'skip' | 'truncate';
  maxExpansionRatio: number;
  /** Parquet: read only row groups [start, end) (a unit of a split file); all of them when unset. */
  rowGroups?: { start: number; end: number };
}

const MiB = 1024 * 1024;

/** JSON can spend several bytes per text byte on escapes; a line past this cannot hold a document we would keep. */
export function maxJsonLineBytes(opts: ParseOptions): number {
  return Math.max(4 * opts.maxDocumentBytes, MiB);
}

/** A whole-file JSON document is parsed in memory; past this it must be converted to JSON lines, which stream. */
export const MAX_JSON_FILE_BYTES = 256 * MiB;

/** An email is parsed in memory with its attachments; past this it is quarantined unparsed. */
export function maxMessageBytes(opts: ParseOptions): number {
  return Math.max(64 * MiB, 2 * opts.maxDocumentBytes);
}
