/**
 * How the filters cut text into lines, words and sentences. datatrove uses spaCy's English tokenizer and
 * sentencizer; these are close approximations without a model. Tokens: runs of letters and digits (keeping inner
 * periods and commas: "U.S", "1,000", "3.14"), English clitics split off as spaCy does ("whale's" → "whale" "'s",
 * "don't" → "don" "'t": spaCy says "do" "n't", same count and letters), '...' as one token, and every other
 * non-space character alone. A sentence ends at . ! ? or … followed by space and a non-punctuation character.
 */

const TOKEN =
  /\.{2,}|…|['’](?:[sSmMdDtT]|ll|LL|re|RE|ve|VE)(?![\p{L}\p{M}\p{N}])|[\p{L}\p{M}\p{N}_]+(?:[.,][\p{L}\p{M}\p{N}_]+)*|\S/gu;

export function wordTokens(text: string): string[] {
  return text.match(TOKEN) ?? [];
}

/** Python's str.splitlines(): every line break kind, no trailing empty line. */
// eslint-disable-next-line no-control-regex -- Python splits lines on the file/group/record separators too
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

export function splitLines(text: string): string[] {
  if (text === '') return [];
  const lines = text.split(LINE_BREAK);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

// eslint-disable-next-line no-control-regex -- Python's str.isspace() counts the file/group/record separators too
const PYTHON_BLANK = /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

/** Python's `s.strip() == ''`: only whitespace as Python counts it (unlike JS, not U+FEFF). */
export function isBlank(text: string): boolean {
  return PYTHON_BLANK.test(text);
}

/** Python's str.split() with no argument: runs of whitespace, no empty strings. */
export function whitespaceWords(text: string): string[] {
  const trimmed = text.trim();
  return trimmed === '' ? [] : trimmed.split(/\s+/);
}

const SENTENCE_END = /[.!?…]+[\p{P}]*\s+(?=[^\s\p{P}])/gu;

/** Sentences in one line of text (at least 1 for a non-empty line). */
export function countSentences(line: string): number {
  if (line.trim() === '') return 0;
  return 1 + (line.match(SENTENCE_END)?.length ?? 0);
}

/** Python's len(): code points, not UTF-16 units. */
export function codePointLength(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xdc00 && c <= 0xdfff && i > 0) {
      const prev = text.charCodeAt(i - 1);
      if (prev >= 0xd800 && prev <= 0xdbff) length--;
    }
  }
  return length;
}

/** Non-overlapping occurrences, as Python's str.count. */
export function countOccurrences(text: string, needle: string): number {
  let n = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) n++;
  return n;
}

const SYMBOL_ONLY = /^[\p{P}\p{S}\p{C}]+$/u;

/** A token made only of punctuation, symbols or control characters (datatrove's "symbol word"). */
export function isSymbolToken(token: string): boolean {
  return SYMBOL_ONLY.test(token);
}

const HAS_LETTER = /\p{L}/u;

export function hasLetter(token: string): boolean {
  return HAS_LETTER.test(token);
}
