import { z } from 'zod';

import { LID_176_LABELS } from './lid-labels';

/**
 * Thresholds default to datatrove's published defaults (LanguageFilter, GopherQualityFilter, GopherRepetitionFilter,
 * C4QualityFilter, FineWebQualityFilter); `null` turns one rule off, `false` a whole family.
 */

const ratio = z.number().min(0).max(1);
const count = z.number().int().min(0);

export const DEFAULT_STOP_WORDS = ['the', 'be', 'to', 'of', 'and', 'that', 'have', 'with'] as const;

export const GopherQualitySpec = z
  .object({
    minWords: count.nullable().default(50).describe('fewest words (tokens with a non-symbol character)'),
    maxWords: count.nullable().default(100_000).describe('most words'),
    minAvgWordLength: z.number().min(0).nullable().default(3).describe('shortest mean word length'),
    maxAvgWordLength: z.number().min(0).nullable().default(10).describe('longest mean word length'),
    maxSymbolWordRatio: ratio.nullable().default(0.1).describe("most '#', and most ellipses ('...' or '…'), per token"),
    maxBulletLinesRatio: ratio.nullable().default(0.9).describe("most lines starting with '•' or '-'"),
    maxEllipsisLinesRatio: ratio.nullable().default(0.3).describe('most lines ending with an ellipsis'),
    minAlphaWordsRatio: ratio.nullable().default(0.8).describe('least share of tokens with a letter'),
    minStopWords: count.nullable().default(2).describe('fewest distinct stop words'),
    stopWords: z
      .array(z.string().min(1))
      .default([...DEFAULT_STOP_WORDS])
      .describe('the stop words (matched case-sensitively, as datatrove does)'),
  })
  .strict();

const DEFAULT_TOP_NGRAM_CHAR_FRAC = { '2': 0.2, '3': 0.18, '4': 0.16 };
const DEFAULT_DUP_NGRAM_CHAR_FRAC = { '5': 0.15, '6': 0.14, '7': 0.13, '8': 0.12, '9': 0.11, '10': 0.1 };
const nGramFractions = z.record(z.string().regex(/^[1-9]\d?$/, 'an n-gram size from 1 to 99'), ratio.nullable());

export const GopherRepetitionSpec = z
  .object({
    dupLineFrac: ratio.nullable().default(0.3).describe('most duplicate lines, by count'),
    dupParaFrac: ratio.nullable().default(0.3).describe('most duplicate paragraphs (split on 2+ newlines), by count'),
    dupLineCharFrac: ratio.nullable().default(0.2).describe('most characters in duplicate lines'),
    dupParaCharFrac: ratio.nullable().default(0.2).describe('most characters in duplicate paragraphs'),
    topNGramCharFrac: nGramFractions
      .default(DEFAULT_TOP_NGRAM_CHAR_FRAC)
      .describe('per n: most characters in the most frequent n-gram; merged over the defaults, null drops an n'),
    dupNGramCharFrac: nGramFractions
      .default(DEFAULT_DUP_NGRAM_CHAR_FRAC)
      .describe('per n: most characters in repeated n-grams; merged over the defaults, null drops an n'),
  })
  .strict();

export const C4Spec = z
  .object({
    removeCitations: z.boolean().default(true).describe('strip [1], [edit], [citation needed]'),
    filterNoTerminalPunct: z.boolean().default(true).describe('drop lines not ending in . ? ! " \' (or ending in ...)'),
    minWordsPerLine: count.nullable().default(3).describe('drop lines with fewer words'),
    maxWordLength: count.nullable().default(1000).describe('drop lines with a longer word'),
    minSentences: count.nullable().default(5).describe('drop documents with fewer sentences left'),
    filterLoremIpsum: z.boolean().default(true).describe('drop documents containing "lorem ipsum"'),
    filterJavascript: z.boolean().default(true).describe('drop lines containing "javascript"'),
    filterCurlyBracket: z.boolean().default(true).describe('drop documents containing "{"'),
    filterPolicy: z.boolean().default(true).describe('drop lines about cookies, terms of use, privacy policy'),
  })
  .strict();

