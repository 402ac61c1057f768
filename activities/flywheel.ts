import { Context } from '@temporalio/activity';
import type { FlywheelSpec, ModelScores } from '../lib/contracts/flywheel';
import { composeDataset, type Composition } from '../lib/flywheel/compose';
import { curateFeedback, type CuratedFeedback } from '../lib/flywheel/curate';
import { recordFlywheelDecision, type FlywheelDecision } from '../lib/flywheel/decision';
import { scoreModels, type ModelScoring } from '../lib/flywheel/scores';
import type { TieredStore } from '../lib/storage';
import { withFailureMapping } from './failures';

export function createFlywheelActivities({ store }: { store: TieredStore }) {
  return {
    /** Feedback since the model's watermark → training documents for the pipeline (lib/flywheel/curate.ts). */
    async curateFeedback(input: { spec: FlywheelSpec; decisionId: string }): Promise<CuratedFeedback> {
      return withFailureMapping(async () => {
        const ctx = Context.current();
        return curateFeedback({ store, ...input, onRead: (events) => ctx.heartbeat({ events }) });
      });
    },

    /** An incremental dataset version: the base's shards plus the addition's (lib/flywheel/compose.ts). */
    async composeDataset(input: Composition): Promise<string> {
      return withFailureMapping(() => composeDataset(store, input));
    },

    /** Scores model versions on the same data: the base dataset's validation split and the new feedback's. */
    async scoreModels(input: Omit<ModelScoring, 'store' | 'signal' | 'onScored'>): Promise<ModelScores[]> {
      return withFailureMapping(async () => {
        const ctx = Context.current();
        return scoreModels({
          store,
          ...input,
          signal: ctx.cancellationSignal,
          onScored: (scored) => ctx.heartbeat({ scored }),
        });
      });
    },

    /** Records the decision in the registry, promotes when told, moves the feedback watermark. Safe to retry. */
    async recordFlywheelDecision(input: FlywheelDecision): Promise<{ champion?: string }> {
      return withFailureMapping(() => recordFlywheelDecision(store, input));
    },
  };
}
