import type { GopherRepetitionSpec } from './spec';
import { NGramCounter, hashTokens, nGramLength, type TokenHashes } from './ngram-hash';
import { codePointLength, words as wordsIn } from './text-units';
import { wordsOf, type Words } from './token-facts';
import { percent, type Violation } from './verdict';

export interface RepetitionThresholds {
  spec: GopherRepetitionSpec;
  topNGrams: ReadonlyArray<[number, number]>;
  dupNGrams: ReadonlyArray<[number, number]>;
}

/** Elements equal to an earlier one: how many, and their characters. */
export function duplicates(elements: readonly string[]): { count: number; chars: number } {
  const seen = new Set<string>();
  let count = 0;
  let chars = 0;
  for (const element of elements) {
    if (seen.has(element)) {
      count++;
      chars += codePointLength(element);
    } else {
      seen.add(element);
    }
  }
  return { count, chars };
}

/**
 * Characters covered by the most frequent n-gram (words joined by spaces) times its count. Among equally frequent
 * n-grams the first to occur wins, as with Python's Counter.most_common(1).
 */
function topNGramChars(t: TokenHashes, n: number): number | undefined {
  if (t.count < n) return undefined;
  const counter = new NGramCounter(t, n, ' ');
  for (let i = 0; i + n <= t.count; i++) counter.add(i);
  let best = 0;
  for (let s = 1; s < counter.size; s++) if (counter.counts[s] > counter.counts[best]) best = s;
  return nGramLength(t, counter.first[best], n, ' ') * counter.counts[best];
}

/**
 * Characters in repeated n-grams (words joined without separator, as datatrove does), scanning left to right and
 * jumping past a repeat so overlapping repeats are not counted twice (skipped n-grams are not remembered).
 */
function duplicateNGramChars(t: TokenHashes, n: number): number {
  const counter = new NGramCounter(t, n, '');
  let repeated = 0;
  let i = 0;
  while (i < t.count - n + 1) {
    if (counter.add(i) > 0) {
      repeated += nGramLength(t, i, n, '');
      i += n;
    } else {
      i++;
    }
  }
  return repeated;
}

/**
 * Gopher's repetition heuristics (Rae et al. 2021, table A1) as datatrove applies them: duplicate paragraphs and
 * lines by count and by characters, the top 2-4-gram's character share, and repeated 5-10-grams' character share.
 */
export function gopherRepetition(text: string, t: RepetitionThresholds, words?: Words): Violation | undefined {
  const { spec } = t;
  const length = codePointLength(text);
  if (length === 0) return { rule: 'gopher_repetition.empty', detail: 'no text' }; // as datatrove

  const paragraphs = text.trim().split(/\n{2,}/);
  const paraDups = duplicates(paragraphs);
  const paraFrac = paraDups.count / paragraphs.length;
  if (spec.dupParaFrac !== null && paraFrac > spec.dupParaFrac) {
    return {
      rule: 'gopher_repetition.dup_para_frac',
      detail: `${percent(paraFrac)} of paragraphs are duplicates, above ${percent(spec.dupParaFrac)}`,
    };
  }
  const paraCharFrac = paraDups.chars / length;
  if (spec.dupParaCharFrac !== null && paraCharFrac > spec.dupParaCharFrac) {
    return {
      rule: 'gopher_repetition.dup_para_char_frac',
      detail: `${percent(paraCharFrac)} of characters in duplicate paragraphs, above ${percent(spec.dupParaCharFrac)}`,
    };
  }

  const lines = text.split(/\n+/);
  const lineDups = duplicates(lines);
  const lineFrac = lineDups.count / lines.length;
  if (spec.dupLineFrac !== null && lineFrac > spec.dupLineFrac) {
    return {
      rule: 'gopher_repetition.dup_line_frac',
      detail: `${percent(lineFrac)} of lines are duplicates, above ${percent(spec.dupLineFrac)}`,
    };
  }
  const lineCharFrac = lineDups.chars / length;
  if (spec.dupLineCharFrac !== null && lineCharFrac > spec.dupLineCharFrac) {
    return {
      rule: 'gopher_repetition.dup_line_char_frac',
      detail: `${percent(lineCharFrac)} of characters in duplicate lines, above ${percent(spec.dupLineCharFrac)}`,
    };
  }

  if (t.topNGrams.length === 0 && t.dupNGrams.length === 0) return undefined;
  const hashes = hashTokens(words ?? wordsIn(text));
  for (const [n, limit] of t.topNGrams) {
    const chars = topNGramChars(hashes, n);
    if (chars === undefined) continue;
    const frac = chars / length;
    if (frac > limit) {
      return {
        rule: `gopher_repetition.top_${n}_gram`,
        detail: `the most frequent ${n}-gram covers ${percent(frac)} of characters, above ${percent(limit)}`,
      };
    }
  }
  for (const [n, limit] of t.dupNGrams) {
    const frac = duplicateNGramChars(hashes, n) / length;
    if (frac > limit) {
      return {
        rule: `gopher_repetition.dup_${n}_gram`,
        detail: `repeated ${n}-grams cover ${percent(frac)} of characters, above ${percent(limit)}`,
      };
    }
  }
  return undefined;
}

/** The top n-gram's character count (its length times its count) over word tokens; exported for tests. */
export function topNGramCharCount(tokens: readonly string[], n: number): number | undefined {
  return topNGramChars(hashTokens(wordsOf(tokens)), n);
}

/** Characters in repeated n-grams over word tokens; exported for tests. */
export function duplicateNGramCharCount(tokens: readonly string[], n: number): number {
  return duplicateNGramChars(hashTokens(wordsOf(tokens)), n);
}
