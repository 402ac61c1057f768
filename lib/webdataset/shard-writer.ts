import { PassThrough } from 'node:stream';
import { pack, type Pack } from 'tar-stream';
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
    pack: Pack;
    done: Promise<{ sha256: string; bytes: number }>;
    uri: string;
    samples: number;
    tokens: number;
    bytes: number;
  };
  private readonly written: WrittenShard[] = [];
  private index = 0;

  constructor(
    private readonly store: TieredStore,
    /** e.g. `warm://datasets/demo/v1/train/shard` → `.../train/shard-000000.tar` */
    private readonly uriPrefix: string,
    private readonly dtype: TokenDtype,
    private readonly targetBytes: number,
  ) {}

  async add(sample: ShardSample): Promise<void> {
    if (sample.key.includes('.') || sample.key.includes('/')) {
      throw new Error(`WebDataset key ${JSON.stringify(sample.key)} must not contain '.' or '/'`);
    }
    const shard = this.current ?? this.open();
    const json = Buffer.from(JSON.stringify(sample.json));
    const npy = encodeNpy(sample.tokens, this.dtype);
    await entry(shard.pack, `${sample.key}.json`, json);
    await entry(shard.pack, `${sample.key}.tokens.npy`, npy);
    shard.samples += 1;
    shard.tokens += sample.tokens.length;
    // Tar framing: 512-byte header per entry, data padded to 512.
    shard.bytes += 1024 + pad512(json.length) + pad512(npy.length);
    if (shard.bytes >= this.targetBytes) await this.close();
  }

  /** Closes the last shard; returns every shard written, in order. */
  async finish(): Promise<WrittenShard[]> {
    await this.close();
    return this.written;
  }

  private open() {
    const uri = `${this.uriPrefix}-${String(this.index++).padStart(6, '0')}.tar`;
    const tar = pack();
    const body = new PassThrough();
    tar.pipe(body);
    const done = this.store.put(uri, body, { contentType: 'application/x-tar' });
    // Surface upload failures on close, but never as an unhandled rejection meanwhile.
    done.catch(() => undefined);
    this.current = { pack: tar, done, uri, samples: 0, tokens: 0, bytes: 0 };
    return this.current;
  }

  private async close(): Promise<void> {
    const shard = this.current;
    if (!shard) return;
    this.current = undefined;
    shard.pack.finalize();
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

function pad512(n: number): number {
  return Math.ceil(n / 512) * 512;
}

function entry(tar: Pack, name: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    tar.entry(
      { name, size: data.length, mtime: FIXED_MTIME, mode: 0o644, uid: 0, gid: 0, uname: '', gname: '', type: 'file' },
      data,
      (err) => (err ? reject(err) : resolve()),
    );
  });
}
