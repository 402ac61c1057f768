import { Readable } from 'node:stream';
import { InvalidObjectKey, PermanentStorageError } from './errors';

/** Anything a caller can hand to `put`; streams are hashed while they are written, never re-read. */
export type PutBody = Buffer | string | Readable | AsyncIterable<Uint8Array>;

export interface PutOptions {
  contentType?: string;
}

export interface PutResult {
  key: string;
  bytes: number;
  sha256: string;
}

/** Inclusive byte range, as in HTTP `Range: bytes=start-end`; `end` omitted reads to the end of the object. */
export interface ByteRange {
  start: number;
  end?: number;
}

export interface GetOptions {
  range?: ByteRange;
}

export interface ObjectInfo {
  key: string;
  bytes: number;
  modified: Date;
  /** Present when the backend stored it at write time (S3 metadata); the filesystem backend does not. */
  sha256?: string;
}

export interface ListEntry {
  key: string;
  bytes: number;
  modified: Date;
}

export interface ListOptions {
  /** Opaque cursor from the previous page. */
  cursor?: string;
  /** Page size, 1..1000 (default 1000). */
  limit?: number;
}

export interface ListPage {
  /** Keys in lexicographic (UTF-8 byte) order. */
  entries: ListEntry[];
  /** Set when more entries follow; pass it back to get the next page. */
  cursor?: string;
}

/** One object store: a local folder or an S3 bucket/prefix. Keys are relative '/'-separated paths. */
export interface ObjectStore {
  /** Where this store lives, e.g. 'file:///data/hot' or 's3://bucket/prefix'. */
  readonly name: string;
  put(key: string, body: PutBody, opts?: PutOptions): Promise<PutResult>;
  get(key: string, opts?: GetOptions): Promise<Readable>;
  getBytes(key: string): Promise<Buffer>;
  head(key: string): Promise<ObjectInfo>;
  list(prefix: string, opts?: ListOptions): Promise<ListPage>;
  listAll(prefix: string): AsyncIterable<ListEntry>;
  exists(key: string): Promise<boolean>;
  /** Idempotent: deleting a missing object succeeds. */
  delete(key: string): Promise<void>;
  copy(fromKey: string, toKey: string): Promise<void>;
  /** The backend URI of a key, for messages. */
  uri(key: string): string;
}

export const DEFAULT_LIST_LIMIT = 1000;
const MAX_KEY_BYTES = 1024; // S3's limit; enforced everywhere so a key valid on disk is valid in a bucket

/** Throws InvalidObjectKey unless `key` is a safe relative path: no '..', '.', empty segments, NUL or '\'. */
export function validateKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidObjectKey(String(key), 'the key is empty');
  checkPath(key, key, false);
  return key;
}

/** Like validateKey, but '' (everything) and a trailing '/' are allowed, and the last segment may be partial. */
export function validatePrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw new InvalidObjectKey(String(prefix), 'the prefix is not a string');
  if (prefix.length === 0) return prefix;
  checkPath(prefix, prefix.endsWith('/') ? prefix.slice(0, -1) : prefix, true);
  return prefix;
}

function checkPath(original: string, path: string, isPrefix: boolean): void {
  const what = isPrefix ? 'prefix' : 'key';
  if (original.includes('\0')) throw new InvalidObjectKey(original, `the ${what} contains a NUL character`);
  if (original.includes('\\')) throw new InvalidObjectKey(original, `the ${what} contains '\\'; use '/' to separate`);
  if (original.startsWith('/')) throw new InvalidObjectKey(original, `the ${what} is absolute (starts with '/')`);
  if (Buffer.byteLength(original) > MAX_KEY_BYTES) {
    throw new InvalidObjectKey(original, `the ${what} is longer than ${MAX_KEY_BYTES} bytes`);
  }
  for (const segment of path.split('/')) {
    if (segment === '')
      throw new InvalidObjectKey(original, `the ${what} has an empty path segment ('//' or a trailing '/')`);
    if (segment === '.' || segment === '..') {
      throw new InvalidObjectKey(original, `the ${what} has a '${segment}' segment`);
    }
  }
}

export function validateRange(uri: string, range: ByteRange | undefined): void {
  if (range === undefined) return;
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || start < 0 || (end !== undefined && (!Number.isSafeInteger(end) || end < start))) {
    throw new PermanentStorageError(uri, `invalid byte range ${JSON.stringify(range)}; need 0 <= start <= end`);
  }
}

export function validateListLimit(uri: string, limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > DEFAULT_LIST_LIMIT) {
    throw new PermanentStorageError(uri, `invalid list limit ${limit}; use an integer from 1 to ${DEFAULT_LIST_LIMIT}`);
  }
  return limit;
}

/** Every body shape as a byte stream (non-object mode, so chunk sizes stay honest). */
export function toReadable(body: PutBody): Readable {
  if (Buffer.isBuffer(body)) return Readable.from([body], { objectMode: false });
  if (typeof body === 'string') return Readable.from([Buffer.from(body)], { objectMode: false });
  if (body instanceof Readable) return body;
  return Readable.from(body, { objectMode: false });
}

export interface GuardedBody {
  stream: Readable;
  /** Set once the caller's body itself failed (not when a store aborted reading it). */
  failure: { error: unknown } | undefined;
}

/**
 * Wraps a put body so a store can tell the caller's own stream failing (rethrown unchanged: it is not a storage
 * problem) from the store failing, which also tears the body down but only through `return`, never `throw`.
 */
export function guardBody(body: PutBody): GuardedBody {
  const guarded: GuardedBody = { stream: Readable.from([]), failure: undefined };
  const source = toReadable(body);
  async function* relay(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of source) yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    } catch (error) {
      guarded.failure = { error };
      throw error;
    }
  }
  guarded.stream = Readable.from(relay(), { objectMode: false });
  return guarded;
}

export async function readAll(stream: AsyncIterable<Uint8Array | string>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Walks every page of `store.list(prefix)`; backends share it so pagination is tested once. */
export async function* listEveryPage(store: ObjectStore, prefix: string): AsyncGenerator<ListEntry> {
  let cursor: string | undefined;
  do {
    const page = await store.list(prefix, { cursor });
    yield* page.entries;
    cursor = page.cursor;
  } while (cursor !== undefined);
}

/** Orders keys the way S3 does: by UTF-8 bytes, i.e. by code point (JS `<` compares UTF-16 units instead). */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // A surrogate starts an astral code point, which sorts above U+E000..U+FFFF in UTF-8 but below in UTF-16.
    const xSurrogate = x >= 0xd800 && x <= 0xdfff;
    const ySurrogate = y >= 0xd800 && y <= 0xdfff;
    if (xSurrogate !== ySurrogate) return xSurrogate ? 1 : -1;
    return x - y;
  }
  return a.length - b.length;
}
