import type { C4Spec } from './spec';
import { codePointLength, sentencesAndWords, splitLines, whitespaceWords } from './text-units';
import type { Violation } from './verdict';

/** Why C4 dropped a line; counted in QualityStats. */
export type C4LineReason = 'too_long_word' | 'no_terminal_punct' | 'too_few_words' | 'javascript' | 'policy';

const CITATION = /\[\d*\]|\[edit\]|\[citation needed\]/g;
const TERMINAL_PUNCTUATION = ['.', '?', '!', '"', "'"];
const POLICY_PHRASES = [
  'terms of use',
  'privacy policy',
  'cookie policy',
  'uses cookies',
  'use of cookies',
  'use cookies',
];

export interface C4Edits {
  linesRemoved: Partial<Record<C4LineReason, number>>;
  citationsRemoved: number;
}

/** `words`: wordTokens(text).length, known from counting the kept lines' sentences (absent in the rare case not). */
export type C4Result = { violation: Violation } | { text: string; edits: C4Edits; words?: number };

/**
 * C4's rules (Raffel et al. 2020) as datatrove's C4QualityFilter applies them, line by line: drop lines with a
 * word over 1,000 characters, strip citation markers, drop lines without terminal punctuation (or ending in '...'),
 * with under 3 words, mentioning javascript or cookie/terms/privacy policies; reject the whole document on
 * "lorem ipsum" or '{', or when fewer than 5 sentences remain. Kept lines are rejoined with '\n'.
 */
export function c4Filter(text: string, spec: C4Spec): C4Result {
  const linesRemoved: Partial<Record<C4LineReason, number>> = {};
  const drop = (reason: C4LineReason) => {
    linesRemoved[reason] = (linesRemoved[reason] ?? 0) + 1;
  };
  let citationsRemoved = 0;
  let sentences = 0;
  let keptWords = 0;
  const kept: string[] = [];
  for (const original of splitLines(text)) {
    let line = original.trim();
    // A blank line fails the punctuation rule in datatrove too; dropping it uncounted keeps the stats about content.
    if (line === '') continue;
    // Word counts are taken before citations are stripped, as datatrove does.
    const words = whitespaceWords(line);
    // A word has no more code points than UTF-16 units: only longer words need counting.
    const maxWord = spec.maxWordLength;
    if (maxWord !== null && words.some((w) => w.length > maxWord && codePointLength(w) > maxWord)) {
      drop('too_long_word');
      continue;
    }
    if (spec.removeCitations) {
      line = line.replace(CITATION, () => {
        citationsRemoved++;
        return '';
      });
    }
    if (spec.filterNoTerminalPunct && (!TERMINAL_PUNCTUATION.some((p) => line.endsWith(p)) || line.endsWith('...'))) {
      drop('no_terminal_punct');
      continue;
    }
    if (spec.minWordsPerLine !== null && words.length < spec.minWordsPerLine) {
      drop('too_few_words');
      continue;
    }
    const lower = line.toLowerCase();
    if (spec.filterLoremIpsum && lower.includes('lorem ipsum')) {
      return { violation: { rule: 'c4.lorem_ipsum', detail: `"lorem ipsum" in: ${clip(line)}` } };
    }
    if (spec.filterJavascript && lower.includes('javascript')) {
      drop('javascript');
      continue;
    }
    if (spec.filterCurlyBracket && line.includes('{')) {
      return { violation: { rule: 'c4.curly_bracket', detail: `'{' in: ${clip(line)}` } };
    }
    if (spec.filterPolicy && POLICY_PHRASES.some((p) => lower.includes(p))) {
      drop('policy');
      continue;
    }
    const counts = sentencesAndWords(line);
    sentences += counts.sentences;
    keptWords += counts.words;
    kept.push(line);
  }
  if (spec.minSentences !== null && sentences < spec.minSentences) {
    const removed = Object.values(linesRemoved).reduce((a, b) => a + b, 0);
    return {
      violation: {
        rule: 'c4.too_few_sentences',
        detail: `${sentences} sentences left after dropping ${removed} lines, fewer than ${spec.minSentences}`,
      },
    };
  }
  const joined = kept.join('\n');
  const out = joined.trim();
  // Lines joined by '\n' have the words of the lines (no token spans a line break) unless the trim cut one.
  const edits = { linesRemoved, citationsRemoved };
  return out.length === joined.length ? { text: out, edits, words: keptWords } : { text: out, edits };
}

function clip(line: string): string {
  return line.length <= 120 ? line : `${line.slice(0, 120)}…`;
}
