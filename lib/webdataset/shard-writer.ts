import { PassThrough } from 'node:stream';
import { TAR_END, tarHeader, tarPadding } from './tar';
import type { TieredStore } from '../storage/tiered-store';
import { encodeNpy, type TokenDtype } from './npy';

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
    body: PassThrough;
    /** Small pieces gathered into ~1 MiB writes: each stream hop costs per chunk, not per byte. */
    pending: Buffer[];
    pendingBytes: number;
    done: Promise<{ sha256: string; bytes: number }>;
    uri: string;
    samples: number;
    tokens: number;
    bytes: number;
  };
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
    const npy = encodeNpy(sample.tokens, this.dtype);
    const parts = [
      tarHeader(`${sample.key}.json`, json.length, FIXED_MTIME),
      json,
      tarPadding(json.length),
      tarHeader(`${sample.key}.tokens.npy`, npy.length, FIXED_MTIME),
      npy,
      tarPadding(npy.length),
    ];
    for (const part of parts) {
      shard.pending.push(part);
      shard.pendingBytes += part.length;
    }
    if (shard.pendingBytes >= WRITE_BYTES) await flush(shard);
    shard.samples += 1;
    shard.tokens += sample.tokens.length;
    shard.bytes += tarEntryBytes(json.length) + tarEntryBytes(npy.length);
    if (shard.bytes >= this.targetBytes) await this.close();
  }

  /** Closes the last shard; returns every shard written, in order. */
  async finish(): Promise<WrittenShard[]> {
    await this.close();
    return this.written;
  }

  private open() {
    const uri = `${this.uriPrefix}-${String(this.index++).padStart(6, '0')}.tar`;
    const body = new PassThrough({ highWaterMark: 4 * 1024 * 1024 });
    const done = this.store.put(uri, body, { contentType: 'application/x-tar' });
    // Surface upload failures on close, but never as an unhandled rejection meanwhile.
    done.catch(() => undefined);
    this.current = { body, pending: [], pendingBytes: 0, done, uri, samples: 0, tokens: 0, bytes: 0 };
    return this.current;
  }

  private async close(): Promise<void> {
    const shard = this.current;
    if (!shard) return;
    this.current = undefined;
    await flush(shard);
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

/** Bytes an entry takes in a tar: a 512-byte header, then the data padded to 512. */
export function tarEntryBytes(dataBytes: number): number {
  return 512 + Math.ceil(dataBytes / 512) * 512;
}

const WRITE_BYTES = 1024 * 1024;

/** Writes what was gathered as one buffer, waiting while the upload is behind: memory stays bounded. */
async function flush(shard: { body: PassThrough; pending: Buffer[]; pendingBytes: number }): Promise<void> {
  if (shard.pendingBytes === 0) return;
  const data = Buffer.concat(shard.pending, shard.pendingBytes);
  shard.pending = [];
  shard.pendingBytes = 0;
  if (!shard.body.write(data)) await new Promise((resolve) => shard.body.once('drain', resolve));
}
