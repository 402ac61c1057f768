import { spacySentencesAndWords, spacyWordFacts, spacyWords } from './spacy-tokenizer';
import type { Words } from './token-facts';

export { ENDS_IN_TERMINAL_PUNCTUATION, codePointLength, hasLetter, isSymbolToken } from './characters';

/**
 * How the filters cut text into lines, words and sentences, as datatrove does: words are spaCy's English tokens
 * (punctuation tokens included, whitespace left out), sentences spaCy's sentencizer's, both computed by our port of
 * spaCy's tokenizer on spaCy's own rules (spacy-tokenizer.ts).
 */
export function wordTokens(text: string): string[] {
  return spacyWords(text);
}

/** wordTokens(text) with what the Gopher families read off each token. */
export function words(text: string): Words {
  return spacyWordFacts(text);
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

/** Sentences in one line of text, as spaCy's sentencizer counts them (at least 1 for a non-empty line). */
export function countSentences(line: string): number {
  return sentencesAndWords(line).sentences;
}

/** countSentences(line) and wordTokens(line).length, from one pass of the tokenizer. */
export function sentencesAndWords(line: string): { sentences: number; words: number } {
  const counts = spacySentencesAndWords(line);
  // Blank by JavaScript's trim (which takes U+FEFF for whitespace, unlike spaCy): no sentence, as datatrove's C4.
  return line.trim() === '' ? { sentences: 0, words: counts.words } : counts;
}

/** Non-overlapping occurrences, as Python's str.count. */
export function countOccurrences(text: string, needle: string): number {
  let n = 0;
  for (let at = text.indexOf(needle); at !== -1; at = text.indexOf(needle, at + needle.length)) n++;
  return n;
}
