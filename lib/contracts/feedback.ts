import { z } from 'zod';
import { FlywheelError } from '../common';

const KiB = 1024;
const MiB = 1024 * KiB;

/** Defaults shared by the client, the CLI and the ledger workflow; FLYWHEEL_FEEDBACK_* variables override them. */
export const FEEDBACK_DEFAULTS = {
  shards: 4,
  maxEventBytes: 64 * KiB,
} as const;

/** A type error that tells a missing field from a wrong one. */
const expected = (what: string) => ({
  error: (issue: { input?: unknown }) => (issue.input === undefined ? `required: ${what}` : what),
});

/**
 * A rating is either a thumb or a score. Scores run from 0 (worst) to 1 (best), so a thumb up reads as 1 and a thumb
 * down as 0 wherever the two are compared.
 */
export const FeedbackRating = z.union(
  [
    z.object({ thumbs: z.enum(['up', 'down'], { error: "'up' or 'down'" }) }).strict(),
    z
      .object({
        score: z
          .number({ error: 'a number from 0 (worst) to 1 (best)' })
          .min(0, 'a number from 0 (worst) to 1 (best)')
          .max(1, 'a number from 0 (worst) to 1 (best)'),
      })
      .strict(),
  ],
  expected("either { thumbs: 'up' | 'down' } or { score: a number from 0 (worst) to 1 (best) }"),
);
export type FeedbackRating = z.infer<typeof FeedbackRating>;

/**
 * One piece of user feedback on one model response. Unknown fields are refused, so a typo is caught at the edge.
 * A `modelVersion` the registry does not know is kept: curation flags it, intake never drops it.
 */
export const FeedbackEvent = z
  .object({
    id: z
      .string(expected('a unique id string'))
      .regex(/^[!-~]{1,128}$/, 'printable ASCII without spaces, 1 to 128 characters')
      .describe('unique per event: a resubmitted id is dropped as a duplicate'),
    ts: z.iso
      .datetime({ offset: true, ...expected('an ISO 8601 time with a zone, e.g. 2026-03-01T12:00:00Z') })
      .describe('when the feedback was given; its UTC day picks the ledger'),
    modelVersion: z
      .string(expected('the model version that wrote the response'))
      .min(1, 'the model version that wrote the response')
      .max(200, 'at most 200 characters')
      .describe('the model version that wrote the response (unknown versions are kept)'),
    prompt: z
      .string(expected('the prompt, a string'))
      .min(1, 'the prompt the model answered')
      .describe('what the user asked'),
    response: z.string(expected('the response, a string')).describe('what the model answered'),
    rating: FeedbackRating,
    correction: z
      .string({ error: 'a string' })
      .min(1, 'a corrected response, or leave the field out')
      .optional()
      .describe('what the response should have been'),
    tags: z
      .array(z.string({ error: 'a string' }).min(1).max(64, 'at most 64 characters'), { error: 'a list of strings' })
      .max(32, 'at most 32 tags')
      .optional(),
    user: z
      .string({ error: 'a string' })
      .regex(/^[0-9a-f]{32,128}$/, 'a lowercase hex hash of the user id (32 to 128 characters), never the raw id')
      .optional()
      .describe('a hash of the user id, e.g. its sha256 in hex'),
  })
  .strict();
export type FeedbackEvent = z.infer<typeof FeedbackEvent>;

export interface FeedbackProblem {
  /** Position of the bad event in the submitted batch (0-based). */
  index: number;
  /** Dotted path inside the event, e.g. `rating.score`; `(event)` for the event as a whole. */
  field: string;
  message: string;
}

const SHOWN_PROBLEMS = 20;

/**
 * A batch with at least one bad event: refused whole, listing every problem. Never retried. `accepted` is non-zero
 * only when ledgers running with stricter limits than the caller's refused their share after others took theirs.
 */
