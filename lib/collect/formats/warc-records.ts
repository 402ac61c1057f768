import { AsyncIterReader, LimitReader, WARCParser, type WARCRecord } from 'warcio';
import { excerpt, type ByteChunks } from '../bytes';
import type { ExpansionBudget } from '../decompress';
import { toIsoDate, type RawRecord } from '../records';
import { maxHtmlPageBytes, recordFromHtml } from './html-page';
import { decodeHtml } from './html-text';
import type { ByteInput, ParseOptions } from './input';

const GZIP_MAGIC = Buffer.from([0x1f, 0x8b, 0x08]);
const WARC_MAGIC = Buffer.from('WARC/1.');
/** Payload types read as HTML pages, and as plain text. */
const HTML_TYPES = new Set(['text/html', 'application/xhtml+xml']);
const TEXT_TYPES = new Set(['text/plain']);
/**
 * Bytes kept behind the current record so a bad record can be skipped by searching forward from its start. A .warc.gz
 * compressed as one stream (not one gzip member per record) would keep growing it: past this, what is kept is let
 * go, and a bad record is skipped from where the kept bytes begin.
 */
const MAX_RETAINED_BYTES = 64 * 1024 * 1024;

/** The record types of WARC 1.1; any other is counted as `warc.other`. */
const WARC_TYPES = new Set([
  'warcinfo',
  'response',
  'resource',
  'request',
  'metadata',
  'revisit',
  'conversion',
  'continuation',
]);

/**
 * Reads a WARC file (.warc, or .warc.gz with one gzip member per record as Common Crawl writes it) record by record
 * through warcio's WARCParser, streaming. `response` records with an HTML payload become documents of the page's main
 * text (html-text.ts), text/plain ones documents of their text; other records are passed over (RawSkipped). A payload of another
 * type, an unknown charset, a record whose WARC header does not parse, a gzip member that is corrupt or cut short are
 * quarantined with the byte offset of their record (of its gzip member), and reading goes on from the next record
 * found after it.
 */
export async function* readWarc(
  input: ByteInput,
  opts: ParseOptions,
  budget: ExpansionBudget,
  layer: symbol,
): AsyncGenerator<RawRecord> {
  const bytes = new RetainedBytes(input.chunks);
  const pageLimit = maxHtmlPageBytes(opts);
  let origin: number | undefined = 0;
  while (origin !== undefined) {
    const gzip: boolean = (await bytes.startsWith(origin, GZIP_MAGIC)) === true;
    const restartAfter = async (offset: number): Promise<number | undefined> =>
      bytes.find(offset + 1, gzip ? GZIP_MAGIC : WARC_MAGIC);
    // warcio detects gzip by trying to inflate; told the mode, it never mistakes one for the other.
    const reader = new AsyncIterReader(bytes.from(origin), gzip ? 'gzip' : null);
    const parser = new WARCParser(reader);
    const start = origin;
    origin = undefined;
    for (;;) {
      const record = await parser.parse();
      const offset = start + parser.offset;
      if (record === null) {
        // A gzip member cut short at the end of the file inflates to nothing, and one that is corrupt stops the
        // inflater: either way the parser ends with bytes left over, from the member it was about to read.
        if (gzip && (await bytes.hasDataAfter(offset))) {
          const cut = reader.compressed !== null;
          yield {
            kind: 'quarantine',
            position: { offset },
            ...(cut
              ? {
                  reason: 'truncated',
                  detail: `the gzip member at byte ${offset} ends with the file, before its WARC record does`,
                }
              : corruptMember(offset)),
          };
          origin = await restartAfter(offset);
        }
        break;
      }
      const problem = headerProblem(record, gzip && reader.compressed === null, offset);
      if (problem !== undefined) {
        yield { kind: 'quarantine', position: { offset }, ...problem };
        origin = await restartAfter(offset);
        break;
      }
      bytes.release(offset);
      if (record.warcType !== 'response') {
        // warcinfo, request, metadata, revisit, ...: counted by type in the stage's stats.
        const type = WARC_TYPES.has(record.warcType) ? record.warcType : 'other'; // the file names it: a bounded set
        yield { kind: 'skipped', what: `warc.${type}`, position: { offset } };
        continue;
      }
      const payload = await readPayload(record, pageLimit);
      if (gzip && reader.compressed === null) {
        yield { kind: 'quarantine', position: { offset }, ...corruptMember(offset) };
        origin = await restartAfter(offset);
        break;
      }
      if (gzip) budget.spend(payload.total, 'gzip', layer);
      if (payload.truncated) {
        yield {
          kind: 'quarantine',
          position: { offset },
          reason: 'truncated',
          detail: `the WARC record at byte ${offset} ends before its Content-Length (${record.warcContentLength})`,
        };
        origin = await restartAfter(offset);
        break;
      }
      const status = Number(record.httpHeaders?.statusCode);
      if (!(status >= 200 && status < 300)) {
        // Redirects and errors: what the server said, not a page; counted by status class (warc.response_3xx).
        const what = status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
        yield { kind: 'skipped', what: `warc.response_${what}`, position: { offset } };
        continue;
      }
      yield recordFromResponse(record, payload, offset, input.path, pageLimit);
    }
  }
}

