import { createHash } from 'node:crypto';
import { decodeFeedbackPartition, FEEDBACK_ROOT, parseFeedbackPartitionUri } from '../../lib/feedback';
import type { FeedbackEvent } from '../../lib/contracts/feedback';
import type { TieredStore } from '../../lib/storage';

/** A realistic feedback event (about 900 bytes of JSON) with the id `<run>-<n>`, as a support bot's users send it. */
export function supportFeedbackEvent(
  run: string,
  n: number,
  opts: { ts?: string; modelVersion?: string } = {},
): FeedbackEvent {
  return {
    id: `${run}-${n}`,
    ts: opts.ts ?? new Date().toISOString(),
    modelVersion: opts.modelVersion ?? 'support-bot-v7',
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

/** How many times each event id is in storage, over the raw partitions (without the reader's dedup). */
export async function feedbackIdsInStorage(
  store: TieredStore,
): Promise<{ counts: Map<string, number>; partitions: number }> {
  const counts = new Map<string, number>();
  let partitions = 0;
  for await (const entry of store.listAll(FEEDBACK_ROOT)) {
    if (!parseFeedbackPartitionUri(entry.uri)) continue;
    partitions += 1;
    for (const e of await decodeFeedbackPartition(await store.getBytes(entry.uri))) {
      counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
    }
  }
  return { counts, partitions };
}

/** Every offered id stored exactly once, and nothing else stored: the counts that say otherwise. */
export function compareStored(
  offered: Iterable<string>,
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
