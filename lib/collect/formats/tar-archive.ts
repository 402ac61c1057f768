import { extract as tarExtract, type Header } from 'tar-stream';
import { detachable, type ByteChunks } from '../bytes';
import { CollectError } from '../errors';
import { InputDataError, type RawRecord } from '../records';
import type { ByteInput, ParseOptions } from './input';

/** Reads one entry's bytes as records (the format dispatcher, passed in to keep the modules acyclic). */
export type EntryReader = (input: ByteInput, opts: ParseOptions) => AsyncGenerator<RawRecord>;

/**
 * Streams a tar archive entry by entry. Entries that would escape the archive (absolute paths, `..`) and anything
 * but regular files are quarantined with the entry named; nothing is ever written to disk.
 */
export async function* readTar(
  input: ByteInput,
  opts: ParseOptions,
  layer: symbol,
  readEntry: EntryReader,
): AsyncGenerator<RawRecord> {
  const extract = tarExtract();
  const pump = feed(input.chunks, extract);
  const entries = extract[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: Awaited<ReturnType<typeof entries.next>>;
      try {
        next = await entries.next();
      } catch (err) {
        throw asArchiveError(err, layer);
      }
      if (next.done) break;
      const entry = next.value;
      const { header } = entry;
      const body = detachable(entry as ByteChunks);
      try {
        yield* readOneEntry(header, body.chunks, input, opts, layer, readEntry);
      } finally {
        // The archive moves on only once this entry is consumed; a reader that stopped early left some behind.
        try {
          await body.drain();
        } catch {
          // the archive's own error, if any, surfaces from entries.next()
        }
      }
    }
  } finally {
    extract.destroy();
    await pump;
  }
}

async function* readOneEntry(
  header: Header,
  chunks: ByteChunks,
  archive: ByteInput,
  opts: ParseOptions,
  layer: symbol,
  readEntry: EntryReader,
): AsyncGenerator<RawRecord> {
  const entry = header.name;
  if (header.type === 'directory') return;
  const unsafe = unsafeEntryReason(entry);
  if (unsafe !== undefined) {
    yield {
      kind: 'quarantine',
      entry,
      reason: 'unsafe_tar_entry',
      detail: `tar entry "${entry}" rejected: ${unsafe}; entries must stay inside the archive`,
    };
    return;
  }
  if (header.type !== 'file' && header.type !== 'contiguous-file') {
    const target = header.linkname ? ` → ${header.linkname}` : '';
    yield {
      kind: 'quarantine',
      entry,
      reason: 'unsupported_tar_entry',
      detail: `tar entry "${entry}" is a ${header.type}${target}; only regular files are collected`,
    };
    return;
  }
  const entryChunks = guardEntryErrors(chunks, layer);
  for await (const record of readEntry(
    { name: entry, path: `${archive.path}!${entry}`, chunks: entryChunks, modified: header.mtime },
    { ...opts, format: 'auto' },
  )) {
    yield { ...record, entry: record.entry ?? entry };
  }
}

/** An entry's stream fails when its archive does: report that as the archive's problem, not the entry's. */
async function* guardEntryErrors(chunks: ByteChunks, layer: symbol): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of chunks) yield chunk;
  } catch (err) {
    throw asArchiveError(err, layer);
  }
}

export function unsafeEntryReason(name: string): string | undefined {
  if (name.startsWith('/') || name.startsWith('\\') || /^[A-Za-z]:/.test(name)) return 'absolute path';
  if (name.split(/[\\/]+/).includes('..')) return "path has a '..' component";
  if (name.includes('\0')) return 'NUL byte in the name';
  return undefined;
}

/** Writes the archive bytes into the extractor with backpressure; a read error destroys the extractor with it. */
async function feed(source: ByteChunks, extract: ReturnType<typeof tarExtract>): Promise<void> {
  try {
    for await (const chunk of source) {
      if (extract.destroyed) return;
      if (!extract.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = () => {
            extract.off('drain', done);
            extract.off('close', done);
            resolve();
          };
          extract.on('drain', done);
          extract.on('close', done);
        });
      }
    }
    if (!extract.destroyed) extract.end(undefined); // streamx's end() takes an optional last chunk
  } catch (err) {
    extract.destroy(err as Error);
  }
}

function asArchiveError(err: unknown, layer: symbol): unknown {
  if (err instanceof InputDataError || err instanceof CollectError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InputDataError(layer, 'corrupt_archive', `corrupt tar archive: ${message}`);
}
