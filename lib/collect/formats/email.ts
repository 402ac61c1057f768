import { convert as htmlToText } from 'html-to-text';
import PostalMime from 'postal-mime';
import { excerpt, readCapped, splitLines } from '../bytes';
import { toIsoDate, type RawRecord, type RecordPosition } from '../records';
import { maxMessageBytes, type ByteInput, type ParseOptions } from './input';

/** An .eml file is one message. */
export async function* readEml(input: ByteInput, opts: ParseOptions): AsyncGenerator<RawRecord> {
  const limit = maxMessageBytes(opts);
  const { head, total } = await readCapped(input.chunks, limit);
  if (total > limit) {
    yield oversizeMessage(total, limit, undefined);
    return;
  }
  yield await recordFromMessage(head, input.path, undefined, 'eml');
}

const MAX_MBOX_LINE_BYTES = 8 * 1024 * 1024;
const FROM_LINE = Buffer.from('From ');
const ESCAPED_FROM = /^>+From /;

/**
 * An mbox file: messages separated by `From ` lines at the start of the file or after a blank line; `>From `
 * lines are unescaped (mboxrd). Streamed one message at a time.
 */
export async function* readMbox(input: ByteInput, opts: ParseOptions): AsyncGenerator<RawRecord> {
  const limit = maxMessageBytes(opts);
  let message: Buffer[] = [];
  let bytes = 0;
  let startLine = 0; // 0 = before the first separator
  let previousBlank = true;
  let preamble = false;

  const finish = async (): Promise<RawRecord | undefined> => {
    if (startLine === 0) {
      if (!preamble) return undefined;
      return {
        kind: 'quarantine',
        position: { line: 1 },
        reason: 'email_parse',
        detail: "text before the first 'From ' separator line; an mbox file starts with one",
      };
    }
    // The blank line before a separator belongs to the separator, not to the message.
    while (message.length > 0 && message[message.length - 1].length === 1) bytes -= message.pop()!.length;
    const position = { line: startLine };
    if (bytes > limit) return oversizeMessage(bytes, limit, position);
    return recordFromMessage(Buffer.concat(message), input.path, position, 'mbox');
  };

  for await (const line of splitLines(input.chunks, MAX_MBOX_LINE_BYTES)) {
    const isSeparator = previousBlank && line.overflowBytes === undefined && startsWith(line.bytes, FROM_LINE);
    if (isSeparator) {
      const record = await finish();
      if (record) yield record;
      message = [];
      bytes = 0;
      startLine = line.number;
      previousBlank = false;
      continue;
    }
    const length = (line.overflowBytes ?? line.bytes.length) + 1;
    previousBlank = line.overflowBytes === undefined && line.bytes.length === 0;
    if (startLine === 0) {
      if (!previousBlank) preamble = true;
      continue;
    }
    bytes += length;
    if (bytes > limit || line.overflowBytes !== undefined) {
      bytes = Math.max(bytes, limit + 1); // keep counting, stop holding
      message = [];
      continue;
    }
    let text = line.bytes;
    if (ESCAPED_FROM.test(text.subarray(0, 64).toString('latin1'))) text = text.subarray(1);
    message.push(Buffer.concat([text, NEWLINE]));
  }
  const last = await finish();
  if (last) yield last;
}

const NEWLINE = Buffer.from('\n');

function startsWith(bytes: Buffer, prefix: Buffer): boolean {
  return bytes.length >= prefix.length && bytes.subarray(0, prefix.length).equals(prefix);
}

function oversizeMessage(bytes: number, limit: number, position: RecordPosition | undefined): RawRecord {
  return {
    kind: 'quarantine',
    position,
    reason: 'oversize',
    detail: `message of ${bytes} bytes with attachments, over the ${limit}-byte limit for one message`,
  };
}

