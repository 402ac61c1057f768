import { Readable } from 'node:stream';
import { pad } from '../common';
import { TAR_END, writeTarHeader } from './tar';
import type { TieredStore } from '../storage/tiered-store';
import { npyBytes, writeNpy, type TokenDtype } from './npy';

/** Fixed for reproducible tars: the same input gives byte-identical shards (2000-01-01T00:00:00Z). */
const FIXED_MTIME = new Date(Date.UTC(2000, 0, 1));

export interface ShardSample {
  /** WebDataset key: no dots (the first dot of a basename starts the field name). */
  key: string;
  json: Record<string, unknown>;
  tokens: Uint32Array;
}

export interface WrittenShard {
  uri: string;
  sha256: string;
  bytes: number;
  samples: number;
  tokens: number;
}

/**
 * Writes WebDataset tar shards (`<prefix>-000000.tar`, ...) to a tier: each sample is `<key>.json` followed by
 * `<key>.tokens.npy`, adjacent, in input order; a shard closes once it reaches the target size. Entries carry a fixed
 * mtime, owner and mode, so the bytes depend only on the samples.
 */
export class ShardWriter {
  private current?: {
    body: SlabSource;
    done: Promise<{ sha256: string; bytes: number }>;
    uri: string;
    samples: number;
    tokens: number;
    bytes: number;
  };
  /**
   * Entries are encoded straight into a 1 MiB slab that goes to the upload whole when full: one copy of the tokens,
   * no per-entry buffers to collect, and each stream hop costs per MiB, not per entry.
   */
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private used = 0;
  private readonly written: WrittenShard[] = [];
  private index: number;

  constructor(
    private readonly store: TieredStore,
    /** e.g. `warm://datasets/demo/v1/train/shard` → `.../train/shard-000000.tar` */
    private readonly uriPrefix: string,
    private readonly dtype: TokenDtype,
    private readonly targetBytes: number,
    /** Number of the first shard this writer writes (a planned shard written on its own). */
    firstIndex = 0,
  ) {
    this.index = firstIndex;
  }

  async add(sample: ShardSample): Promise<void> {
    if (sample.key.includes('.') || sample.key.includes('/')) {
      throw new Error(`WebDataset key ${JSON.stringify(sample.key)} must not contain '.' or '/'`);
    }
    const shard = this.current ?? this.open();
    const json = Buffer.from(JSON.stringify(sample.json));
    const npyLength = npyBytes(sample.tokens.length, this.dtype);
    const entries = tarEntryBytes(json.length) + tarEntryBytes(npyLength);
    if (this.used + entries > this.slab.length) await this.flush(shard);
    // A sample larger than a slab gets a slab of its own size.
    if (entries > this.slab.length) this.slab = Buffer.allocUnsafe(entries);
    let at = this.used;
    writeTarHeader(this.slab, at, `${sample.key}.json`, json.length, FIXED_MTIME);
    at += BLOCK;
    json.copy(this.slab, at);
    at = zeroPad(this.slab, at + json.length);
    writeTarHeader(this.slab, at, `${sample.key}.tokens.npy`, npyLength, FIXED_MTIME);
    at += BLOCK;
    writeNpy(this.slab, at, sample.tokens, this.dtype);
    at = zeroPad(this.slab, at + npyLength);
    this.used = at;
    shard.samples += 1;
    shard.tokens += sample.tokens.length;
    shard.bytes += entries;
    if (shard.bytes >= this.targetBytes) await this.close();
  }

  /** Closes the last shard; returns every shard written, in order. */
  async finish(): Promise<WrittenShard[]> {
    await this.close();
    return this.written;
  }

  private open() {
    const uri = `${this.uriPrefix}-${pad(this.index++)}.tar`;
    const body = new SlabSource(4);
    const done = this.store.put(uri, body, { contentType: 'application/x-tar' });
    // Surface upload failures on close, but never as an unhandled rejection meanwhile.
    done.catch(() => undefined);
    this.current = { body, done, uri, samples: 0, tokens: 0, bytes: 0 };
    return this.current;
  }

  /** Hands the filled part of the slab to the upload and starts a new slab, waiting while the upload is behind. */
  private async flush({ body, done }: { body: SlabSource; done: Promise<unknown> }): Promise<void> {
    if (this.used === 0) return;
    const data = this.slab.subarray(0, this.used);
    this.slab = Buffer.allocUnsafe(SLAB_BYTES);
    this.used = 0;
    await body.send(data, done);
  }

  private async close(): Promise<void> {
    const shard = this.current;
    if (!shard) return;
    this.current = undefined;
    await this.flush(shard);
    shard.body.end(TAR_END);
    const put = await shard.done;
    this.written.push({
      uri: shard.uri,
      sha256: put.sha256,
      bytes: put.bytes,
      samples: shard.samples,
      tokens: shard.tokens,
    });
  }
}

const BLOCK = 512;
const SLAB_BYTES = 1024 * 1024;

/** Bytes an entry takes in a tar: a 512-byte header, then the data padded to 512. */
export function tarEntryBytes(dataBytes: number): number {
  return BLOCK + Math.ceil(dataBytes / BLOCK) * BLOCK;
}

/** Zeroes `buf` from `end` to the next block boundary; returns that boundary. */
function zeroPad(buf: Buffer, end: number): number {
  const next = Math.ceil(end / BLOCK) * BLOCK;
  buf.fill(0, end, next);
  return next;
}

/**
 * The upload's body, fed a slab at a time. A Readable rather than a PassThrough on purpose: a writable side wakes its
 * producer ('drain') only once its buffer is empty, so encoding and uploading took turns; a readable side asks for
 * more (`_read`) as soon as its buffer drops below the mark, so the next slab is encoded while earlier ones upload.
 */
class SlabSource extends Readable {
  private wake: (() => void) | undefined;

  /** Object mode, so a reader gets one slab per read: in byte mode `read()` joins all buffered slabs into a copy. */
  constructor(slabs: number) {
    super({ objectMode: true, highWaterMark: slabs });
  }

  override _read(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** Queues a slab; waits while the buffer is full. A failed upload never reads again, so `done` ends the wait. */
  async send(slab: Buffer, done: Promise<unknown>): Promise<void> {
    if (this.push(slab)) return;
    await Promise.race([new Promise<void>((resolve) => (this.wake = resolve)), done]);
  }

  end(last: Buffer): void {
    this.push(last);
    this.push(null);
  }
}
