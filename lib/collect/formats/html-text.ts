import { Readability } from '@mozilla/readability';
import { compile, type HtmlToTextOptions } from 'html-to-text';
import { parseHTML } from 'linkedom';
import { decodeUtf8 } from '../bytes';

/** The main text of one HTML page, and how it was found. */
export interface HtmlMainText {
  /** Paragraphs separated by blank lines; empty when the page has no text. */
  text: string;
  /** The page's <title>, trimmed, if it has one. */
  title?: string;
  /** `readability` when Readability found an article, else `fallback` (the body's text without page chrome). */
  extractor: 'readability' | 'fallback';
}

/**
 * Readability's work grows with the page's elements times their depth (it walks ancestors for every candidate): a
 * page nested deeper, or with more elements, than any real article needs takes seconds to minutes, so it gets the
 * fallback, which is linear.
 */
const MAX_READABILITY_DEPTH = 120;
const MAX_READABILITY_ELEMENTS = 5_000;

/** Never text: scripts, styles and the page's navigation. */
const CHROME = 'script, style, noscript, template, iframe, svg, canvas, nav';
/** A page's own header and footer (site name, menus, copyright), but not an article's header or footer. */
const PAGE_CHROME = 'header, footer';

const TEXT_OPTIONS: HtmlToTextOptions = {
  wordwrap: false,
  selectors: [
    { selector: 'a', options: { ignoreHref: true } },
    { selector: 'img', format: 'skip' },
    { selector: 'ul', options: { itemPrefix: '- ' } },
    ...(['h1', 'h2', 'h3', 'h4', 'h5', 'h6'] as const).map((selector) => ({
      selector,
      options: { uppercase: false },
    })),
    { selector: 'table', format: 'dataTable', options: { uppercaseHeaderCells: false } },
  ],
};

const FALLBACK_OPTIONS: HtmlToTextOptions = {
  ...TEXT_OPTIONS,
  baseElements: { selectors: ['body'] },
  selectors: [
    ...(TEXT_OPTIONS.selectors ?? []),
    ...[...CHROME.split(', '), ...PAGE_CHROME.split(', ')].map((selector) => ({ selector, format: 'skip' })),
  ],
};

// Compiled once: html-to-text's convert() compiles its options (selectors included) on every call.
const articleToText = compile(TEXT_OPTIONS);
const bodyToText = compile(FALLBACK_OPTIONS);

/**
 * Reduces an HTML page to its main text: Mozilla Readability (as Firefox's reader view) on a linkedom document, with
 * scripts, styles, navigation and the page's own header and footer removed first; when Readability finds no article,
 * the body's text with block elements as line breaks. The one HTML-to-text path of collection (`html` files, WARC
 * responses). Throws on HTML nested too deeply to walk (the caller quarantines it).
 */
export function htmlMainText(html: string, url?: string): HtmlMainText {
  const { document } = parseHTML(html);
  const title = document.querySelector('title')?.textContent?.trim() || undefined;
  for (const node of [...document.querySelectorAll(CHROME)]) node.remove();
  for (const node of [...document.querySelectorAll(PAGE_CHROME)]) {
    if (node.closest('article, main') === null) node.remove();
  }
  if (url !== undefined) setBaseUrl(document, url);
  if (withinReadabilityLimits(document.documentElement)) {
    // linkedom's document is the DOM Readability expects; the DOM types are not in this project's lib setting.
    const article = new Readability(document as unknown as ConstructorParameters<typeof Readability>[0]).parse();
    const fromArticle = article?.content ? normalize(articleToText(article.content)) : '';
    if (fromArticle !== '') return { text: fromArticle, title, extractor: 'readability' };
  }
  // From the source again: Readability has rewritten the document. The fallback's selectors drop the same chrome.
  return { text: normalize(bodyToText(html)), title, extractor: 'fallback' };
}

interface ElementLike {
  children: ArrayLike<ElementLike>;
}

