import { Context } from '@temporalio/activity';
import {
  encodeFeedbackPartition,
  feedbackLedgerPrefix,
  feedbackPartitionUri,
  parseFeedbackPartitionUri,
} from '../lib/feedback/partitions';
import type { TieredStore } from '../lib/storage';
import type { FeedbackEvent, FeedbackPartitionWritten } from '../lib/contracts/feedback';
import { recordFeedback } from '../lib/metrics';
import { withFailureMapping } from './failures';

export interface FeedbackDeps {
  store: TieredStore;
}

export function createFeedbackActivities({ store }: FeedbackDeps) {
  return {
    /**
     * Writes one partition of a ledger. The name comes from the ledger and part number alone, and the bytes from the
     * events alone, so a retry after a crash rewrites the same object: never a second copy of an event.
     */
    async flushFeedback(input: {
      day: string;
      shard: number;
      part: number;
      events: FeedbackEvent[];
    }): Promise<FeedbackPartitionWritten> {
      return withFailureMapping(async () => {
        const ctx = Context.current();
        const uri = feedbackPartitionUri(input);
        // A slow store must not look like a dead worker: withFailureMapping re-sends this beat while the put runs.
        ctx.heartbeat({ uri });
        const body = await encodeFeedbackPartition(input.events);
        const put = await store.put(uri, body, { contentType: 'application/gzip' });
        recordFeedback(ctx.metricMeter, input.events.length);
        return { uri, part: input.part, events: input.events.length, bytes: put.bytes, sha256: put.sha256 };
      });
    },

    /** The part number a new ledger run starts at: one past the highest already in storage (a reopened day). */
    async nextFeedbackPart(input: { day: string; shard: number }): Promise<number> {
      return withFailureMapping(async () => {
        let next = 0;
        for await (const entry of store.listAll(feedbackLedgerPrefix(input.day, input.shard))) {
          const id = parseFeedbackPartitionUri(entry.uri);
          if (id && id.day === input.day && id.shard === input.shard) next = Math.max(next, id.part + 1);
        }
        return next;
      });
    },
  };
}