/** Why a parsed record is not a WARC record, if it is not: a broken gzip member inflates to such garbage. */
function headerProblem(
  record: WARCRecord,
  gzipBroken: boolean,
  offset: number,
): { reason: 'warc_header' | 'corrupt_compression'; detail: string; sample?: string } | undefined {
  const statusline = record.warcHeaders.statusline;
  const length = record.warcHeaders.headers.get('Content-Length') ?? '';
  let why: string | undefined;
  if (!statusline.startsWith('WARC/')) why = `it starts with "${excerpt(statusline, 40)}", not a WARC/1.x version line`;
  else if (!record.warcType) why = 'it has no WARC-Type';
  else if (!/^\d+$/.test(length.trim())) why = `its Content-Length is "${excerpt(length, 40)}", not a byte count`;
  if (why === undefined) return undefined;
  if (gzipBroken) return corruptMember(offset);
  return { reason: 'warc_header', detail: `the WARC header does not parse: ${why}`, sample: excerpt(statusline) };
}

function corruptMember(offset: number): { reason: 'corrupt_compression'; detail: string } {
  return {
    reason: 'corrupt_compression',
    detail: `the gzip member at byte ${offset} does not inflate (corrupt or cut short)`,
  };
}

interface Payload {
  head: Buffer;
  total: number;
  /** The record ended before its Content-Length: the file was cut inside it. */
  truncated: boolean;
}

/** The HTTP payload, decoded from its transfer and content encodings by warcio; at most `cap` bytes of it kept. */
async function readPayload(record: WARCRecord, cap: number): Promise<Payload> {
  const kept: Buffer[] = [];
  let keptBytes = 0;
  let total = 0;
  const raw = record.reader; // warcio hands out the raw reader only before decoding starts
  for await (const chunk of record.contentReader) {
    total += chunk.length;
    if (keptBytes < cap) {
      const piece = Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.length, cap - keptBytes));
      kept.push(piece);
      keptBytes += piece.length;
    }
  }
  const truncated = raw instanceof LimitReader && raw.limit > 0;
  return { head: Buffer.concat(kept, keptBytes), total, truncated };
}

function recordFromResponse(
  record: WARCRecord,
  payload: Payload,
  offset: number,
  path: string,
  pageLimit: number,
): RawRecord {
  const headers = record.warcHeaders.headers;
  const url = record.warcTargetURI ?? undefined;
  const contentType = record.httpHeaders?.headers.get('Content-Type') ?? undefined;
  const mime = (contentType ?? '').split(';')[0].trim().toLowerCase();
  const position = { offset };
  const metadata: Record<string, unknown> = {
    url,
    date: headers.get('WARC-Date') ?? undefined,
    contentType,
    warcRecordId: headers.get('WARC-Record-ID') ?? undefined,
    path,
    offset,
    format: 'warc',
  };
  const created = toIsoDate(metadata.date);
  if (!HTML_TYPES.has(mime) && !TEXT_TYPES.has(mime)) {
    return {
      kind: 'quarantine',
      position,
      reason: 'unsupported_payload',
      detail: `${url ?? 'the response'} is ${mime || 'of no Content-Type'}; only HTML and text/plain responses are read`,
    };
  }
  if (payload.total > pageLimit) {
    return {
      kind: 'quarantine',
      position,
      reason: 'oversize',
      detail: `${url ?? 'the response'} has a ${payload.total}-byte payload, over the ${pageLimit}-byte page limit`,
    };
  }
  if (HTML_TYPES.has(mime)) {
    const page = recordFromHtml(payload.head, { url, contentType, position }, metadata);
    if (page.kind === 'document') page.created = created;
    return page;
  }
  // Plain text has no <meta>, but the same decoding applies: a byte order mark, the header's charset, else UTF-8.
  const decoded = decodeHtml(payload.head, contentType);
  if ('unknownCharset' in decoded) {
    return {
      kind: 'quarantine',
      position,
      reason: 'charset',
      detail: `charset "${decoded.unknownCharset}" (from the ${decoded.declaredBy}) is not one a TextDecoder knows`,
    };
  }
  const text = decoded.html.trim();
  if (text === '') {
    return { kind: 'quarantine', position, reason: 'empty', detail: `${url ?? 'the response'} has an empty body` };
  }
  return {
    kind: 'document',
    position,
    text,
    created,
    metadata: { ...metadata, charset: decoded.charset },
    utf8Repaired: decoded.utf8Repaired,
  };
}