/** Whether the page is shallow and small enough for Readability (an iterative walk: depth cannot overflow it). */
function withinReadabilityLimits(root: ElementLike | null): boolean {
  if (root === null) return false;
  const stack: Array<{ node: ElementLike; depth: number }> = [{ node: root, depth: 1 }];
  let elements = 0;
  while (stack.length > 0) {
    const { node, depth } = stack.pop()!;
    if (++elements > MAX_READABILITY_ELEMENTS || depth > MAX_READABILITY_DEPTH) return false;
    const children = node.children; // built anew on each access by linkedom: read once
    for (let i = 0; i < children.length; i++) stack.push({ node: children[i], depth: depth + 1 });
  }
  return true;
}

/** Readability resolves relative links against the document's URL; linkedom documents have none unless given. */
function setBaseUrl(document: ReturnType<typeof parseHTML>['document'], url: string): void {
  const head = document.querySelector('head');
  if (head === null || document.querySelector('base') !== null) return;
  const base = document.createElement('base');
  base.setAttribute('href', url);
  head.appendChild(base);
}

/** Trailing spaces off every line, at most one blank line in a row, no blank lines at either end. */
function normalize(text: string): string {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

/** A page decoded to text, or the charset label that no decoder knows. */
export type DecodedHtml =
  { html: string; charset: string; utf8Repaired: boolean } | { unknownCharset: string; declaredBy: string };

/** How many bytes the <meta charset> prescan looks at, as the HTML standard's prescan does. */
const META_PRESCAN_BYTES = 1024;
/**
 * `<meta charset="x">` and `<meta http-equiv="Content-Type" content="text/html; charset=x">`. A regular expression
 * rather than the standard's full prescan algorithm: no encoding-sniffing library is among our dependencies, and these
 * two forms are what pages write.
 */
const META_CHARSET = /<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_:.+-]+)/i;

/**
 * Decodes an HTML page's bytes: a byte order mark, else the charset the HTTP Content-Type declares, else the page's
 * <meta charset>, else UTF-8 (invalid sequences replaced and flagged). Node's TextDecoder (full ICU) knows the
 * WHATWG labels; a label it does not know is returned as `unknownCharset`.
 */
export function decodeHtml(bytes: Buffer, contentType?: string): DecodedHtml {
  if (bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) return utf8(bytes.subarray(3));
  if (bytes[0] === 0xfe && bytes[1] === 0xff) return decodeAs(bytes.subarray(2), 'utf-16be', 'byte order mark');
  if (bytes[0] === 0xff && bytes[1] === 0xfe) return decodeAs(bytes.subarray(2), 'utf-16le', 'byte order mark');
  const fromHeader = charsetOf(contentType);
  if (fromHeader !== undefined) return decodeAs(bytes, fromHeader, 'Content-Type header');
  const fromMeta = META_CHARSET.exec(bytes.subarray(0, META_PRESCAN_BYTES).toString('latin1'))?.[1];
  // A page cannot declare itself UTF-16 in ASCII-compatible bytes; the standard reads such a declaration as UTF-8.
  if (fromMeta !== undefined && !/^utf-?16/i.test(fromMeta)) return decodeAs(bytes, fromMeta, '<meta charset>');
  return utf8(bytes);
}

/** The `charset` parameter of a Content-Type value, unquoted. */
export function charsetOf(contentType: string | undefined): string | undefined {
  const match = /;\s*charset\s*=\s*["']?([^"';\s]+)/i.exec(contentType ?? '');
  return match?.[1];
}

function decodeAs(bytes: Buffer, label: string, declaredBy: string): DecodedHtml {
  let decoder: InstanceType<typeof TextDecoder>;
  try {
    decoder = new TextDecoder(label);
  } catch {
    return { unknownCharset: label, declaredBy };
  }
  if (decoder.encoding === 'utf-8') return utf8(bytes);
  return { html: decoder.decode(bytes), charset: decoder.encoding, utf8Repaired: false };
}

function utf8(bytes: Buffer): DecodedHtml {
  const { text, repaired } = decodeUtf8(bytes);
  return { html: text, charset: 'utf-8', utf8Repaired: repaired };
}
