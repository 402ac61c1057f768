import { CancelledFailure, Context } from '@temporalio/activity';
import type { SegmentInput, SegmentSummary } from '../lib/contracts/training';
import { runExternalSegment } from '../lib/external-trainer';
import type { TieredStore } from '../lib/storage';
import { withFailureMapping } from './failures';
import { segmentHooks } from './segment-hooks';

export function createExternalTrainingActivities({ store }: { store: TieredStore }) {
  return {
    /**
     * One segment of an external trainer (lib/external-trainer/segment.ts); a cancellation terminates its process
     * group and leaves the last checkpoint it reported committed.
     */
    async externalSegment(input: SegmentInput): Promise<SegmentSummary> {
      return withFailureMapping(async () => {
        const ctx = Context.current();
        const outcome = await runExternalSegment({ store, input, hooks: segmentHooks(ctx) });
        if (outcome.status === 'cancelled') {
          // Stopped for another reason than a cancel request (a timeout, the worker shutting down): the SDK's own.
          const reason: unknown = ctx.cancellationSignal.reason;
          if (!ctx.cancellationDetails?.cancelRequested && reason instanceof Error) throw reason;
          throw new CancelledFailure(outcome.message);
        }
        return outcome.summary;
      });
    },
  };
}
