import type { GopherQualitySpec } from './spec';
import { countOccurrences, splitLines, words as wordsIn } from './text-units';
import type { Words } from './token-facts';
import { percent, type Violation } from './verdict';

/**
 * Gopher's quality heuristics (Rae et al. 2021, table A1) as datatrove applies them: word count and mean length over
 * non-symbol words, '#' and ellipsis per token, bullet and ellipsis lines, share of words with a letter, stop words.
 */
export function gopherQuality(
  text: string,
  spec: GopherQualitySpec,
  stopWords: ReadonlySet<string>,
  words: Words = wordsIn(text),
): Violation | undefined {
  const { tokens, facts: all } = words;
  const nTokens = tokens.length;
  // One pass over the tokens for every count below: non-symbol words and their characters, tokens with a letter.
  let nWords = 0;
  let wordChars = 0;
  let withLetter = 0;
  for (let i = 0; i < nTokens; i++) {
    const facts = all[i];
    if (!facts.symbol) {
      nWords++;
      wordChars += facts.length;
    }
    if (facts.letter) withLetter++;
  }

  if (spec.minWords !== null && nWords < spec.minWords) {
    return { rule: 'gopher_quality.min_words', detail: `${nWords} words, fewer than ${spec.minWords}` };
  }
  if (spec.maxWords !== null && nWords > spec.maxWords) {
    return { rule: 'gopher_quality.max_words', detail: `${nWords} words, more than ${spec.maxWords}` };
  }
  if (nWords > 0) {
    const mean = wordChars / nWords;
    if (spec.minAvgWordLength !== null && mean < spec.minAvgWordLength) {
      return {
        rule: 'gopher_quality.min_avg_word_length',
        detail: `mean word length ${mean.toFixed(3)}, below ${spec.minAvgWordLength}`,
      };
    }
    if (spec.maxAvgWordLength !== null && mean > spec.maxAvgWordLength) {
      return {
        rule: 'gopher_quality.max_avg_word_length',
        detail: `mean word length ${mean.toFixed(3)}, above ${spec.maxAvgWordLength}`,
      };
    }
  }
  if (nTokens > 0 && spec.maxSymbolWordRatio !== null) {
    const hashes = countOccurrences(text, '#') / nTokens;
    if (hashes > spec.maxSymbolWordRatio) {
      return {
        rule: 'gopher_quality.hash_ratio',
        detail: `${percent(hashes)} '#' per token, above ${percent(spec.maxSymbolWordRatio)}`,
      };
    }
    const ellipses = (countOccurrences(text, '...') + countOccurrences(text, '…')) / nTokens;
    if (ellipses > spec.maxSymbolWordRatio) {
      return {
        rule: 'gopher_quality.ellipsis_ratio',
        detail: `${percent(ellipses)} ellipses per token, above ${percent(spec.maxSymbolWordRatio)}`,
      };
    }
  }
  const lines = splitLines(text);
  if (lines.length > 0) {
    if (spec.maxBulletLinesRatio !== null) {
      const bullets = lines.filter((l) => /^\s*[•-]/.test(l)).length / lines.length;
      if (bullets > spec.maxBulletLinesRatio) {
        return {
          rule: 'gopher_quality.bullet_lines',
          detail: `${percent(bullets)} of lines start with a bullet, above ${percent(spec.maxBulletLinesRatio)}`,
        };
      }
    }
    if (spec.maxEllipsisLinesRatio !== null) {
      const trailing = lines.filter((l) => /(?:\.\.\.|…)\s*$/.test(l)).length / lines.length;
      if (trailing > spec.maxEllipsisLinesRatio) {
        return {
          rule: 'gopher_quality.ellipsis_lines',
          detail: `${percent(trailing)} of lines end with an ellipsis, above ${percent(spec.maxEllipsisLinesRatio)}`,
        };
      }
    }
  }
  if (nTokens > 0 && spec.minAlphaWordsRatio !== null) {
    const alpha = withLetter / nTokens;
    if (alpha < spec.minAlphaWordsRatio) {
      return {
        rule: 'gopher_quality.alpha_words',
        detail: `${percent(alpha)} of tokens have a letter, below ${percent(spec.minAlphaWordsRatio)}`,
      };
    }
  }
  if (spec.minStopWords !== null) {
    // Distinct ones: datatrove intersects the stop words with the set of tokens.
    const found = new Set(tokens.filter((t) => stopWords.has(t))).size;
    if (found < spec.minStopWords) {
      return {
        rule: 'gopher_quality.stop_words',
        detail: `${found} distinct stop words, fewer than ${spec.minStopWords}`,
      };
    }
  }
  return undefined;
}