const LID_LABELS: ReadonlySet<string> = new Set(LID_176_LABELS);

export const LanguageSpec = z
  .object({
    languages: z
      .array(
        z.string().refine((label) => LID_LABELS.has(label), {
          message: "not a lid.176 language label (e.g. 'en', 'de', 'zh', 'sh', 'als')",
        }),
      )
      .min(1)
      .default(['en'])
      .describe('keep documents in these languages (fastText lid.176 labels)'),
    minScore: ratio
      .default(0.65)
      .describe("a listed language's probability must be above this (FineWeb's 0.65; at 0.5 and more: the best one)"),
  })
  .strict();

export const FineWebSpec = z
  .object({
    minLineEndPunctuationRatio: ratio
      .nullable()
      .default(0.12)
      .describe('least share of non-blank lines ending in terminal punctuation'),
    ignoreZeroLineEndPunctuation: z
      .boolean()
      .default(false)
      .describe("a document with no line ending in punctuation passes that rule (datatrove's line_punct_exclude_zero)"),
    lineEndChars: z
      .array(z.string().regex(/^.$/u, 'one character'))
      .min(1)
      .optional()
      .describe("characters that end a line as punctuation; datatrove's 159 terminal marks of all scripts if unset"),
    maxShortLineRatio: ratio.nullable().default(0.67).describe('most share of non-blank lines that are short'),
    shortLineLength: count.default(30).describe('a line of at most this many characters is short'),
    maxDupLineCharRatio: ratio
      .nullable()
      .default(0.01)
      .describe('most characters in duplicate non-blank lines, over all characters but newlines'),
    maxNewLineRatio: z.number().min(0).nullable().default(0.3).describe('most newlines per word'),
  })
  .strict();

/**
 * Quality filtering, in datatrove's FineWeb order: length bounds, language, Gopher repetition, Gopher quality, C4 (the
 * one that edits text), then FineWeb's own rules on C4's output. Every field is optional; `{}` is datatrove's
 * defaults.
 */
export const QualitySpec = z
  .object({
    minChars: count.default(0).describe('drop documents shorter than this (UTF-16 code units)'),
    maxChars: count.nullable().default(null).describe('drop documents longer than this; null: no bound'),
    language: z.union([z.literal(false), LanguageSpec]).prefault({}),
    gopherRepetition: z.union([z.literal(false), GopherRepetitionSpec]).prefault({}),
    gopherQuality: z.union([z.literal(false), GopherQualitySpec]).prefault({}),
    c4: z.union([z.literal(false), C4Spec]).prefault({}),
    fineweb: z.union([z.literal(false), FineWebSpec]).prefault({}),
  })
  .strict();

export type QualitySpec = z.infer<typeof QualitySpec>;
export type QualitySpecInput = z.input<typeof QualitySpec>;
export type GopherQualitySpec = z.infer<typeof GopherQualitySpec>;
export type GopherRepetitionSpec = z.infer<typeof GopherRepetitionSpec>;
export type C4Spec = z.infer<typeof C4Spec>;
export type LanguageSpec = z.infer<typeof LanguageSpec>;
export type FineWebSpec = z.infer<typeof FineWebSpec>;

/** `{ '2': 0.2, ... }` merged over the defaults into sorted [n, fraction] pairs; null removes an n. */
export function nGramThresholds(
  given: Record<string, number | null>,
  defaults: 'top' | 'dup',
): Array<[n: number, fraction: number]> {
  const merged: Record<string, number | null> = {
    ...(defaults === 'top' ? DEFAULT_TOP_NGRAM_CHAR_FRAC : DEFAULT_DUP_NGRAM_CHAR_FRAC),
    ...given,
  };
  return Object.entries(merged)
    .filter((entry): entry is [string, number] => entry[1] !== null)
    .map(([n, fraction]): [number, number] => [Number(n), fraction])
    .sort((a, b) => a[0] - b[0]);
}
