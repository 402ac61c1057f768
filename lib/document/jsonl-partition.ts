import { createGunzip, createGzip, type Gunzip, type Gzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { splitLines } from '../collect/bytes';

/**
 * The gzip level of every partition. Each stage rewrites its documents, so compression runs once per stage over the
 * whole corpus: at level 6 it was slower than tokenizing (documents 29 MB/s, token records 17.5 MB/s of text on one
 * core here); level 1 writes them at 90 and 84 MB/s for 12% more bytes (0.438 of raw against 0.391 for documents).
 * Partitions are intermediates that the storage lifecycle removes; datasets' shards are not compressed by this.
 */
const PARTITION_GZIP_LEVEL = 1;
/**
 * zlib's chunk for partitions, in and out. At its 16 KiB default, each chunk's way through the streams (the sha256
 * pass, the file write, line splitting) cost more than compressing it: 256 KiB chunks took writing a partition from
 * 43 to 54 MB/s and reading one from 100 to 234 MB/s here. The bytes written do not change.
 */
const PARTITION_CHUNK_BYTES = 256 * 1024;

/** The compressor every partition is written through. */
export function partitionGzip(): Gzip {
  return createGzip({ level: PARTITION_GZIP_LEVEL, chunkSize: PARTITION_CHUNK_BYTES });
}

/** The decompressor every partition is read through. */
export function partitionGunzip(): Gunzip {
  return createGunzip({ chunkSize: PARTITION_CHUNK_BYTES });
}

/**
 * Partitions are gzip-compressed JSON lines: one record per line, appendable, streamable, readable by any tool
 * (`zcat part-000000.jsonl.gz | jq`).
 */
export function encodeJsonlGz(records: AsyncIterable<unknown> | Iterable<unknown>): Readable {
  const lines = Readable.from(
    (async function* () {
      for await (const record of records) yield JSON.stringify(record) + '\n';
    })(),
  );
  return lines.pipe(partitionGzip());
}

/**
 * Streams the lines of a .jsonl.gz partition, each one record's JSON: a stage that passes records on unchanged writes
 * these back as they are (JSON.stringify of the parsed record gives the same line).
 */
export async function* decodeJsonlGzLines(stream: Readable): AsyncGenerator<string> {
  const gunzip = partitionGunzip();
  // pipe() passes no error on: a checksum mismatch found by openVerified's stream must fail the reader, not leave it
  // waiting for the end of a stream that has stopped.
  stream.once('error', (err) => gunzip.destroy(err));
  // Lines cut from the decompressed bytes, each decoded once: readline decoded the stream and scanned it again.
  for await (const line of splitLines(stream.pipe(gunzip), Infinity)) {
    if (line.bytes.length > 0) yield line.bytes.toString();
  }
}

/** Streams the records of a .jsonl.gz partition. */
export async function* decodeJsonlGz<T = unknown>(stream: Readable): AsyncGenerator<T> {
  for await (const line of decodeJsonlGzLines(stream)) yield JSON.parse(line) as T;
}
