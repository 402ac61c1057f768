import { createHash, randomUUID } from 'node:crypto';
import { constants as fsConstants, type Dirent } from 'node:fs';
import {
  copyFile,
  lstat,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  stat,
  unlink,
  type FileHandle,
} from 'node:fs/promises';
import { basename, dirname, join, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import {
  AccessDenied,
  InvalidObjectKey,
  ObjectNotFound,
  PermanentStorageError,
  StorageError,
  TransientStorageError,
} from './errors';
import { BackgroundSha256, HashThreadFailed } from './hashing';
import {
  compareKeys,
  toReadable,
  listEveryPage,
  validateKey,
  validateListLimit,
  validatePrefix,
  validateRange,
  type GetOptions,
  type ListEntry,
  type ListOptions,
  type ListPage,
  type ObjectInfo,
  type ObjectStore,
  type PutBody,
  type PutOptions,
  type PutResult,
} from './object-store';

// In-flight writes live beside their target (same filesystem, so rename is atomic) under a name list() skips.
const TEMP_SUFFIX = '.flywheel-tmp';

/** Object store over a local directory. Writes are atomic: temp file, fsync, rename. */
export class FsStore implements ObjectStore {
  readonly name: string;
  readonly root: string;

  constructor(rootDir: string) {
    this.root = resolve(rootDir);
    this.name = pathToFileURL(this.root).href;
  }

  uri(key: string): string {
    return `${this.name}/${key}`;
  }

  async put(key: string, body: PutBody, _opts: PutOptions = {}): Promise<PutResult> {
    const target = this.pathOf(key);
    const temp = join(dirname(target), `.${basename(target)}.${randomUUID()}${TEMP_SUFFIX}`);
    const uri = this.uri(key);
    if (Buffer.isBuffer(body) || typeof body === 'string') return this.putBytes(key, target, temp, uri, body);
    try {
      await mkdir(dirname(target), { recursive: true });
      const { bytes, sha256 } = await writeHashed(temp, body);
      await rename(temp, target);
      return { key, bytes, sha256 };
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      // A write refused before it read the body (no folder, no file) still closes the caller's stream.
      if (body instanceof Readable && !body.destroyed) body.destroy();
      if (err instanceof BodyFailed) throw err.error;
      if (err instanceof HashThreadFailed) throw new TransientStorageError(uri, err.message, { cause: err });
      throw mapFsError(err, uri, 'write');
    }
  }

  /** Bytes already in memory: one hash, one write, no stream (checkpoints and manifests take this path). */
  private async putBytes(key: string, target: string, temp: string, uri: string, body: Buffer | string) {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    try {
      await mkdir(dirname(target), { recursive: true });
      const handle = await open(temp, 'wx');
      try {
        await handle.writeFile(bytes);
        await handle.sync(); // before the rename publishes it, as the streaming path does
      } finally {
        await handle.close();
      }
      await rename(temp, target);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw mapFsError(err, uri, 'write');
    }
    return { key, bytes: bytes.length, sha256 };
  }

  async get(key: string, opts: GetOptions = {}): Promise<Readable> {
    const path = this.pathOf(key);
    const uri = this.uri(key);
    validateRange(uri, opts.range);
    try {
      // Open first, then check: the object cannot vanish between the check and the read.
      const handle = await open(path, 'r');
      try {
        const info = await handle.stat();
        if (!info.isFile()) throw new ObjectNotFound(uri, 'the key is a directory, not an object');
        if (opts.range && opts.range.start >= info.size) {
          throw new PermanentStorageError(
            uri,
            `range starts at ${opts.range.start}, past the ${info.size}-byte object`,
          );
        }
      } catch (err) {
        await handle.close();
        throw err;
      }
      // 1 MiB reads: a tenth of the syscalls and chunks of the 64 KiB default, for the multi-MB objects stored here.
      return handle.createReadStream({ start: opts.range?.start, end: opts.range?.end, highWaterMark: 1 << 20 });
    } catch (err) {
      throw mapFsError(err, uri, 'read');
    }
  }

  async getBytes(key: string): Promise<Buffer> {
    try {
      // One read into one buffer of the file's size, rather than chunks joined afterwards.
      return await readFile(this.pathOf(key));
    } catch (err) {
      throw mapFsError(err, this.uri(key), 'read');
    }
  }

  async head(key: string): Promise<ObjectInfo> {
    const uri = this.uri(key);
    try {
      const info = await stat(this.pathOf(key));
      if (!info.isFile()) throw new ObjectNotFound(uri, 'the key is a directory, not an object');
      return { key, bytes: info.size, modified: info.mtime };
    } catch (err) {
      throw mapFsError(err, uri, 'read');
    }
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.head(key);
      return true;
    } catch (err) {
      if (err instanceof ObjectNotFound) return false;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const uri = this.uri(key);
    try {
      await unlink(this.pathOf(key));
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return; // nothing to delete is success
      throw mapFsError(err, uri, 'delete');
    }
  }

  async copy(fromKey: string, toKey: string): Promise<void> {
    const from = this.pathOf(fromKey);
    const target = this.pathOf(toKey);
    const temp = join(dirname(target), `.${basename(target)}.${randomUUID()}${TEMP_SUFFIX}`);
    try {
      const info = await stat(from);
      if (!info.isFile()) throw new ObjectNotFound(this.uri(fromKey), 'the key is a directory, not an object');
    } catch (err) {
      throw mapFsError(err, this.uri(fromKey), 'read');
    }
    try {
      await mkdir(dirname(target), { recursive: true });
      await copyFile(from, temp, fsConstants.COPYFILE_EXCL);
      const handle = await open(temp, 'r');
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      if (errnoCode(err) === 'ENOENT' && !(await pathExists(from))) {
        throw new ObjectNotFound(this.uri(fromKey), 'deleted while being copied');
      }
      throw mapFsError(err, this.uri(toKey), 'write');
    }
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListPage> {
    validatePrefix(prefix);
    const limit = validateListLimit(this.uri(prefix), opts.limit);
    // Walk only the deepest directory the prefix pins down; its last partial segment filters names.
    const slash = prefix.lastIndexOf('/');
    const baseKey = slash < 0 ? '' : prefix.slice(0, slash);
    const keys = (await this.walk(baseKey)).filter((k) => k.startsWith(prefix));
    keys.sort(compareKeys);
    const after = opts.cursor;
    const start = after === undefined ? 0 : keys.findIndex((k) => compareKeys(k, after) > 0);
    const entries: ListEntry[] = [];
    let index = start < 0 ? keys.length : start;
    for (; index < keys.length && entries.length < limit; index++) {
      const key = keys[index];
      try {
        const info = await lstat(join(this.root, key));
        entries.push({ key, bytes: info.size, modified: info.mtime });
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw mapFsError(err, this.uri(key), 'list');
        // Deleted since the directory was read: it is simply not part of this listing.
      }
    }
    const more = index < keys.length;
    return more && entries.length > 0 ? { entries, cursor: entries[entries.length - 1].key } : { entries };
  }

  listAll(prefix: string): AsyncIterable<ListEntry> {
    return listEveryPage(this, prefix); // list() validates the prefix on the first page
  }

  private async walk(baseKey: string): Promise<string[]> {
    const keys: string[] = [];
    const visit = async (dirKey: string): Promise<void> => {
      let dirents: Dirent[];
      try {
        dirents = await readdir(dirKey === '' ? this.root : join(this.root, dirKey), { withFileTypes: true });
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'ENOENT' || code === 'ENOTDIR') return; // an absent folder lists as empty, like an S3 prefix
        throw mapFsError(err, this.uri(dirKey), 'list');
      }
      for (const dirent of dirents) {
        const key = dirKey === '' ? dirent.name : `${dirKey}/${dirent.name}`;
        if (dirent.isDirectory()) await visit(key);
        else if (dirent.isFile() && !dirent.name.endsWith(TEMP_SUFFIX)) keys.push(key);
      }
    };
    await visit(baseKey);
    return keys;
  }

  private pathOf(key: string): string {
    validateKey(key);
    if (key.endsWith(TEMP_SUFFIX)) {
      throw new InvalidObjectKey(key, `keys ending in '${TEMP_SUFFIX}' are reserved for in-flight writes`);
    }
    const path = join(this.root, key);
    if (!path.startsWith(this.root + sep)) throw new InvalidObjectKey(key, 'the key escapes the store root');
    return path;
  }
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string'
    ? err.code
    : undefined;
}

const TRANSIENT_FS_CODES = new Set(['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'ENOSPC', 'EIO', 'ETIMEDOUT']);

function mapFsError(err: unknown, uri: string, action: 'read' | 'write' | 'delete' | 'list'): StorageError {
  if (err instanceof StorageError) return err;
  const code = errnoCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ENOENT' && action !== 'write') return new ObjectNotFound(uri, 'no such file', { cause: err });
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return new AccessDenied(uri, message, { cause: err });
  if ((code === 'ENOTDIR' || code === 'EISDIR') && action === 'read') {
    return new ObjectNotFound(uri, 'a path segment is a file or the key is a directory', { cause: err });
  }
  if (code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST') {
    return new PermanentStorageError(
      uri,
      `${message}; on a filesystem store a key cannot be both an object and a folder of other objects ` +
        "(e.g. 'a/b' and 'a/b/c'); rename one of them",
      { cause: err },
    );
  }
  if (code !== undefined && TRANSIENT_FS_CODES.has(code))
    return new TransientStorageError(uri, message, { cause: err });
  return new PermanentStorageError(uri, `${action} failed: ${message}`, { cause: err });
}

/** Bytes a write may run ahead of its hash: a disk faster than sha256 must not queue a whole shard in memory. */
const HASH_BACKLOG_BYTES = 16 * 1024 * 1024;

/** The caller's body failed while it was being written: rethrown unchanged, it is not a storage problem. */
class BodyFailed {
  constructor(readonly error: unknown) {}
}

/**
 * Streams a body into a new file, hashing it on the way, then fsyncs it (so a rename never publishes bytes a power
 * cut could still lose). Each chunk's write runs in libuv's pool and its hash on the hashing thread, while this
 * thread goes on producing the next chunk, so the three overlap instead of adding up; no stream hop sits in between.
 */
async function writeHashed(path: string, body: PutBody): Promise<{ bytes: number; sha256: string }> {
  const source = toReadable(body);
  let handle: FileHandle;
  try {
    handle = await open(path, 'wx');
  } catch (err) {
    source.destroy(); // the caller's stream (a file, a socket) is not left open behind a refused write
    throw err;
  }
  const chunks = source[Symbol.asyncIterator]();
  let hash: BackgroundSha256 | undefined;
  let writing: Promise<void> = Promise.resolve();
  let handleOpen = true;
  try {
    hash = new BackgroundSha256();
    let bytes = 0;
    for (;;) {
      let next: IteratorResult<unknown>;
      try {
        next = await chunks.next();
      } catch (error) {
        throw new BodyFailed(error);
      }
      if (next.done) break;
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : (next.value as Uint8Array);
      await writing;
      writing = writeFully(handle, chunk);
      writing.catch(() => undefined); // a failure surfaces at the next await of it, not as an unhandled rejection
      hash.update(chunk);
      bytes += chunk.byteLength;
      await hash.caughtUp(HASH_BACKLOG_BYTES);
    }
    await writing;
    await handle.sync();
    handleOpen = false;
    await handle.close();
    return { bytes, sha256: await hash.digest() };
  } catch (err) {
    hash?.abandon();
    await writing.catch(() => undefined);
    await chunks.return?.().catch(() => undefined);
    // The first failure is the one reported: a close that fails after it must not replace it.
    if (handleOpen) await handle.close().catch(() => undefined);
    throw err;
  }
}

/** A write may take fewer bytes than asked (a full disk may show this way first): write until all are taken. */
async function writeFully(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let at = 0;
  while (at < chunk.byteLength) {
    const { bytesWritten } = await handle.write(chunk, at, chunk.byteLength - at);
    at += bytesWritten;
  }
}
