import {
  parquetMetadataAsync,
  parquetReadObjects,
  parquetSchema,
  type AsyncBuffer,
  type FileMetaData,
  type RowGroup,
} from 'hyparquet';
import { compressors } from 'hyparquet-compressors';
import { readCapped } from '../bytes';
import type { RawRecord } from '../records';
import { bufferRandomAccess } from '../sources/random-access';
import type { ByteInput, ParseOptions, RandomAccessBytes } from './input';
import { recordFromJson } from './json-records';

/**
 * A Parquet file without random access (a download, a compressed file, an archive entry) is held in memory to be
 * read; past this it is quarantined. Local files and S3 objects are read in place, a row group at a time.
 */
export const MAX_BUFFERED_PARQUET_BYTES = 256 * 1024 * 1024;

/** Parquet files end with the footer's length and this magic, and start with it. */
export const PARQUET_MAGIC = Buffer.from('PAR1');

/**
 * Reads a Parquet file row group by row group (so memory stays bounded by one row group of the columns read), mapping
 * columns through the field mapping as JSON records are (dotted paths reach into struct columns). Only the columns
 * the mapping names are read. A missing text column, a footer that does not parse, or a row group that does not
 * decode is quarantined with where it is; the other row groups are read.
 */
export async function* readParquet(input: ByteInput, opts: ParseOptions): AsyncGenerator<RawRecord> {
  let bytes = input.randomAccess;
  if (bytes === undefined) {
    const { head, total } = await readCapped(input.chunks, MAX_BUFFERED_PARQUET_BYTES);
    if (total > MAX_BUFFERED_PARQUET_BYTES) {
      yield {
        kind: 'quarantine',
        reason: 'oversize',
        detail:
          `Parquet file of ${total} bytes read without random access (compressed, archived or downloaded) is held ` +
          `in memory, and it is over the ${MAX_BUFFERED_PARQUET_BYTES}-byte limit for that; store it uncompressed ` +
          'on a path or S3 source, which are read a row group at a time',
      };
      return;
    }
    bytes = bufferRandomAccess(head);
  }
  const file = asyncBufferOf(bytes);

  let metadata: FileMetaData;
  let columns: string[];
  try {
    metadata = await parquetMetadataAsync(file);
    // A footer can parse as thrift and still not describe a schema: that is a corrupt footer too.
    columns = parquetSchema(metadata).children.map((child) => child.element.name);
  } catch (err) {
    const footer = await footerStart(bytes);
    yield {
      kind: 'quarantine',
      position: footer === undefined ? undefined : { offset: footer },
      reason: 'corrupt_parquet',
      detail: `${input.path}: the Parquet footer does not parse (${(err as Error).message}); no row can be located`,
    };
    return;
  }

  const topLevel = (field: string): string | undefined =>
    columns.includes(field) ? field : columns.find((column) => column === field.split('.')[0]);
  const textColumn = topLevel(opts.fields.text);
  if (textColumn === undefined) {
    yield {
      kind: 'quarantine',
      reason: 'missing_text',
      detail:
        `${input.path} has no column '${opts.fields.text}' for the text (fields.text); its columns are ` +
        `${columns.map((c) => `'${c}'`).join(', ')}. Set fields.text to the column that holds the text`,
    };
    return;
  }
  const wanted = [opts.fields.id, opts.fields.created, ...(opts.fields.metadata ?? ['metadata'])];
  const read = [...new Set([textColumn, ...wanted.map(topLevel).filter((c): c is string => c !== undefined)])];

  let groupStart = 0;
  const only = opts.rowGroups ?? { start: 0, end: metadata.row_groups.length };
  for (const [index, group] of metadata.row_groups.entries()) {
    const groupRows = Number(group.num_rows);
    const rowStart = groupStart;
    groupStart += groupRows;
    if (index < only.start || index >= only.end) continue;
    const chunks = group.columns.filter((chunk) => read.includes(chunk.meta_data?.path_in_schema[0] ?? ''));
    const span = byteSpan(chunks);
    const where = `row group ${index} (rows ${rowStart}-${rowStart + groupRows - 1}, bytes ${span.start}-${span.end})`;
    const ratio = span.uncompressed / Math.max(span.end - span.start, 1);
    if (ratio > opts.maxExpansionRatio) {
      yield {
        kind: 'quarantine',
        position: { rowGroup: index },
        reason: 'expansion_ratio',
        detail:
          `${where} declares ${span.uncompressed} bytes uncompressed, ${ratio.toFixed(0)}× its compressed size ` +
          `(maxExpansionRatio ${opts.maxExpansionRatio}); not read. Raise maxExpansionRatio if it is genuine`,
      };
      continue;
    }
    let rows: Record<string, unknown>[];
    try {
      rows = await parquetReadObjects({
        file,
        metadata,
        columns: read,
        rowStart,
        rowEnd: rowStart + groupRows,
        compressors,
      });
    } catch (err) {
      yield {
        kind: 'quarantine',
        position: { rowGroup: index },
        reason: 'corrupt_parquet',
        detail: `${where} does not decode (${(err as Error).message}); its rows are skipped, the others are read`,
      };
      continue;
    }
    for (const [i, row] of rows.entries()) {
      const position = { rowGroup: index, row: rowStart + i };
      const base = { path: input.path, row: position.row, rowGroup: index, format: 'parquet' };
      const record = recordFromJson(jsonSafe(row), opts.fields, undefined, base, false);
      if (record.kind === 'quarantine') record.detail = record.detail.replace(/^the record/, `row ${position.row}`);
      yield { ...record, position };
    }
  }
}

