import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { S3Client } from '@aws-sdk/client-s3';
import { currentUsage } from '../cost/usage';
import { InvalidObjectKey, InvalidTierUri, StorageError } from './errors';
import { FsStore } from './fs-store';
import {
  validateKey,
  validatePrefix,
  type GetOptions,
  type ListEntry,
  type ListOptions,
  type ObjectStore,
  type PutBody,
  type PutOptions,
} from './object-store';
import { createS3Client, S3Store, type S3ClientOptions } from './s3-store';

export const TIERS = ['hot', 'warm', 'cold'] as const;
export type Tier = (typeof TIERS)[number];

export interface TierLocation {
  tier: Tier;
  key: string;
}

const TIER_URI = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/(.*)$/s;

function splitTierUri(uri: string): { tier: Tier; rest: string } {
  if (typeof uri !== 'string') throw new InvalidTierUri(String(uri), 'not a string');
  const match = TIER_URI.exec(uri);
  if (!match) throw new InvalidTierUri(uri, "missing '<tier>://'");
  const tier = match[1];
  if (!(TIERS as readonly string[]).includes(tier)) throw new InvalidTierUri(uri, `unknown tier '${tier}'`);
  return { tier: tier as Tier, rest: match[2] };
}

function rethrowAsTierError(uri: string, err: unknown): never {
  if (err instanceof InvalidObjectKey) throw new InvalidTierUri(uri, err.message.replace(/\. Keys are .*$/s, ''));
  throw err;
}

/** 'warm://datasets/x/y' → { tier: 'warm', key: 'datasets/x/y' }; throws InvalidTierUri on anything else. */
export function parseTierUri(uri: string): TierLocation {
  const { tier, rest } = splitTierUri(uri);
  try {
    return { tier, key: validateKey(rest) };
  } catch (err) {
    rethrowAsTierError(uri, err);
  }
}

/** Like parseTierUri, for listing: 'warm://' and 'warm://datasets/' are prefixes too. */
export function parseTierPrefix(uri: string): TierLocation {
  const { tier, rest } = splitTierUri(uri);
  try {
    return { tier, key: validatePrefix(rest) };
  } catch (err) {
    rethrowAsTierError(uri, err);
  }
}

export function tierUri(tier: Tier, key: string): string {
  return `${tier}://${key}`;
}

export function isTierUri(uri: string): boolean {
  try {
    parseTierUri(uri);
    return true;
  } catch {
    return false;
  }
}

export interface TieredPutResult {
  uri: string;
  bytes: number;
  sha256: string;
}

export interface TieredObjectInfo {
  uri: string;
  bytes: number;
  modified: Date;
  sha256?: string;
}

export interface TieredListEntry {
  uri: string;
  bytes: number;
  modified: Date;
}

export interface TieredListPage {
  entries: TieredListEntry[];
  cursor?: string;
}

/** hot, warm and cold stores behind one API addressed by tier URIs ('warm://datasets/...'). */
export class TieredStore {
  private readonly stores: Record<Tier, ObjectStore>;

  constructor(stores: Record<Tier, ObjectStore>) {
    this.stores = { ...stores };
  }

  tier(tier: Tier): ObjectStore {
    return this.stores[tier];
  }

  /** The backend URI behind a tier URI (e.g. 's3://bucket/prefix/datasets/x'), for messages and logs. */
  backendUri(uri: string): string {
    const { tier, key } = parseTierUri(uri);
    return this.stores[tier].uri(key);
  }

  async put(uri: string, body: PutBody, opts?: PutOptions): Promise<TieredPutResult> {
    const { tier, key } = parseTierUri(uri);
    const res = await this.stores[tier].put(key, body, opts);
    currentUsage()?.written(tier, res.bytes);
    return { uri, bytes: res.bytes, sha256: res.sha256 };
  }

  async get(uri: string, opts?: GetOptions): Promise<Readable> {
    const { tier, key } = parseTierUri(uri);
    return countRead(tier, await this.stores[tier].get(key, opts));
  }

  async getBytes(uri: string): Promise<Buffer> {
    const { tier, key } = parseTierUri(uri);
    const bytes = await this.stores[tier].getBytes(key);
    currentUsage()?.read(tier, bytes.length);
    return bytes;
  }