/** Headers become metadata, the text/plain part (else the HTML part reduced to text) becomes the document. */
async function recordFromMessage(
  raw: Buffer,
  path: string,
  position: RecordPosition | undefined,
  format: 'eml' | 'mbox',
): Promise<RawRecord> {
  let email: PostalMime.Email;
  try {
    email = await PostalMime.parse(raw);
  } catch (err) {
    return {
      kind: 'quarantine',
      position,
      reason: 'email_parse',
      detail: `not a parsable email message: ${(err as Error).message}`,
      sample: excerpt(raw.subarray(0, 800).toString('utf8')),
    };
  }
  const fromHtml = !email.text?.trim() && !!email.html?.trim();
  if (fromHtml && htmlNestedDeeperThan(email.html ?? '', MAX_HTML_DEPTH)) {
    return {
      kind: 'quarantine',
      position,
      reason: 'nested_too_deep',
      detail: `the HTML body nests elements more than ${MAX_HTML_DEPTH} deep; not reduced to text`,
      sample: email.subject ? excerpt(`Subject: ${email.subject}`) : undefined,
    };
  }
  let body: string;
  try {
    body = fromHtml ? htmlToPlainText(email.html ?? '') : (email.text ?? '');
  } catch (err) {
    // html-to-text walks the document recursively: deeply nested HTML overflows the stack.
    return {
      kind: 'quarantine',
      position,
      reason: 'email_parse',
      detail: `the HTML body could not be reduced to text: ${(err as Error).message}`,
      sample: email.subject ? excerpt(`Subject: ${email.subject}`) : undefined,
    };
  }
  const text = body.trimEnd(); // not /\s+$/: quadratic on a long run of spaces before the end
  if (text.trim() === '') {
    return {
      kind: 'quarantine',
      position,
      reason: 'no_text',
      detail: `the message has no text or HTML body${email.attachments.length ? ` (${email.attachments.length} attachments only)` : ''}`,
      sample: email.subject ? excerpt(`Subject: ${email.subject}`) : undefined,
    };
  }
  const dateHeader = email.headers.find((h) => h.key === 'date')?.value;
  const messageId = email.messageId?.trim().replace(/^<|>$/g, '');
  const metadata: Record<string, unknown> = { path, format };
  if (email.from) metadata.from = formatAddress(email.from);
  if (email.to?.length) metadata.to = email.to.map(formatAddress);
  if (email.subject !== undefined) metadata.subject = email.subject;
  if (dateHeader !== undefined) metadata.date = dateHeader;
  if (messageId) metadata.messageId = messageId;
  if (fromHtml) metadata.htmlConverted = true;
  if (position && 'line' in position) metadata.line = position.line;
  return {
    kind: 'document',
    position,
    text,
    id: messageId || undefined,
    created: toIsoDate(email.date),
    metadata,
  };
}

function formatAddress(address: PostalMime.Address): string {
  if (address.group !== undefined) return `${address.name}: ${address.group.map(formatAddress).join(', ')};`;
  return address.name ? `${address.name} <${address.address}>` : address.address;
}

/**
 * Deeper HTML than this is refused before parsing: the HTML parser's time grows with the square of the nesting
 * depth (a 500 KB message of nested <div>s takes seconds, a 64 MB one hours) and conversion recurses per level.
 */
const MAX_HTML_DEPTH = 1000;

/** Elements that never nest (void) or whose end tag may be left out: counting them would overstate the depth. */
const UNCOUNTED_ELEMENTS = new Set(
  (
    'area base br col embed hr img input link meta param source track wbr ' +
    'p li dt dd option optgroup tr td th thead tbody tfoot colgroup caption rb rt rtc rp'
  ).split(' '),
);
const TAG_START = /^<(\/?)([A-Za-z][A-Za-z0-9:-]*)/;

/**
 * Whether open tags minus close tags ever pass `limit`: overstates rather than misses depth. Linear, by indexOf
 * (a regex that looks for a tag's '>' rescans the rest of the text from every '<' that has none).
 */
function htmlNestedDeeperThan(html: string, limit: number): boolean {
  let depth = 0;
  for (let at = 0; ;) {
    const open = html.indexOf('<', at);
    if (open === -1) return false;
    const close = html.indexOf('>', open + 1);
    if (close === -1) return false;
    at = close + 1;
    const tag = TAG_START.exec(html.slice(open, Math.min(close, open + 80)));
    if (tag === null || html[close - 1] === '/' || UNCOUNTED_ELEMENTS.has(tag[2].toLowerCase())) continue;
    depth = tag[1] === '/' ? Math.max(0, depth - 1) : depth + 1;
    if (depth > limit) return true;
  }
}

function htmlToPlainText(html: string): string {
  return htmlToText(html, {
    wordwrap: false,
    selectors: [
      { selector: 'a', options: { ignoreHref: true } },
      { selector: 'img', format: 'skip' },
    ],
  });
}
