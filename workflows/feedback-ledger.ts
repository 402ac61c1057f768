import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  defineQuery,
  defineUpdate,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { FlywheelActivities } from '../activities';
import {
  FeedbackLedgerInput,
  InvalidFeedback,
  feedbackLedgerId,
  ledgerOfEvent,
  utf8Bytes,
  validateFeedbackBatch,
  type FeedbackAck,
  type FeedbackEvent,
  type FeedbackLedgerProgress,
  type FeedbackLedgerSummary,
  type FeedbackLedgerTotals,
  type FeedbackProblem,
} from '../lib/contracts/feedback';
import { validateSpec } from './invalid-spec-failure';
import { FlywheelKind, FlywheelRun } from './search-attributes';
import { taskQueueFor } from './task-queues';

/** Adds events to the ledger; returns once they are in its history, i.e. durable. */
export const feedbackSubmit = defineUpdate<FeedbackAck, [FeedbackEvent[]]>('submit');
export const feedbackLedgerProgress = defineQuery<FeedbackLedgerProgress>('progress');

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

interface Buffered {
  event: FeedbackEvent;
  bytes: number;
  /** Workflow time it was accepted: the flush interval runs from the oldest buffered event. */
  at: number;
}

function refuse(problems: FeedbackProblem[]): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'InvalidFeedback',
    message: new InvalidFeedback(problems).message,
    nonRetryable: true,
    details: [problems],
  });
}

/**
 * One UTC day's share of feedback (`feedback-<day>-<shard>`). `submit` updates append events, dropping ids this
 * ledger has seen; the ledger writes them to numbered partitions when a partition fills or its oldest event has
 * waited the flush interval, continues as new before its history grows large, and finishes once its day is over
 * (plus a grace period) and everything is written.
 */
