import { excerpt, readCapped } from '../bytes';
import { toIsoDate, type RawRecord, type StructuredPosition } from '../records';
import { decodeHtml, htmlMainText } from './html-text';
import type { ByteInput, ParseOptions } from './input';

/** A page is parsed in memory as a DOM, which costs several times its bytes; past this it is quarantined unparsed. */
export function maxHtmlPageBytes(opts: ParseOptions): number {
  return Math.max(16 * 1024 * 1024, 4 * opts.maxDocumentBytes);
}

/** What a page is known by besides its bytes: the WARC record's URL and HTTP Content-Type, if it came from one. */
export interface PageContext {
  url?: string;
  contentType?: string;
  position?: StructuredPosition;
}

/**
 * One HTML page as a raw record: decoded by its declared charset, reduced to its main text (html-text.ts). An unknown
 * charset, HTML too deeply nested to walk, or a page with no text becomes a quarantine record with its reason.
 */
export function recordFromHtml(bytes: Buffer, page: PageContext, metadata: Record<string, unknown>): RawRecord {
  const { position } = page;
  const decoded = decodeHtml(bytes, page.contentType);
  if ('unknownCharset' in decoded) {
    return {
      kind: 'quarantine',
      position,
      reason: 'charset',
      detail:
        `charset "${decoded.unknownCharset}" (from the ${decoded.declaredBy}) is not one a TextDecoder knows; ` +
        'the page cannot be decoded',
      sample: excerpt(bytes.subarray(0, 400).toString('latin1')),
    };
  }
  let main;
  try {
    main = htmlMainText(decoded.html, page.url);
  } catch (err) {
    // The DOM and html-to-text walk elements recursively: deeply nested HTML overflows the stack.
    return {
      kind: 'quarantine',
      position,
      reason: 'html_parse',
      detail: `the page could not be reduced to text: ${(err as Error).message}`,
      sample: excerpt(decoded.html),
    };
  }
  if (main.text === '') {
    return {
      kind: 'quarantine',
      position,
      reason: 'empty',
      detail: 'no text left once scripts, styles, navigation, header and footer are removed',
      sample: excerpt(decoded.html),
    };
  }
  return {
    kind: 'document',
    position,
    text: main.text,
    metadata: {
      ...(main.title !== undefined ? { title: main.title } : {}),
      ...metadata,
      charset: decoded.charset,
      extractor: main.extractor,
    },
    utf8Repaired: decoded.utf8Repaired,
  };
}

/** An .html or .htm file is one page; a page past the HTML size limit is quarantined unparsed. */
export async function* readHtmlFile(input: ByteInput, opts: ParseOptions): AsyncGenerator<RawRecord> {
  const limit = maxHtmlPageBytes(opts);
  const { head, total } = await readCapped(input.chunks, limit);
  if (total > limit) {
    yield {
      kind: 'quarantine',
      reason: 'oversize',
      detail: `HTML page of ${total} bytes, over the ${limit}-byte page limit (4 × maxDocumentBytes, at least 16 MiB)`,
    };
    return;
  }
  const record = recordFromHtml(head, {}, { path: input.path, bytes: total, format: 'html' });
  if (record.kind === 'document') record.created = toIsoDate(input.modified);
  yield record;
}
