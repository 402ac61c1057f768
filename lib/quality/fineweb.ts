import type { FineWebSpec } from './spec';
import { duplicates } from './gopher-repetition';
import { ENDS_IN_TERMINAL_PUNCTUATION, codePointLength, countOccurrences, isBlank, wordTokens } from './text-units';
import { percent, type Violation } from './verdict';

/** The last code point of a line. */
function lastCharacter(line: string): string {
  return [...line.slice(-2)].pop() ?? '';
}

/**
 * FineWeb's own rules (Penedo et al. 2024) as datatrove's FineWebQualityFilter applies them to C4's output: over the
 * non-blank lines (split on '\n' only), the share ending in terminal punctuation, the share of short lines, the
 * characters in duplicate lines over all characters but newlines, and newlines per word (`words`: the text's word
 * count when the caller has it, as C4 does).
 */
export function finewebQuality(text: string, spec: FineWebSpec, words?: number): Violation | undefined {
  const lines = text.split('\n').filter((line) => !isBlank(line));
  if (lines.length === 0) return { rule: 'fineweb.empty', detail: 'no line with text' };
  if (spec.minLineEndPunctuationRatio !== null) {
    const custom = spec.lineEndChars === undefined ? undefined : new Set(spec.lineEndChars);
    const ends = (line: string) =>
      custom === undefined ? ENDS_IN_TERMINAL_PUNCTUATION.test(line) : custom.has(lastCharacter(line));
    const ratio = lines.filter(ends).length / lines.length;
    if (ratio < spec.minLineEndPunctuationRatio && !(ratio === 0 && spec.ignoreZeroLineEndPunctuation)) {
      return {
        rule: 'fineweb.line_punct_ratio',
        detail: `${percent(ratio)} of lines end in punctuation, below ${percent(spec.minLineEndPunctuationRatio)}`,
      };
    }
  }
  if (spec.maxShortLineRatio !== null) {
    const ratio = lines.filter((line) => codePointLength(line) <= spec.shortLineLength).length / lines.length;
    if (ratio > spec.maxShortLineRatio) {
      return {
        rule: 'fineweb.short_line_ratio',
        detail: `${percent(ratio)} of lines have at most ${spec.shortLineLength} characters, above ${percent(spec.maxShortLineRatio)}`,
      };
    }
  }
  const newlines = countOccurrences(text, '\n');
  if (spec.maxDupLineCharRatio !== null) {
    const ratio = duplicates(lines).chars / (codePointLength(text) - newlines);
    if (ratio > spec.maxDupLineCharRatio) {
      return {
        rule: 'fineweb.char_dup_ratio',
        detail: `${percent(ratio)} of characters in duplicate lines, above ${percent(spec.maxDupLineCharRatio)}`,
      };
    }
  }
  if (spec.maxNewLineRatio !== null) {
    // A non-blank line has a token, so words > 0 here.
    words ??= wordTokens(text).length;
    const ratio = newlines / words;
    if (ratio > spec.maxNewLineRatio) {
      return {
        rule: 'fineweb.list_ratio',
        detail: `${newlines} newlines for ${words} words (${ratio.toFixed(3)} per word), above ${spec.maxNewLineRatio}`,
      };
    }
  }
  return undefined;
}
