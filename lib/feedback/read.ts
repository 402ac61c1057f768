import type { TieredStore } from '../storage';
import type { FeedbackEvent } from '../contracts/feedback';
import { CorruptFeedbackPartition } from './errors';
import {
  comparePartitions,
  decodeFeedbackPartition,
  FEEDBACK_ROOT,
  feedbackPartitionUri,
  parseFeedbackPartitionUri,
  type FeedbackPartitionId,
} from './partitions';

/**
 * Where a reader stopped: for each ledger (`<day>/<shard>`), the number of the next partition it has not read.
 * Kept per ledger, not as one position, because ledgers flush independently and a late event can reopen an old
 * day: a single (day, shard, part) position would skip partitions written behind it.
 */
export interface FeedbackWatermark {
  next: Record<string, number>;
}

export interface ReadFeedbackOptions {
  /** Read only partitions after this watermark (default: everything). */
  since?: FeedbackWatermark;
  /** Read at most this many partitions; the watermark then covers just those, and `more` says whether to go on. */
  maxPartitions?: number;
}

export interface FeedbackRead {
  /** New events, in partition order, each id once. */
  events: FeedbackEvent[];
  /** Pass as `since` on the next read. */
  watermark: FeedbackWatermark;
  /** URIs of the partitions read. */
  partitions: string[];
  /** Events dropped because an earlier partition of this read had their id. */
  duplicates: number;
  /** More partitions are waiting (only with maxPartitions). */
  more: boolean;
}

export const EMPTY_FEEDBACK_WATERMARK: FeedbackWatermark = { next: {} };

function ledgerKey(p: Pick<FeedbackPartitionId, 'day' | 'shard'>): string {
  return `${p.day}/${p.shard}`;
}

/**
 * The partitions after `since`, in reading order. Per ledger only a gap-free run from its watermark counts: ledgers
 * write parts in sequence, so a missing number means "not visible yet", and reading past it would skip it for good.
 */
export async function listFeedbackPartitions(
  store: TieredStore,
  since: FeedbackWatermark = EMPTY_FEEDBACK_WATERMARK,
): Promise<FeedbackPartitionId[]> {
  const byLedger = new Map<string, FeedbackPartitionId[]>();
  for await (const entry of store.listAll(FEEDBACK_ROOT)) {
    const id = parseFeedbackPartitionUri(entry.uri);
    if (!id || id.part < (since.next[ledgerKey(id)] ?? 0)) continue;
    const key = ledgerKey(id);
    const list = byLedger.get(key) ?? [];
    list.push(id);
    byLedger.set(key, list);
  }
  const found: FeedbackPartitionId[] = [];
  for (const [key, parts] of byLedger) {
    parts.sort(comparePartitions);
    let expected = since.next[key] ?? 0;
    for (const p of parts) {
      if (p.part !== expected) break;
      found.push(p);
      expected++;
    }
  }
  return found.sort(comparePartitions);
}

/**
 * Feedback written since `since`: every partition after the watermark, parsed, with duplicate ids across them
 * dropped, and the watermark to pass next time. Curation calls this; it never changes storage.
 */
export async function readFeedback(store: TieredStore, opts: ReadFeedbackOptions = {}): Promise<FeedbackRead> {
  const since = opts.since ?? EMPTY_FEEDBACK_WATERMARK;
  const all = await listFeedbackPartitions(store, since);
  const chosen = opts.maxPartitions === undefined ? all : all.slice(0, opts.maxPartitions);
  const next = { ...since.next };
  const seen = new Set<string>();
  const events: FeedbackEvent[] = [];
  let duplicates = 0;
  for (const id of chosen) {
    const uri = feedbackPartitionUri(id);
    const bytes = await store.getBytes(uri);
    let partition: FeedbackEvent[];
    try {
      partition = await decodeFeedbackPartition(bytes);
    } catch (err) {
      throw new CorruptFeedbackPartition(uri, err);
    }
    for (const event of partition) {
      if (seen.has(event.id)) duplicates++;
      else {
        seen.add(event.id);
        events.push(event);
      }
    }
    next[ledgerKey(id)] = id.part + 1;
  }
  return {
    events,
    watermark: { next },
    partitions: chosen.map(feedbackPartitionUri),
    duplicates,
    more: chosen.length < all.length,
  };
}
