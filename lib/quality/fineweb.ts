import type { FineWebSpec } from './spec';
import { duplicates } from './gopher-repetition';
import { codePointLength, countOccurrences, isBlank, wordTokens } from './text-units';
import { percent, type Violation } from './verdict';

/**
 * datatrove's TERMINAL_PUNCTUATION (utils/text.py): 159 sentence terminals of many scripts. Listed, not
 * \p{Sentence_Terminal}: that property grows with the Unicode version of the runtime, datatrove's list does not.
 */
const TERMINAL_PUNCTUATION = new RegExp(
  `[${[
    '\\u{21}\\u{2e}\\u{3f}\\u{589}\\u{61d}-\\u{61f}\\u{6d4}\\u{700}-\\u{702}\\u{7f9}\\u{837}\\u{839}\\u{83d}\\u{83e}',
    '\\u{964}\\u{965}\\u{104a}\\u{104b}\\u{1362}\\u{1367}\\u{1368}\\u{166e}\\u{1735}\\u{1736}\\u{17d4}-\\u{17d6}',
    '\\u{17d9}\\u{17da}\\u{1803}\\u{1809}\\u{1944}\\u{1945}\\u{1aa8}-\\u{1aab}\\u{1b5a}\\u{1b5b}\\u{1b5e}\\u{1b5f}',
    '\\u{1b7d}\\u{1b7e}\\u{1c3b}\\u{1c3c}\\u{1c7e}\\u{1c7f}\\u{203c}\\u{203d}\\u{2047}-\\u{2049}\\u{2e2e}\\u{2e3c}',
    '\\u{2e53}\\u{2e54}\\u{3002}\\u{a4ff}\\u{a60e}\\u{a60f}\\u{a6f3}\\u{a6f7}\\u{a876}\\u{a877}\\u{a8ce}\\u{a8cf}',
    '\\u{a92f}\\u{a9c8}\\u{a9c9}\\u{aa5d}-\\u{aa5f}\\u{aaf0}\\u{aaf1}\\u{abeb}\\u{fe52}\\u{fe56}\\u{fe57}\\u{ff01}',
    '\\u{ff0e}\\u{ff1f}\\u{ff61}\\u{10a56}\\u{10a57}\\u{10f55}-\\u{10f59}\\u{10f86}-\\u{10f89}\\u{11047}\\u{11048}',
    '\\u{110be}-\\u{110c1}\\u{11141}-\\u{11143}\\u{111c5}\\u{111c6}\\u{111cd}\\u{111de}\\u{111df}',
    '\\u{11238}\\u{11239}\\u{1123b}\\u{1123c}\\u{112a9}\\u{1144b}\\u{1144c}\\u{115c2}\\u{115c3}\\u{115c9}-\\u{115d7}',
    '\\u{11641}\\u{11642}\\u{1173c}-\\u{1173e}\\u{11944}\\u{11946}\\u{11a42}\\u{11a43}\\u{11a9b}\\u{11a9c}',
    '\\u{11c41}\\u{11c42}\\u{11ef7}\\u{11ef8}\\u{11f43}\\u{11f44}\\u{16a6e}\\u{16a6f}\\u{16af5}\\u{16b37}\\u{16b38}',
    '\\u{16b44}\\u{16e98}\\u{1bc9f}\\u{1da88}',
  ].join('')}]$`,
  'u',
);

/** The last code point of a line. */
function lastCharacter(line: string): string {
  return [...line.slice(-2)].pop() ?? '';
}

/**
 * FineWeb's own rules (Penedo et al. 2024) as datatrove's FineWebQualityFilter applies them to C4's output: over the
 * non-blank lines (split on '\n' only), the share ending in terminal punctuation, the share of short lines, the
 * characters in duplicate lines over all characters but newlines, and newlines per word.
 */
export function finewebQuality(text: string, spec: FineWebSpec): Violation | undefined {
  const lines = text.split('\n').filter((line) => !isBlank(line));
  if (lines.length === 0) return { rule: 'fineweb.empty', detail: 'no line with text' };
  if (spec.minLineEndPunctuationRatio !== null) {
    const custom = spec.lineEndChars === undefined ? undefined : new Set(spec.lineEndChars);
    const ends = (line: string) =>
      custom === undefined ? TERMINAL_PUNCTUATION.test(line) : custom.has(lastCharacter(line));
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
    const words = wordTokens(text).length;
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
