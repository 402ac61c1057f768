/**
 * Text normalization for dedup, defined once here in plain JavaScript (the executable specification, normalizedWords;
 * normalizedUtf8 and the MinHash kernel are faster spellings the tests hold equal to it): lowercase;
 * optionally fold compatibility forms and strip diacritics (NFKD, marks removed); optionally turn every run of
 * digits into one `0`; drop punctuation, symbols and control characters (they join what they separate:
 * "don't" → "dont"); whitespace separates words. The kernel applies the same rules to ASCII bytes from a table and
 * relies on `prepareNonAscii` for everything else.
 */
export interface NormalizeOptions {
  /** Each run of digits becomes `0` (datatrove's number normalization). */
  normalizeNumbers?: boolean;
  /** NFKD and strip combining marks: "Café" and "cafe" become one word, "ﬁ" becomes "fi". */
  normalizeDiacritics?: boolean;
}

/* eslint-disable no-control-regex -- ASCII (\x00-\x7f) against the rest is the point of these patterns */
const MARKS = /\p{M}+/gu;
const DIGITS = /\p{N}+/gu;
const NON_ASCII_NUMBER = /(?![\x00-\x7f])\p{N}/gu;
const NOT_WORD = /[^\p{L}\p{N}\p{M}\s]+/gu;
const NON_ASCII_NOT_WORD = /[^\x00-\x7f\p{L}\p{N}\p{M}]+/gu;
const NON_ASCII_RUN = /[^\x00-\x7f]+/g;
const WORD_CHAR = /[\p{L}\p{N}\p{M}]/u;
const SPACE = /\s/u;
const SPACES = /\s+/u;
/* eslint-enable no-control-regex */

function foldCase(text: string, opts: NormalizeOptions): string {
  const lower = text.toLowerCase();
  // Lowercase again after NFKD: compatibility forms can decompose to capitals ("𝑨" → "A").
  return opts.normalizeDiacritics ? lower.normalize('NFKD').replace(MARKS, '').toLowerCase() : lower;
}

/** The words of a text after normalization. */
export function normalizedWords(text: string, opts: NormalizeOptions = {}): string[] {
  let s = foldCase(text, opts);
  if (opts.normalizeNumbers) s = s.replace(DIGITS, '0');
  return s
    .replace(NOT_WORD, '')
    .split(SPACES)
    .filter((w) => w.length > 0);
}

/** Normalized text: the words joined by single spaces. Two texts are exact duplicates when these are equal. */
export function normalizeText(text: string, opts: NormalizeOptions = {}): string {
  if (opts.normalizeNumbers || opts.normalizeDiacritics) return normalizedWords(text, opts).join(' ');
  return normalizedUtf8(text).toString('utf8');
}

let scratch = Buffer.alloc(1 << 16);
const SCRATCH_LIMIT = 16 << 20;

/**
 * normalizeText(text) with the default options, as UTF-8 bytes in a buffer the next call reuses (exact dedup hashes
 * them): one pass over character codes after prepareNonAscii, as the kernel does, writing bytes as it goes. The
 * regular-expression passes of normalizedWords ran at about 27 MB/s here and were most of exact dedup's time. The
 * dedup tests hold the two equal on arbitrary text.
 */
export function normalizedUtf8(text: string): Buffer {
  let nonAscii = 0;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) >= 0x80) nonAscii++;
  // Lowercased; what is left of non-ASCII is word characters, ' ' (white space) and DEL (dropped).
  const s = nonAscii === 0 ? text.toLowerCase() : prepareNonAscii(text, {}, nonAscii < text.length / 64);
  // Three bytes per unit at most; a buffer for the largest documents is not kept.
  const out = 3 * s.length <= scratch.length ? scratch : Buffer.alloc(3 * s.length);
  if (out !== scratch && out.length <= SCRATCH_LIMIT) scratch = out;
  let n = 0;
  let space = false; // white space since the last word character, after a word
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const kind = c >= 0x80 ? WORD : ASCII_KIND[c];
    if (kind === SEPARATOR) {
      space = n > 0;
      continue;
    }
    if (kind === DROPPED) continue;
    if (space) out[n++] = 0x20;
    space = false;
    if (c < 0x80) {
      out[n++] = c;
    } else if (c < 0x800) {
      out[n++] = 0xc0 | (c >> 6);
      out[n++] = 0x80 | (c & 0x3f);
    } else if (c >= 0xd800 && c <= 0xdbff) {
      // prepareNonAscii leaves no lone surrogate: this is a pair.
      const p = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
      out[n++] = 0xf0 | (p >> 18);
      out[n++] = 0x80 | ((p >> 12) & 0x3f);
      out[n++] = 0x80 | ((p >> 6) & 0x3f);
      out[n++] = 0x80 | (p & 0x3f);
    } else {
      out[n++] = 0xe0 | (c >> 12);
      out[n++] = 0x80 | ((c >> 6) & 0x3f);
      out[n++] = 0x80 | (c & 0x3f);
    }
  }
  return out.subarray(0, n);
}

const WORD = 0;
const SEPARATOR = 1;
const DROPPED = 2;
/** ASCII under normalizedWords' rules: word characters are kept, white space separates, the rest is dropped. */
const ASCII_KIND = Uint8Array.from({ length: 0x80 }, (_, c) => {
  const ch = String.fromCharCode(c);
  return WORD_CHAR.test(ch) ? WORD : SPACE.test(ch) ? SEPARATOR : DROPPED;
});

/**
 * Word n-gram shingles (as strings, words joined by a space), without repeats. A text shorter than n words is one
 * shingle of all its words; a text without words has none.
 */
export function shingles(text: string, n: number, opts: NormalizeOptions = {}): Set<string> {
  const words = normalizedWords(text, opts);
  const out = new Set<string>();
  if (words.length === 0) return out;
  if (words.length < n) {
    out.add(words.join(' '));
    return out;
  }
  for (let i = 0; i + n <= words.length; i++) out.add(words.slice(i, i + n).join(' '));
  return out;
}

/**
 * Applies the non-ASCII part of the rules, leaving ASCII characters for the kernel's table: the result's non-ASCII
 * characters are all letters, numbers or marks, so the kernel may treat every byte ≥ 0x80 as part of a word.
 * Matches are rare in real text, which keeps this fast where a full Unicode regex pass is not.
 */
export function prepareNonAscii(text: string, opts: NormalizeOptions = {}, mostlyAscii = false): string {
  let s = foldCase(text, opts);
  if (opts.normalizeNumbers) s = s.replace(NON_ASCII_NUMBER, '0');
  // DEL is dropped by the kernel like any control character, and like a dropped character it ends a run of digits.
  if (!mostlyAscii) return s.replace(NON_ASCII_NOT_WORD, (run) => (SPACE.test(run) ? ' ' : '\x7f'));
  // A few non-ASCII characters in ASCII text: visiting only those is faster than a Unicode class over every character.
  return s.replace(NON_ASCII_RUN, (run) => {
    let out = '';
    for (const ch of run) out += WORD_CHAR.test(ch) ? ch : SPACE.test(ch) ? ' ' : '\x7f';
    return out;
  });
}