/** The compressed bytes of each row group's column chunks, from the file's footer (for splitting a file into units). */
export async function parquetRowGroupBytes(bytes: RandomAccessBytes): Promise<number[]> {
  const metadata = await parquetMetadataAsync(asyncBufferOf(bytes));
  return metadata.row_groups.map((group) => {
    const span = byteSpan(group.columns);
    return span.end - span.start;
  });
}

/**
 * hyparquet's file interface over our positional reads; it wants an ArrayBuffer of exactly the bytes asked for. A
 * corrupt footer can name offsets that are no byte of the file: refused at once. hyparquet starts the reads of a row
 * group together and may drop some when one fails, so each read's failure is marked handled here (whoever awaits it
 * still gets it) instead of surfacing as an unhandled rejection.
 */
function asyncBufferOf(bytes: RandomAccessBytes): AsyncBuffer {
  return {
    byteLength: bytes.byteLength,
    slice: (start, end = bytes.byteLength) => {
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
        throw new Error(`bytes ${start}-${end} are not a range of the file (${bytes.byteLength} bytes)`);
      }
      const read = bytes
        .read(start, end)
        .then((buf) => buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length) as ArrayBuffer);
      read.catch(() => undefined);
      return read;
    },
  };
}

/** Where the footer's metadata starts, from the length stored before the trailing magic, if that is readable. */
async function footerStart(bytes: RandomAccessBytes): Promise<number | undefined> {
  if (bytes.byteLength < 12) return undefined;
  try {
    const tail = await bytes.read(bytes.byteLength - 8, bytes.byteLength);
    const start = bytes.byteLength - 8 - tail.readUInt32LE(0);
    return start >= 4 ? start : undefined;
  } catch {
    return undefined;
  }
}

/** The bytes the column chunks of a row group occupy, and what they declare uncompressed. */
function byteSpan(chunks: RowGroup['columns']): { start: number; end: number; uncompressed: number } {
  let start = Infinity;
  let end = 0;
  let uncompressed = 0;
  for (const chunk of chunks) {
    const meta = chunk.meta_data;
    if (meta === undefined) continue;
    const first = Number(meta.dictionary_page_offset ?? meta.data_page_offset);
    start = Math.min(start, first);
    end = Math.max(end, first + Number(meta.total_compressed_size));
    uncompressed += Number(meta.total_uncompressed_size);
  }
  return { start: Number.isFinite(start) ? start : 0, end, uncompressed };
}

/**
 * Column values as JSON can carry them: 64-bit integers as numbers (as strings past 2^53), timestamps as ISO text,
 * binary as base64. Metadata travels as JSON downstream.
 */
function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') {
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
      ? Number(value)
      : value.toString();
  }
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(jsonSafe);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonSafe(v)]));
  }
  return value;
}