export async function feedbackLedger(input: unknown): Promise<FeedbackLedgerSummary> {
  const spec = validateSpec('feedbackLedger', FeedbackLedgerInput, input);
  const { day, shard, carried, ...settings } = spec;
  const ledger = feedbackLedgerId(day, shard);
  const totals: FeedbackLedgerTotals = carried
    ? { ...carried.totals, runs: carried.totals.runs + 1 }
    : { accepted: 0, duplicates: 0, flushed: 0, partitions: 0, runs: 1 };
  const seen = new Set<string>(carried?.seenIds);
  /** Ids in the order they were accepted, so the newest can be carried into the next run. */
  const arrivals: string[] = [...(carried?.seenIds ?? [])];
  const buffer: Buffered[] = [];
  let bufferedBytes = 0;
  let nextPart = carried?.nextPart;
  let closing = false;
  /** Set in the same activation that ends the run: any later update must go to the next run. */
  let finished = false;
  let flushesThisRun = 0;

  setHandler(feedbackLedgerProgress, () => ({ day, shard, ...totals, buffered: buffer.length, nextPart, closing }));

  setHandler(
    feedbackSubmit,
    (events) => {
      const at = Date.now();
      let accepted = 0;
      let duplicates = 0;
      for (const event of events) {
        if (seen.has(event.id)) {
          duplicates++;
          continue;
        }
        seen.add(event.id);
        arrivals.push(event.id);
        const bytes = utf8Bytes(JSON.stringify(event));
        buffer.push({ event, bytes, at });
        bufferedBytes += bytes;
        accepted++;
      }
      totals.accepted += accepted;
      totals.duplicates += duplicates;
      return { accepted, duplicates };
    },
    {
      // Runs before the update enters history: a refused batch leaves no trace and nothing half-accepted.
      validator: (events: unknown) => {
        if (finished) {
          throw ApplicationFailure.create({
            type: 'FeedbackLedgerRollover',
            message: `Ledger ${ledger} is handing over to its next run; retry the batch.`,
          });
        }
        if (!Array.isArray(events))
          throw refuse([{ index: 0, field: '(batch)', message: 'submit takes one argument: an array of events' }]);
        const problems = validateFeedbackBatch(events, settings);
        const bad = new Set(problems.map((p) => p.index));
        events.forEach((event: FeedbackEvent, index) => {
          if (bad.has(index)) return;
          const owner = ledgerOfEvent(event, settings.shards).workflowId;
          if (owner !== ledger)
            problems.push({
              index,
              field: '(event)',
              message: `belongs to ledger ${owner}, not ${ledger} (with ${settings.shards} shards)`,
            });
        });
        if (problems.length > 0) throw refuse(problems.sort((a, b) => a.index - b.index));
        if (bufferedBytes > settings.backlogBytes) {
          throw ApplicationFailure.create({
            type: 'FeedbackBacklog',
            message:
              `Ledger ${ledger} holds ${bufferedBytes} bytes not yet written to storage (limit ` +
              `${settings.backlogBytes}): the flush activity is failing or slow. Retry the batch shortly.`,
          });
        }
      },
    },
  );

  const io = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('io'),
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '10 seconds',
    // No attempt limit: these events are acknowledged already, so the ledger waits for storage rather than drop them.
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
  });

  /** Writes the oldest buffered events (up to a partition's worth) as the next partition. */
  async function flushOne(): Promise<void> {
    let count = 0;
    let bytes = 0;
    while (
      count < buffer.length &&
      count < settings.flushEvents &&
      (count === 0 || bytes + buffer[count].bytes <= settings.flushBytes)
    ) {
      bytes += buffer[count].bytes;
      count++;
    }
    const part = nextPart!; // known before the first flush (see below)
    const events = buffer.slice(0, count).map((b) => b.event);
    // Updates keep appending while the partition is written; only these first `count` leave the buffer.
    await io.flushFeedback({ day, shard, part, events });
    buffer.splice(0, count);
    bufferedBytes -= bytes;
    nextPart = part + 1;
    flushesThisRun++;
    totals.flushed += count;
    totals.partitions++;
  }

  /** Flushes until nothing is buffered and no handler runs; the caller then ends the run in the same activation. */
  async function drain(): Promise<void> {
    for (;;) {
      while (buffer.length > 0) await flushOne();
      await condition(allHandlersFinished);
      if (buffer.length === 0) return;
    }
  }

  /** The newest ids, up to the carry budget: duplicates come from retried submissions, which follow the original soon. */
  function newestIds(): string[] {
    let budget = settings.carriedIdBytes;
    let from = arrivals.length;
    while (from > 0 && budget >= arrivals[from - 1].length + 3) budget -= arrivals[--from].length + 3;
    return arrivals.slice(from);
  }

  if (!carried) {
    upsertSearchAttributes([
      { key: FlywheelKind, value: 'feedback' },
      { key: FlywheelRun, value: ledger },
    ]);
  }
  // A first run looks at storage once: a day reopened by a late event goes on numbering after its last partition.
  // Flushes start only after this, so every partition has its number.
  nextPart ??= await io.nextFeedbackPart({ day, shard });

  const closeAt = Date.parse(`${day}T00:00:00Z`) + DAY_MS + settings.closeAfterHours * HOUR_MS;
  const full = () => buffer.length >= settings.flushEvents || bufferedBytes >= settings.flushBytes;
  for (;;) {
    if (buffer.length === 0) {
      const left = closeAt - Date.now();
      if (left <= 0) break;
      // Re-armed at most daily, so a ledger for a far-off day never needs one huge timer.
      await condition(() => buffer.length > 0, Math.min(left, DAY_MS));
      continue;
    }
    const due = buffer[0].at + settings.flushIntervalMs - Date.now();
    if (!full() && due > 0) await condition(full, due);
    await flushOne();
    const info = workflowInfo();
    if (
      info.continueAsNewSuggested ||
      info.historySize >= settings.historyBytesPerRun ||
      flushesThisRun >= settings.flushesPerRun
    ) {
      await drain();
      finished = true;
      return continueAsNew<typeof feedbackLedger>({
        ...settings,
        day,
        shard,
        carried: { nextPart: nextPart!, seenIds: newestIds(), totals },
      });
    }
  }
  closing = true;
  await drain();
  finished = true;
  return { day, shard, ...totals };
}
