import { setTimeout as sleep } from 'node:timers/promises';
import { WithStartWorkflowOperation, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { parseSpec } from '../lib/contracts/invalid-spec';
import {
  FeedbackLedgerSettings,
  InvalidFeedback,
  ledgerOfEvent,
  parseFeedbackBatch,
  utf8Bytes,
  type FeedbackAck,
  type FeedbackEvent,
  type FeedbackLedgerRef,
  type FeedbackLedgerSettingsInput,
  type FeedbackLedgerStart,
  type FeedbackProblem,
} from '../lib/contracts/feedback';
import type { feedbackLedger } from '../workflows';

export interface FeedbackClientOptions {
  /** Ledgers per day (FLYWHEEL_FEEDBACK_SHARDS, default 4); every process submitting feedback must agree. */
  shards?: number;
  /** Largest event in bytes of JSON (FLYWHEEL_FEEDBACK_MAX_EVENT_BYTES, default 64 KiB). */
  maxEventBytes?: number;
  /** How the ledgers this client starts batch, flush, roll over and close; a running ledger keeps its own. */
  ledger?: Omit<FeedbackLedgerSettingsInput, 'shards' | 'maxEventBytes'>;
}

/** What a submit did, over all the ledgers it touched. */
export interface FeedbackReceipt {
  /** Events new to their ledger, now durable. */
  accepted: number;
  /** Events whose id their ledger had already accepted: dropped, the earlier copy stands. */
  duplicates: number;
  /** Workflow ids of the ledgers written to. */
  ledgers: string[];
}

/** Bounds on one update: Temporal refuses payloads over 2 MiB and warns past 512 KiB. */
const UPDATE_MAX_EVENTS = 1000;
const UPDATE_MAX_BYTES = 384 * 1024;
/** Refusals a retry fixes: a ledger handing over to its next run, or one whose storage is behind. */
const RETRYABLE_REFUSALS = new Set(['FeedbackLedgerRollover', 'FeedbackBacklog']);
const RETRY_DEADLINE_MS = 60_000;

interface Chunk {
  ledger: FeedbackLedgerRef;
  events: FeedbackEvent[];
  /** Each event's index in the caller's batch, to name it in a refusal. */
  indexes: number[];
}

/**
 * Validates the whole batch, then sends each ledger its share as one Update-with-Start (in parallel); resolves when
 * every ledger has the events in its history. A bad batch is refused before anything is sent. After any other error,
 * submitting the same batch again is safe: ledgers drop ids they have.
 */
export async function submitFeedbackBatch(
  client: Client,
  taskQueue: string,
  events: readonly unknown[],
  opts: FeedbackClientOptions = {},
): Promise<FeedbackReceipt> {
  const settings = parseSpec('feedbackLedger', FeedbackLedgerSettings, {
    ...opts.ledger,
    shards: opts.shards,
    maxEventBytes: opts.maxEventBytes,
  });
  const parsed = parseFeedbackBatch(events, settings);
  const chunks = chunkByLedger(parsed, settings.shards);
  const results = await Promise.allSettled(chunks.map((chunk) => sendChunk(client, taskQueue, settings, chunk)));
  const problems: FeedbackProblem[] = [];
  let failure: unknown;
  const receipt: FeedbackReceipt = { accepted: 0, duplicates: 0, ledgers: [] };
  results.forEach((result, i) => {
    if (result.status === 'fulfilled') {
      receipt.accepted += result.value.accepted;
      receipt.duplicates += result.value.duplicates;
    } else if (result.reason instanceof InvalidFeedback) {
      // A ledger refused with indexes into its chunk: name the events by their place in the caller's batch.
      for (const p of result.reason.problems) problems.push({ ...p, index: chunks[i].indexes[p.index] ?? p.index });
    } else failure ??= result.reason;
  });
  if (problems.length > 0)
    throw new InvalidFeedback(
      problems.sort((a, b) => a.index - b.index),
      receipt.accepted,
    );
  if (failure !== undefined) throw failure;
  receipt.ledgers = [...new Set(chunks.map((c) => c.ledger.workflowId))].sort();
  return receipt;
}

function chunkByLedger(events: FeedbackEvent[], shards: number): Chunk[] {
  const open = new Map<string, Chunk & { bytes: number }>();
  const chunks: Chunk[] = [];
  events.forEach((event, index) => {
    const ledger = ledgerOfEvent(event, shards);
    const bytes = utf8Bytes(JSON.stringify(event));
    let chunk = open.get(ledger.workflowId);
    if (!chunk || chunk.events.length >= UPDATE_MAX_EVENTS || chunk.bytes + bytes > UPDATE_MAX_BYTES) {
      chunk = { ledger, events: [], indexes: [], bytes: 0 };
      open.set(ledger.workflowId, chunk);
      chunks.push(chunk);
    }
    chunk.events.push(event);
    chunk.indexes.push(index);
    chunk.bytes += bytes;
  });
  return chunks;
}

async function sendChunk(
  client: Client,
  taskQueue: string,
  settings: FeedbackLedgerSettings,
  { ledger, events }: Chunk,
): Promise<FeedbackAck> {
  const start: FeedbackLedgerStart = { ...settings, day: ledger.day, shard: ledger.shard };
  const deadline = Date.now() + RETRY_DEADLINE_MS;
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.workflow.executeUpdateWithStart<typeof feedbackLedger, FeedbackAck, [FeedbackEvent[]]>(
        'submit',
        {
          args: [events],
          // One operation per call: the SDK marks it used.
          startWorkflowOperation: new WithStartWorkflowOperation<typeof feedbackLedger>('feedbackLedger', {
            workflowId: ledger.workflowId,
            taskQueue,
            args: [start],
            workflowIdConflictPolicy: 'USE_EXISTING',
          }),
        },
      );
    } catch (err) {
      const refusal = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
      if (refusal instanceof ApplicationFailure && refusal.type === 'InvalidFeedback')
        throw new InvalidFeedback((refusal.details?.[0] as FeedbackProblem[] | undefined) ?? []);
      const retryable = refusal instanceof ApplicationFailure && RETRYABLE_REFUSALS.has(refusal.type ?? '');
      if (!retryable || Date.now() > deadline) throw err;
      await sleep(Math.min(50 * 2 ** attempt, 2000));
    }
  }
}
