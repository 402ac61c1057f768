import { createHash } from 'node:crypto';
import type { FlywheelClient } from '../../client/flywheel-client';
import {
  decodeFeedbackPartition,
  FEEDBACK_BATCHER_DEFAULTS,
  FEEDBACK_ROOT,
  FeedbackBatcher,
  parseFeedbackPartitionUri,
} from '../../lib/feedback';
import {
  FEEDBACK_DEFAULTS,
  ledgerOfEvent,
  type FeedbackEvent,
  type FeedbackLedgerProgress,
} from '../../lib/spec/feedback';
import type { TieredStore } from '../../lib/storage';
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

/** A realistic event (about 900 bytes of JSON) with an id unique to this run. */
function loadEvent(run: string, n: number): FeedbackEvent {
  return {
    id: `${run}-${n}`,
    ts: new Date().toISOString(),
    modelVersion: MODELS[n % MODELS.length],
    prompt: `How do I rotate the API key for project ${n % 97}? ` + 'The docs mention a settings page. '.repeat(4),
    response:
      `Open Settings → API keys for project ${n % 97} and choose Rotate. ` + 'Old keys stop working. '.repeat(12),
    rating: n % 5 === 0 ? { thumbs: 'down' } : { score: (n % 10) / 10 },
    tags: ['support', n % 2 ? 'web' : 'mobile'],
    user: createHash('sha256')
      .update(`user-${n % 5000}`)
      .digest('hex'),
  };
}

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
      const event = loadEvent(run, load.offered.length);
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

/** Waits until every ledger has written all it accepted to storage; the ledgers' own counts once it has. */
export async function waitFlushed(
  flywheel: FlywheelClient,
  ledgers: Iterable<string>,
  timeoutMs: number,
): Promise<FeedbackLedgerProgress[]> {
  const ids = [...ledgers];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const progress = await Promise.all(ids.map((id) => flywheel.feedbackProgress(id)));
    if (progress.every((p) => p.buffered === 0 && p.flushed === p.accepted)) return progress;
    if (Date.now() > deadline) {
      const behind = progress.filter((p) => p.buffered > 0 || p.flushed !== p.accepted);
      throw new Error(
        `feedback ledgers did not finish flushing within ${Math.round(timeoutMs / 1000)} s: ` +
          behind.map((p) => `${p.day}/${p.shard} flushed ${p.flushed} of ${p.accepted}`).join(', '),
      );
    }
    await sleep(250);
  }
}

/** How often each event id is in storage, counted over the raw partitions (no reader dedup). */
export async function storedFeedbackIds(
  store: TieredStore,
): Promise<{ counts: Map<string, number>; partitions: number }> {
  const counts = new Map<string, number>();
  let partitions = 0;
  for await (const entry of store.listAll(FEEDBACK_ROOT)) {
    if (!parseFeedbackPartitionUri(entry.uri)) continue;
    partitions += 1;
    for (const e of await decodeFeedbackPartition(await store.getBytes(entry.uri)))
      counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
  }
  return { counts, partitions };
}

/** Every offered id stored exactly once, and nothing else stored: the counts that say otherwise. */
export function compareStored(
  offered: readonly string[],
  stored: Map<string, number>,
): { stored: number; lost: number; duplicated: number; unexpected: number } {
  const wanted = new Set(offered);
  let lost = 0;
  for (const id of wanted) if (!stored.has(id)) lost += 1;
  let duplicated = 0;
  let unexpected = 0;
  for (const [id, n] of stored) {
    if (n > 1) duplicated += 1;
    if (!wanted.has(id)) unexpected += 1;
  }
  return { stored: stored.size, lost, duplicated, unexpected };
}