export class InvalidFeedback extends FlywheelError {
  readonly exitCode = 2;
  constructor(
    readonly problems: FeedbackProblem[],
    readonly accepted = 0,
  ) {
    const shown = problems.slice(0, SHOWN_PROBLEMS).map((p) => `  event ${p.index}: ${p.field}: ${p.message}`);
    if (problems.length > SHOWN_PROBLEMS) shown.push(`  ... and ${problems.length - SHOWN_PROBLEMS} more`);
    const count = `${problems.length} problem${problems.length === 1 ? '' : 's'}`;
    super(
      'InvalidFeedback',
      (accepted === 0
        ? `Feedback batch refused, nothing accepted (${count}):\n`
        : `Feedback batch partly refused (${count}); ${accepted} events for other ledgers were accepted:\n`) +
        shown.join('\n') +
        '\nFix these events and submit the batch again (ids already accepted are dropped as duplicates).',
      { retryable: false, details: problems },
    );
  }
}

export interface FeedbackLimits {
  /** Largest event, in bytes of its JSON (default 64 KiB). */
  maxEventBytes?: number;
}

/** UTF-8 length of a string, without Buffer or TextEncoder (workflow code has neither for certain). */
export function utf8Bytes(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i++;
      } else bytes += 3;
    } else bytes += 3;
  }
  return bytes;
}

/** Bytes of a value as JSON; 0 for what JSON cannot hold (the schema refuses that anyway). */
function jsonBytes(value: unknown): number {
  try {
    return utf8Bytes(JSON.stringify(value) ?? '');
  } catch {
    return 0;
  }
}

/** Every problem of every event in `events`, by index and field; empty when the batch is good. */
export function validateFeedbackBatch(events: readonly unknown[], limits: FeedbackLimits = {}): FeedbackProblem[] {
  return checkBatch(events, limits).problems;
}

/** The batch as typed events, or InvalidFeedback naming every bad event and field. */
export function parseFeedbackBatch(events: readonly unknown[], limits: FeedbackLimits = {}): FeedbackEvent[] {
  const { parsed, problems } = checkBatch(events, limits);
  if (problems.length > 0) throw new InvalidFeedback(problems);
  return parsed;
}

function checkBatch(
  events: readonly unknown[],
  limits: FeedbackLimits,
): { parsed: FeedbackEvent[]; problems: FeedbackProblem[] } {
  const maxBytes = limits.maxEventBytes ?? FEEDBACK_DEFAULTS.maxEventBytes;
  const parsed: FeedbackEvent[] = [];
  const problems: FeedbackProblem[] = [];
  events.forEach((event, index) => {
    const result = FeedbackEvent.safeParse(event);
    if (result.success) parsed.push(result.data);
    else {
      for (const issue of result.error.issues) {
        const at = issue.path.map(String);
        if (issue.code === 'unrecognized_keys') {
          for (const key of issue.keys)
            problems.push({ index, field: [...at, key].join('.'), message: 'unknown field' });
        } else problems.push({ index, field: at.length ? at.join('.') : '(event)', message: issue.message });
      }
    }
    const bytes = jsonBytes(event);
    if (bytes > maxBytes) {
      problems.push({
        index,
        field: '(event)',
        message: `${bytes} bytes as JSON, over the ${maxBytes}-byte limit; shorten the prompt, response or correction`,
      });
    }
  });
  return { parsed, problems };
}

/** The UTC day (YYYY-MM-DD) of an event time: names the event's ledger and its partition folder. */
export function feedbackDay(ts: string): string {
  return new Date(ts).toISOString().slice(0, 10);
}

/**
 * The shard of an event id: 32-bit FNV-1a over its UTF-16 code units, modulo `shards`. Stable across processes and
 * versions, so every client sends a given id to the same ledger, where its duplicates are dropped.
 */
export function feedbackShard(id: string, shards: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % shards;
}

/** `feedback-<YYYY-MM-DD>-<shard>`: the ledger workflow that owns a day's share of events. */
export function feedbackLedgerId(day: string, shard: number): string {
  return `feedback-${day}-${shard}`;
}

export interface FeedbackLedgerRef {
  day: string;
  shard: number;
  workflowId: string;
}

export function ledgerOfEvent(event: Pick<FeedbackEvent, 'id' | 'ts'>, shards: number): FeedbackLedgerRef {
  const day = feedbackDay(event.ts);
  const shard = feedbackShard(event.id, shards);
  return { day, shard, workflowId: feedbackLedgerId(day, shard) };
}

