import { createGunzip, createGzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { createInterface } from 'node:readline';

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
  return lines.pipe(createGzip({ level: 6 }));
}

/** Streams the records of a .jsonl.gz partition. */
export async function* decodeJsonlGz<T = unknown>(stream: Readable): AsyncGenerator<T> {
  const lines = createInterface({ input: stream.pipe(createGunzip()), crlfDelay: Infinity });
  for await (const line of lines) {
    if (line.length > 0) yield JSON.parse(line) as T;
  }
}
