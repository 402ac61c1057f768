import type { FlywheelClient } from '../../client/flywheel-client';
import { FEEDBACK_BATCHER_DEFAULTS, FeedbackBatcher } from '../../lib/feedback';
import { FEEDBACK_DEFAULTS, ledgerOfEvent } from '../../lib/contracts/feedback';
import { supportFeedbackEvent } from '../support/feedback-storage';
import { sleep } from '../faults/harness';

/**
 * The batcher's own defaults (≤ 500 events or 50 ms, 4 batches in flight): the load run checks that what a service
 * gets without tuning keeps up with 1,000 events/s while pipelines run.
 */
export const LOAD_BATCHING = FEEDBACK_BATCHER_DEFAULTS;
/** Model versions the events are spread over, as feedback on several deployed models would be. */
const MODELS = ['support-bot-v7', 'support-bot-v8', 'search-helper-v2'];
/** How often the pacer wakes to offer the events due by then. */
const TICK_MS = 5;

/** What the paced feedback load did, before anything is read back. */
export interface FeedbackLoad {
  /** Ids of every event offered, in order. */
  offered: string[];
  /** Ids whose submit resolved: accepted durably (or a duplicate of an accepted one). */
  acknowledged: Set<string>;
  /** Per event: ms from offering it until its submit resolved. */
  ackLatencyMs: number[];
  /** Per batch: ms one `submitFeedback` call took (the Update-with-Start to each ledger it touched). */
  batchLatencyMs: number[];
  /** Submits that rejected, with the first reason. */
  failures: number;
  firstFailure?: string;
  /** Ledger workflow ids the events went to. */
  ledgers: Set<string>;
  /** Seconds the events were offered over. */
  offerSeconds: number;
  /** Seconds from the first event offered until the last acknowledgement. */
  ackSeconds: number;
}

/**
 * Offers `rate` events a second for `seconds`, evenly paced (every TICK_MS, the events due by then), each through
 * FlywheelClient.submitFeedback behind a FeedbackBatcher, as a service's request handlers would. Resolves once
 * every offered event's submit has settled.
 */
export async function offerFeedback(
  flywheel: FlywheelClient,
  run: string,
  rate: number,
  seconds: number,
): Promise<FeedbackLoad> {
  const load: FeedbackLoad = {
    offered: [],
    acknowledged: new Set(),
    ackLatencyMs: [],
    batchLatencyMs: [],
    failures: 0,
    ledgers: new Set(),
    offerSeconds: 0,
    ackSeconds: 0,
  };
  const batcher = new FeedbackBatcher(async (events) => {
    const started = performance.now();
    await flywheel.submitFeedback(events);
    load.batchLatencyMs.push(performance.now() - started);
  }, LOAD_BATCHING);
  const total = rate * seconds;
  const acks: Promise<void>[] = [];
  const t0 = performance.now();
  let lastAck = t0;
  while (load.offered.length < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * rate));
    while (load.offered.length < due) {
      const n = load.offered.length;
      const event = supportFeedbackEvent(run, n, { modelVersion: MODELS[n % MODELS.length] });
      load.offered.push(event.id);
      load.ledgers.add(ledgerOfEvent(event, FEEDBACK_DEFAULTS.shards).workflowId);
      const offeredAt = performance.now();
      acks.push(
        batcher.add(event).then(
          () => {
            lastAck = performance.now();
            load.ackLatencyMs.push(lastAck - offeredAt);
            load.acknowledged.add(event.id);
          },
          (err: unknown) => {
            load.failures += 1;
            load.firstFailure ??= err instanceof Error ? err.message.split('\n')[0] : String(err);
          },
        ),
      );
    }
    await sleep(TICK_MS);
  }
  load.offerSeconds = (performance.now() - t0) / 1000;
  await batcher.close();
  await Promise.all(acks);
  load.ackSeconds = (lastAck - t0) / 1000;
  return load;
}