  async head(uri: string): Promise<TieredObjectInfo> {
    const { tier, key } = parseTierUri(uri);
    const info = await this.stores[tier].head(key);
    return {
      uri,
      bytes: info.bytes,
      modified: info.modified,
      ...(info.sha256 === undefined ? {} : { sha256: info.sha256 }),
    };
  }

  async exists(uri: string): Promise<boolean> {
    const { tier, key } = parseTierUri(uri);
    return this.stores[tier].exists(key);
  }

  async delete(uri: string): Promise<void> {
    const { tier, key } = parseTierUri(uri);
    return this.stores[tier].delete(key);
  }

  async list(prefixUri: string, opts?: ListOptions): Promise<TieredListPage> {
    const { tier, key } = parseTierPrefix(prefixUri);
    const page = await this.stores[tier].list(key, opts);
    const entries = page.entries.map((e) => toTieredEntry(tier, e));
    return page.cursor === undefined ? { entries } : { entries, cursor: page.cursor };
  }

  async *listAll(prefixUri: string): AsyncGenerator<TieredListEntry> {
    const { tier, key } = parseTierPrefix(prefixUri);
    for await (const entry of this.stores[tier].listAll(key)) yield toTieredEntry(tier, entry);
  }

  /** Server-side copy within one store; across stores the bytes are streamed, never buffered whole. */
  async copy(fromUri: string, toUri: string): Promise<void> {
    const from = parseTierUri(fromUri);
    const to = parseTierUri(toUri);
    const source = this.stores[from.tier];
    const target = this.stores[to.tier];
    if (source === target) {
      await source.copy(from.key, to.key);
      // A server-side copy moves no bytes through the worker, but the target holds (and is billed for) them.
      const usage = currentUsage();
      const copied = usage ? await target.head(to.key).catch(() => undefined) : undefined;
      if (usage && copied) usage.written(to.tier, copied.bytes);
      return;
    }
    const stream = await source.get(from.key);
    try {
      const res = await target.put(to.key, countRead(from.tier, stream));
      currentUsage()?.written(to.tier, res.bytes);
    } finally {
      stream.destroy(); // a failed put must not leave the source socket or file open
    }
  }
}

/** Inside a metered activity, the bytes a reader actually takes from `stream` count as read from `tier`. */
function countRead(tier: Tier, stream: Readable): Readable {
  const usage = currentUsage();
  if (!usage) return stream;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      usage.read(tier, chunk.length);
      done(null, chunk);
    },
  });
  stream.on('error', (err) => counter.destroy(err));
  counter.on('close', () => stream.destroy()); // a reader that stops early must not leave the file or socket open
  return stream.pipe(counter);
}

function toTieredEntry(tier: Tier, entry: ListEntry): TieredListEntry {
  return { uri: tierUri(tier, entry.key), bytes: entry.bytes, modified: entry.modified };
}

export type S3Options = S3ClientOptions;

/**
 * A tier location from configuration: a folder path or file:// URL → FsStore (the folder is created),
 * 's3://bucket/prefix' → S3Store. Pass an S3Client to share one connection pool between tiers.
 */
export function storeFromLocation(location: string, s3?: S3Options | S3Client): ObjectStore {
  if (location.startsWith('s3://')) {
    const match = /^s3:\/\/([^/]+)\/?(.*)$/.exec(location);
    if (!match || match[1] === '') {
      throw new StorageError(
        'InvalidStoreLocation',
        location,
        `Invalid S3 location ${JSON.stringify(location)}: expected s3://bucket or s3://bucket/prefix.`,
        false,
      );
    }
    if (s3 === undefined) {
      throw new StorageError(
        'InvalidStoreLocation',
        location,
        `No S3 settings for ${location}: configure the S3 endpoint, region and credentials for S3 tiers.`,
        false,
      );
    }
    const client = s3 instanceof S3Client ? s3 : createS3Client(s3);
    return new S3Store({ bucket: match[1], prefix: match[2], client });
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(location) && !location.startsWith('file://')) {
    throw new StorageError(
      'InvalidStoreLocation',
      location,
      `Unsupported store location ${JSON.stringify(location)}: use a folder path, file:///abs/path or s3://bucket/prefix.`,
      false,
    );
  }
  const dir = location.startsWith('file://') ? fileURLToPath(location) : resolve(location);
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new StorageError(
      'InvalidStoreLocation',
      dir,
      `Cannot create the store folder ${dir} (${message}). Choose a writable folder for this tier.`,
      false,
      { cause: err },
    );
  }
  return new FsStore(dir);
}