/**
 * The input's bytes, read once, with those from the current record on kept in memory so that after a bad record the
 * reader can search forward from the record's start for the next one and restart a parser there.
 */
class RetainedBytes {
  private readonly iterator: AsyncIterator<Buffer>;
  private kept: Buffer[] = [];
  /** Absolute offset of the first kept byte. */
  private keptFrom = 0;
  /** Absolute offset just past the last byte read from the input. */
  private readEnd = 0;
  private done = false;

  constructor(source: ByteChunks) {
    this.iterator = source[Symbol.asyncIterator]();
  }

  /** Reads one more chunk into the kept bytes; false at the end of the input. */
  private async pull(): Promise<boolean> {
    if (this.done) return false;
    const next = await this.iterator.next();
    if (next.done) {
      this.done = true;
      return false;
    }
    this.kept.push(next.value);
    this.readEnd += next.value.length;
    if (this.readEnd - this.keptFrom > MAX_RETAINED_BYTES) this.release(this.readEnd - MAX_RETAINED_BYTES);
    return true;
  }

  /** Forgets the bytes before `offset`. */
  release(offset: number): void {
    while (this.kept.length > 0 && this.keptFrom + this.kept[0].length <= offset) {
      this.keptFrom += this.kept[0].length;
      this.kept.shift();
    }
  }

  /** Kept bytes from `offset` (or from the first one kept) to the end of what was read. */
  private slice(offset: number): Buffer {
    const all = this.kept.length === 1 ? this.kept[0] : Buffer.concat(this.kept);
    return all.subarray(Math.max(0, offset - this.keptFrom));
  }

  /** The input from `offset` on: first what is kept, then new chunks as they are read (and kept). */
  async *from(offset: number): AsyncGenerator<Uint8Array> {
    const position = Math.max(offset, this.keptFrom);
    if (position < this.readEnd) yield this.slice(position);
    while (await this.pull()) yield this.kept[this.kept.length - 1];
  }

  /** Whether `prefix` is at `offset`, reading as far as needed; undefined past the end of the input. */
  async startsWith(offset: number, prefix: Buffer): Promise<boolean | undefined> {
    while (this.readEnd < offset + prefix.length && (await this.pull()));
    if (this.readEnd <= offset) return undefined;
    return this.slice(offset).subarray(0, prefix.length).equals(prefix);
  }

  /** Whether any byte but whitespace follows `offset`; reads to the end of the input. */
  async hasDataAfter(offset: number): Promise<boolean> {
    while (await this.pull());
    return this.readEnd > offset && this.slice(offset).toString('latin1').trim() !== '';
  }

  /** The offset of the next `pattern` at or after `offset`, reading on as far as needed; undefined if none. */
  async find(offset: number, pattern: Buffer): Promise<number | undefined> {
    let from = Math.max(offset, this.keptFrom);
    for (;;) {
      const at = this.slice(from).indexOf(pattern);
      if (at >= 0) {
        this.release(from + at);
        return from + at;
      }
      // Keep the last bytes that could still start the pattern, then read on.
      from = Math.max(from, this.readEnd - pattern.length + 1);
      this.release(from);
      if (!(await this.pull())) return undefined;
    }
  }
}
