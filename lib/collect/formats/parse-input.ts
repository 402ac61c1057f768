import { BINARY_SNIFF_BYTES, binaryReason, peekBytes } from '../bytes';
import { ExpansionBudget, compressionFromMagic, compressionFromName, decompress } from '../decompress';
import { InputDataError, type RawRecord } from '../records';
import type { SourceFormat } from '../source-spec';
import { readEml, readMbox } from './email';
import { readHtmlFile } from './html-page';
import type { ByteInput, ParseOptions } from './input';
import { readJsonDocument, readJsonLines } from './json-records';
import { PARQUET_MAGIC, readParquet } from './parquet-rows';
import { readPlainText } from './plain-text';
import { readTar } from './tar-archive';
import { readWarc } from './warc-records';

type ConcreteFormat = Exclude<SourceFormat, 'auto'>;

const EXTENSIONS: Record<string, ConcreteFormat> = {
  txt: 'txt',
  text: 'txt',
  md: 'md',
  markdown: 'md',
  jsonl: 'jsonl',
  ndjson: 'jsonl',
  json: 'json',
  eml: 'eml',
  mbox: 'mbox',
  tar: 'tar',
  parquet: 'parquet',
  warc: 'warc',
  html: 'html',
  htm: 'html',
};

/** The format a file name's extension announces (`a.jsonl` → jsonl), if it announces one we read. */
export function formatFromName(name: string): ConcreteFormat | undefined {
  const base = name.slice(name.lastIndexOf('/') + 1);
  const dot = base.lastIndexOf('.');
  if (dot <= 0) return undefined;
  return EXTENSIONS[base.slice(dot + 1).toLowerCase()];
}

/** POSIX and GNU tar headers carry 'ustar' at offset 257. */
function looksLikeTar(head: Buffer): boolean {
  return head.length >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
}

/** Parquet files start with 'PAR1'; WARC files with their version line. */
function formatFromMagic(head: Buffer): ConcreteFormat | undefined {
  if (head.subarray(0, 4).equals(PARQUET_MAGIC)) return 'parquet';
  if (head.subarray(0, 7).toString('latin1') === 'WARC/1.') return 'warc';
  return undefined;
}

/** At most this many compression wrappers are peeled (a .tar.gz inside nothing else needs one). */
const MAX_COMPRESSION_LAYERS = 2;

/** An entry of an archive is read with the archive's expansion budget. */
interface ArchiveEntryContext {
  budget: ExpansionBudget;
}

/**
 * Reads one input as records: peels gzip/zstd wrappers (by extension, else by magic bytes), picks the format (the
 * forced one, else by extension, else tar by its header or text), rejects binary data, and hands over to the format
 * reader. A data problem of this input ends it with one quarantine record; read errors propagate.
 */
export async function* parseInput(
  input: ByteInput,
  opts: ParseOptions,
  archive?: ArchiveEntryContext,
): AsyncGenerator<RawRecord> {
  const layer = Symbol(input.path);
  const inArchive = archive !== undefined;
  try {
    let name = input.name;
    const budget = archive?.budget ?? new ExpansionBudget(opts.maxExpansionRatio);
    let chunks = inArchive ? input.chunks : budget.meter(input.chunks);
    const forced = !inArchive && opts.format !== 'auto' ? opts.format : undefined;
    let peeled = false;
    for (let layers = 0; layers < MAX_COMPRESSION_LAYERS; layers++) {
      const named = compressionFromName(name);
      let compression = named?.compression;
      // A .warc.gz is gzipped record by record: the WARC reader inflates it, to know where each record starts.
      if (compression === 'gzip' && named !== undefined && (forced ?? formatFromName(named.inner)) === 'warc') {
        name = named.inner;
        break;
      }
      if (named !== undefined) {
        name = named.inner;
      } else {
        const peeked = await peekBytes(chunks, 4);
        chunks = peeked.rest;
        compression = compressionFromMagic(peeked.head);
      }
      if (compression === undefined) break;
      if (compression === 'gzip' && forced === 'warc') break;
      chunks = decompress(compression, chunks, budget, layer);
      peeled = true;
    }

    let format: ConcreteFormat | undefined = forced ?? formatFromName(name);
    if (format === undefined) {
      const peeked = await peekBytes(chunks, 512);
      chunks = peeked.rest;
      format = formatFromMagic(peeked.head) ?? (looksLikeTar(peeked.head) ? 'tar' : 'txt');
    }
    // Random access reads the bytes as stored: a decompressed layer has none.
    const body: ByteInput = { ...input, name, chunks, randomAccess: peeled ? undefined : input.randomAccess };
    if (format === 'tar') {
      if (inArchive) {
        yield {
          kind: 'quarantine',
          reason: 'nested_archive',
          detail: 'a tar archive inside a tar archive is not read; unpack the outer one, or collect the inner one',
        };
        return;
      }
      yield* readTar(body, opts, layer, (entry, entryOpts) => parseInput(entry, entryOpts, { budget }));
      return;
    }
    // Binary formats, read before the text check.
    if (format === 'parquet') {
      yield* readParquet(body, opts);
      return;
    }
    if (format === 'warc') {
      yield* readWarc(body, opts, budget, layer);
      return;
    }

    const peeked = await peekBytes(chunks, BINARY_SNIFF_BYTES);
    body.chunks = peeked.rest;
    const binary = binaryReason(peeked.head);
    if (binary !== undefined) {
      yield { kind: 'quarantine', reason: 'binary', detail: `not text: ${binary}` };
      return;
    }
    switch (format) {
      case 'txt':
      case 'md':
        yield* readPlainText(body, opts, format);
        return;
      case 'jsonl':
        yield* readJsonLines(body, opts);
        return;
      case 'json':
        yield* readJsonDocument(body, opts);
        return;
      case 'eml':
        yield* readEml(body, opts);
        return;
      case 'mbox':
        yield* readMbox(body, opts);
        return;
      case 'html':
        yield* readHtmlFile(body, opts);
        return;
    }
  } catch (err) {
    if (err instanceof InputDataError && err.layer === layer) {
      yield { kind: 'quarantine', reason: err.reason, detail: err.detail };
      return;
    }
    throw err;
  }
}
