import { constants } from 'node:fs';
import { open, realpath, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { glob } from 'tinyglobby';
import type { ByteChunks } from '../bytes';
import type { CollectContext } from '../context';
import { CollectError, SourceForbidden, SourceNotFound, SourceUnreadable } from '../errors';
import { rangeReadOffset } from '../line-ranges';
import type { PathSource } from '../source-spec';
import { compareRefs, unitId, type SourceUnit } from '../source-unit';
import type { OpenedUnit } from './opened-unit';
import { fileRandomAccess } from './random-access';

const STAT_CONCURRENCY = 64;

/**
 * Lists the files of a `path` source: the file itself, or the folder's files matching `glob` (hidden files and
 * symbolic links skipped).
 */
export async function planPathSource(source: PathSource, ctx: CollectContext): Promise<SourceUnit[]> {
  const root = await resolveAllowed(source.path, ctx.allowedRoots, source.path);
  let info;
  try {
    info = await stat(root);
  } catch (err) {
    throw mapFsError(err, source.path);
  }
  if (info.isFile()) {
    const uri = path.normalize(source.path);
    const ref = path.basename(uri);
    return [{ id: unitId(uri, ref), source, ref, uri, bytes: info.size, modified: info.mtime.toISOString() }];
  }
  if (!info.isDirectory()) throw new SourceUnreadable(source.path, 'neither a file nor a folder', false);
  let found: string[];
  try {
    // Symbolic links are not followed: a listing never wanders outside the root nor loops. A linked file or folder
    // is collected by naming it as the source path, where it is resolved and checked against the allowed roots.
    found = await glob(source.glob ?? '**/*', { cwd: root, onlyFiles: true, dot: false, followSymbolicLinks: false });
  } catch (err) {
    throw mapFsError(err, source.path);
  }
  // A glob such as `../*` would list beside the folder; the spec refuses such globs, and this keeps the listing in.
  found = found.filter((rel) => isInside(path.resolve(root, rel), root));
  found.sort(compareRefs);
  const units: SourceUnit[] = [];
  for (let i = 0; i < found.length; i += STAT_CONCURRENCY) {
    const batch = found.slice(i, i + STAT_CONCURRENCY);
    const infos = await Promise.all(batch.map((rel) => stat(path.join(root, rel)).catch(() => undefined)));
    batch.forEach((rel, j) => {
      const uri = path.join(source.path, rel);
      const fileInfo = infos[j];
      units.push({
        id: unitId(uri, rel),
        source,
        ref: rel,
        uri,
        // A file that vanished or cannot be stat'ed stays listed: reading it reports the problem per onSourceError.
        bytes: fileInfo?.size ?? 0,
        ...(fileInfo ? { modified: fileInfo.mtime.toISOString() } : {}),
      });
    });
  }
  return units;
}

/** Opens a unit's file after checking, symbolic links resolved, that it is still under the allowed roots. */
export async function openPathUnit(unit: SourceUnit, ctx: CollectContext): Promise<OpenedUnit> {
  const real = await resolveAllowed(unit.uri, ctx.allowedRoots, unit.uri);
  let handle;
  try {
    // Non-blocking, so a file swapped for a named pipe after planning is refused below instead of hanging the open.
    handle = await open(real, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw mapFsError(err, unit.uri);
  }
  let info;
  try {
    info = await handle.stat();
  } catch (err) {
    await handle.close();
    throw mapFsError(err, unit.uri);
  }
  if (!info.isFile()) {
    await handle.close();
    throw new SourceUnreadable(unit.uri, 'not a regular file', false);
  }
  const { range } = unit;
  const cut = range ?? unit.rowGroups;
  if (cut && (info.size !== cut.fileBytes || info.mtime.toISOString() !== unit.modified)) {
    await handle.close();
    const parts = range ? 'byte ranges' : 'row groups';
    const detail = `it changed since the collection plan cut it into ${parts} (${cut.fileBytes} bytes then, ${info.size} now)`;
    throw new SourceUnreadable(unit.uri, detail, false);
  }
  // A byte range is read from one byte before its start: that byte tells whether a line starts at the start.
  const stream = handle.createReadStream({ highWaterMark: 1024 * 1024, start: range ? rangeReadOffset(range) : 0 });
  return {
    input: {
      name: path.basename(unit.uri),
      path: unit.uri,
      chunks: mapReadErrors(stream as AsyncIterable<Buffer>, unit.uri),
      modified: info.mtime,
      randomAccess: fileRandomAccess(handle, info.size, (err) => mapFsError(err, unit.uri)),
    },
    close: async () => {
      stream.destroy();
    },
  };
}

async function* mapReadErrors(stream: AsyncIterable<Buffer>, location: string): ByteChunks {
  try {
    for await (const chunk of stream) yield chunk;
  } catch (err) {
    throw mapFsError(err, location);
  }
}

/**
 * The real path of `target`, or SourceForbidden when it lies outside every allowed root. Outside paths are refused
 * before touching the disk, so a refusal never tells whether something exists there.
 */
export async function resolveAllowed(
  target: string,
  allowedRoots: string[] | undefined,
  location: string,
): Promise<string> {
  const absolute = path.resolve(target);
  if (allowedRoots === undefined) return absolute;
  const lexicalRoots = allowedRoots.map((root) => path.resolve(root));
  const realRoots = await Promise.all(lexicalRoots.map((root) => realpath(root).catch(() => root)));
  const roots = [...new Set([...lexicalRoots, ...realRoots])];
  if (!roots.some((root) => isInside(absolute, root))) {
    throw new SourceForbidden(location, `outside the allowed roots ${allowedRoots.join(', ')}`);
  }
  let real: string;
  try {
    real = await realpath(absolute);
  } catch (err) {
    throw mapFsError(err, location);
  }
  if (!realRoots.some((root) => isInside(real, root))) {
    throw new SourceForbidden(location, `it resolves to ${real} (a symbolic link), outside the allowed roots`);
  }
  return real;
}

function isInside(candidate: string, root: string): boolean {
  const relative = path.relative(root, candidate);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

const RETRYABLE_FS_CODES = new Set(['EIO', 'EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'ETIMEDOUT', 'ESTALE', 'EINTR']);

export function mapFsError(err: unknown, location: string): CollectError {
  if (err instanceof CollectError) return err;
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code === 'ENOENT' || code === 'ENOTDIR')
    return new SourceNotFound(location, 'no such file or folder', { cause: err });
  if (code === 'EACCES' || code === 'EPERM') {
    return new SourceForbidden(location, 'permission denied by the file system', { cause: err });
  }
  return new SourceUnreadable(location, message, typeof code === 'string' && RETRYABLE_FS_CODES.has(code), {
    cause: err,
  });
}
