import { PassThrough } from 'node:stream';
import { partitionGzip } from '../document/jsonl-partition';
import type { ArtifactRef } from '../storage/manifest';
import type { TieredStore } from '../storage/tiered-store';

/** Bytes of lines gathered before they go to gzip together. */
const FLUSH_BYTES = 256 * 1024;

/**
 * Writes records as a sequence of gzip JSON-lines partitions of bounded size (`part-000000.jsonl.gz`, ...), streaming
 * each to the store as it fills: memory stays flat whatever the input size.
 */
export class PartitionWriter {
  private current?: {
    gzip: ReturnType<typeof partitionGzip>;
    done: Promise<{ sha256: string; bytes: number }>;
    uri: string;
    records: number;
    rawBytes: number;
    /** Lines not yet handed to gzip: written in chunks, as a write per line costs more than compressing it. */
    pending: string[];
    pendingBytes: number;
  };
  private readonly written: (ArtifactRef & { records: number })[] = [];
  private index = 0;
  records = 0;

  constructor(
    private readonly store: TieredStore,
    /** e.g. `warm://pipelines/x/collect/batch-000000/part` */
    private readonly uriPrefix: string,
    private readonly limits: { maxRecords: number; maxBytes: number },
    /** Partitions an earlier attempt wrote and closed: kept as they are, the next one is numbered after them. */
    resumeFrom: readonly (ArtifactRef & { records: number })[] = [],
  ) {
    this.written.push(...resumeFrom);
    this.index = resumeFrom.length;
    this.records = resumeFrom.reduce((n, p) => n + p.records, 0);
  }

  /** True when the last write closed a partition: nothing is buffered, everything written so far is stored. */
  get atBoundary(): boolean {
    return this.current === undefined;
  }

  /** The partitions closed so far (stored, with their sha256). */
  get closed(): readonly (ArtifactRef & { records: number })[] {
    return this.written;
  }

  async write(record: unknown): Promise<void> {
    await this.writeJson(JSON.stringify(record));
  }

  /** Writes a record given as its JSON on one line (as JSON.stringify gives it, or as a partition's line holds it). */
  async writeJson(json: string): Promise<void> {
    const part = this.current ?? this.open();
    const line = json + '\n';
    const bytes = Buffer.byteLength(line);
    part.pending.push(line);
    part.pendingBytes += bytes;
    if (part.pendingBytes >= FLUSH_BYTES) await this.flush(part);
    part.records += 1;
    part.rawBytes += bytes;
    this.records += 1;
    if (part.records >= this.limits.maxRecords || part.rawBytes >= this.limits.maxBytes) await this.close();
  }

  /** Hands the lines gathered so far to gzip in one write. */
  private async flush(part: NonNullable<PartitionWriter['current']>): Promise<void> {
    if (part.pending.length === 0) return;
    const chunk = part.pending.join('');
    part.pending = [];
    part.pendingBytes = 0;
    // A failed upload never drains: wait for whichever comes first, so its error surfaces here.
    if (!part.gzip.write(chunk)) await Promise.race([new Promise((r) => part.gzip.once('drain', r)), part.done]);
  }

  /** Closes the open partition now (a cut both writers of a stage make together, see stageWriters). */
  async cut(): Promise<void> {
    await this.close();
  }

  /** Closes the open partition; returns every partition written, in order (none if nothing was written). */
  async finish(): Promise<(ArtifactRef & { records: number })[]> {
    await this.close();
    return this.written;
  }

  private open() {
    const uri = `${this.uriPrefix}-${String(this.index++).padStart(6, '0')}.jsonl.gz`;
    const gzip = partitionGzip();
    const body = new PassThrough();
    gzip.pipe(body);
    const done = this.store.put(uri, body, { contentType: 'application/gzip' });
    done.catch(() => undefined);
    this.current = { gzip, done, uri, records: 0, rawBytes: 0, pending: [], pendingBytes: 0 };
    return this.current;
  }

  private async close(): Promise<void> {
    const part = this.current;
    if (!part) return;
    this.current = undefined;
    await this.flush(part);
    part.gzip.end();
    const put = await part.done;
    this.written.push({ uri: part.uri, sha256: put.sha256, bytes: put.bytes, records: part.records });
  }
}
