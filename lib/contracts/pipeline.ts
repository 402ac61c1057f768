import { z } from 'zod';
import { SourceSpec } from '../collect/source-spec';
import { QualitySpec } from '../quality/spec';
import { TokenizerEncoding } from '../tokenize/encodings';

const MiB = 1024 * 1024;
const name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes, at most 63');

/**
 * Near-duplicate dedup (MinHash LSH) after exact dedup; off unless given. Bands × rows come from the threshold
 * (datasketch's optimal_param, leaning to recall since candidates are verified) unless `bands` fixes them.
 */
export const NearDedupSpec = z
  .object({
    threshold: z
      .number()
      .gt(0)
      .lt(1)
      .default(0.8)
      .describe('Jaccard similarity of word n-gram sets from which two documents are near duplicates'),
    ngram: z.number().int().min(1).max(64).default(5).describe('words per shingle'),
    numPerm: z.number().int().min(1).max(1024).default(128).describe('MinHash permutations (signature length)'),
    bands: z.number().int().min(1).optional().describe('fix the LSH bands (must divide numPerm)'),
    normalizeNumbers: z.boolean().default(false).describe('treat every run of digits as 0'),
    normalizeDiacritics: z.boolean().default(false).describe('fold accents and compatibility forms'),
    // Optional rather than defaulted: a default would change the digest of every existing spec with near dedup.
    verify: z
      .enum(['exact', 'estimate'])
      .optional()
      .describe(
        'check candidate pairs by the exact Jaccard of their shingle sets (exact, when left out: no pair below ' +
          "threshold is ever removed) or by the signatures' estimate (faster; no shingle sets stored)",
      ),
    against: z
      .string()
      .regex(/^(hot|warm|cold):\/\/\S+$/, 'a tier URI such as warm://datasets/<name>/<version>/manifest.json')
      .optional()
      .describe(
        'also dedup against an earlier dataset (its manifest URI) built with dedup.near: its documents stay, ' +
          'new documents that repeat them are dropped',
      ),
  })
  .strict()
  .refine((near) => near.bands === undefined || near.numPerm % near.bands === 0, {
    path: ['bands'],
    error: (issue) => {
      const near = issue.input as { numPerm?: number; bands?: number };
      return `numPerm ${near.numPerm ?? 128} is not divisible into ${near.bands} bands: choose bands that divide it`;
    },
    // Also when other fields are bad, so one error lists every problem.
    when: ({ value }) => {
      if (typeof value !== 'object' || value === null) return false; // the object's own issue says what is wrong
      const near = value as { numPerm?: unknown; bands?: unknown };
      const whole = (x: unknown) => Number.isInteger(x) && (x as number) >= 1;
      return whole(near.bands) && (near.numPerm === undefined || whole(near.numPerm));
    },
  });
export type NearDedupSpec = z.infer<typeof NearDedupSpec>;

/**
 * The data pipeline's one argument: sources in, tokenized WebDataset shards out. Every field but `dataset` and
 * `sources` has a default, so `{ "dataset": "demo", "sources": [{ "type": "sample" }] }` is a complete spec.
 */
export const PipelineSpec = z
  .object({
    dataset: name.describe('dataset name: names the output folder and the workflow id'),
    version: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'letters, digits, . _ -')
      .default('v1')
      .describe('dataset version; one spec per version'),
    sources: z.array(SourceSpec).min(1, 'at least one source').describe('where documents come from'),
    quality: QualitySpec.prefault({}).describe('quality filters and their thresholds'),
    dedup: z
      .object({
        exact: z.boolean().default(true).describe('drop documents whose normalized text repeats'),
        near: NearDedupSpec.optional().describe('drop near duplicates (MinHash LSH); off when absent'),
      })
      .strict()
      .default({ exact: true }),
    tokenizer: z
      .object({ encoding: TokenizerEncoding.default('cl100k_base') })
      .strict()
      .default({ encoding: 'cl100k_base' }),
    shards: z
      .object({
        targetBytes: z
          .number()
          .int()
          .min(64 * 1024)
          .default(256 * MiB)
          .describe('a shard closes once it reaches this size'),
        validationFraction: z.number().min(0).max(0.5).default(0.01).describe('share of documents in validation'),
      })
      .strict()
      .default({ targetBytes: 256 * MiB, validationFraction: 0.01 }),
    partitions: z
      .object({
        maxDocuments: z.number().int().min(1).default(20_000),
        maxBytes: z
          .number()
          .int()
          .min(1024)
          .default(64 * MiB),
      })
      .strict()
      .default({ maxDocuments: 20_000, maxBytes: 64 * MiB }),
    /** Collection units per activity at most: more means fewer, longer activities. */
    unitsPerBatch: z.number().int().min(1).max(10_000).default(16),
    // Optional rather than defaulted: a default would change the digest of every existing spec (and refuse reruns
    // of committed versions); the batches' bytes do not change the dataset, only how the work is spread.
    unitBytes: z
      .number()
      .int()
      .min(1024)
      .optional()
      .describe(
        'bytes of input per collection activity (64 MiB when left out): larger JSON lines files are read as byte ' +
          'ranges of this size in parallel, larger Parquet files as runs of row groups, smaller files are grouped ' +
          'up to it',
      ),
  })
  .strict();

export type PipelineSpec = z.infer<typeof PipelineSpec>;
export type PipelineInput = z.input<typeof PipelineSpec>;

export function pipelineWorkflowId(spec: Pick<PipelineSpec, 'dataset' | 'version'>): string {
  return `pipeline-${spec.dataset}-${spec.version}`;
}