/** How a ledger batches, flushes, rolls its history over and closes. Every field has a default. */
export const FeedbackLedgerSettings = z
  .object({
    shards: z
      .number()
      .int()
      .min(1)
      .max(1024)
      .default(FEEDBACK_DEFAULTS.shards)
      .describe('ledgers per day; must match every client'),
    maxEventBytes: z
      .number()
      .int()
      .min(1024)
      .max(MiB)
      .default(FEEDBACK_DEFAULTS.maxEventBytes)
      .describe('largest event, bytes of JSON'),
    flushEvents: z.number().int().min(1).max(100_000).default(2000).describe('events per partition at most'),
    flushBytes: z
      .number()
      .int()
      .min(64 * KiB)
      .max(MiB)
      .default(384 * KiB)
      .describe('bytes of events per partition at most (the flush activity carries them: Temporal warns past 512 KiB)'),
    flushIntervalMs: z
      .number()
      .int()
      .min(10)
      .max(600_000)
      .default(2000)
      .describe('a partly full buffer is flushed this long after its first event'),
    flushesPerRun: z
      .number()
      .int()
      .min(1)
      .default(200)
      .describe('flushes before the ledger continues as new (sooner when Temporal suggests it)'),
    historyBytesPerRun: z
      .number()
      .int()
      .min(MiB)
      .max(40 * MiB)
      .default(8 * MiB)
      .describe('history size at which the ledger continues as new (events enter history twice: submit and flush)'),
    carriedIdBytes: z
      .number()
      .int()
      .min(0)
      .max(384 * KiB)
      .default(128 * KiB)
      .describe('ids of the newest events carried into the next run for duplicate checks, in bytes'),
    backlogBytes: z
      .number()
      .int()
      .min(MiB)
      .default(16 * MiB)
      .describe('unflushed bytes past which new batches are refused until storage catches up'),
    closeAfterHours: z
      .number()
      .min(0)
      .max(24 * 30)
      .default(6)
      .describe('the ledger finishes this long after its UTC day ends, once flushed'),
  })
  .strict();
export type FeedbackLedgerSettings = z.infer<typeof FeedbackLedgerSettings>;
export type FeedbackLedgerSettingsInput = z.input<typeof FeedbackLedgerSettings>;

export const FeedbackLedgerTotals = z
  .object({
    accepted: z.number().int().min(0),
    duplicates: z.number().int().min(0),
    flushed: z.number().int().min(0),
    partitions: z.number().int().min(0),
    runs: z.number().int().min(1),
  })
  .strict();
export type FeedbackLedgerTotals = z.infer<typeof FeedbackLedgerTotals>;

/** The ledger workflow's one argument; `carried` is set only by its own continue-as-new. */
export const FeedbackLedgerInput = FeedbackLedgerSettings.extend({
  day: z
    .string()
    .regex(/^\d{4}-\d{2}-\d{2}$/, 'a UTC day, YYYY-MM-DD')
    .refine((d) => !Number.isNaN(Date.parse(`${d}T00:00:00Z`)), 'a real calendar day'),
  shard: z.number().int().min(0),
  carried: z
    .object({
      nextPart: z.number().int().min(0),
      seenIds: z.array(z.string()),
      totals: FeedbackLedgerTotals,
    })
    .strict()
    .optional(),
})
  .strict()
  .refine((input) => input.shard < input.shards, { message: 'shard must be below shards', path: ['shard'] });
export type FeedbackLedgerInput = z.infer<typeof FeedbackLedgerInput>;
export type FeedbackLedgerStart = z.input<typeof FeedbackLedgerInput>;

/** What one `submit` update did: events new to the ledger, and events it had seen already (dropped). */
export interface FeedbackAck {
  accepted: number;
  duplicates: number;
}

export interface FeedbackLedgerProgress extends FeedbackLedgerTotals {
  day: string;
  shard: number;
  /** Accepted, not yet in a partition. */
  buffered: number;
  /** Number of the next partition written; unknown until the ledger has looked at storage. */
  nextPart?: number;
  closing: boolean;
}

/** What the ledger returns when it closes. */
export type FeedbackLedgerSummary = FeedbackLedgerTotals & { day: string; shard: number };

/** What the flush activity wrote: one partition. */
export interface FeedbackPartitionWritten {
  uri: string;
  part: number;
  events: number;
  bytes: number;
  sha256: string;
}
