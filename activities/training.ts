import { Context } from '@temporalio/activity';
import {
  CheckpointManager,
  CheckpointNotFound,
  keepBestN,
  keepEveryNSteps,
  keepLastN,
  type RetentionPolicy,
} from '../lib/checkpoint';
import type { SegmentSummary, TrainingSpec } from '../lib/spec/training';
import { openVerified, readAll, readManifest, sha256Hex, type TieredStore } from '../lib/storage';
import type { DatasetMeta } from '../lib/pipeline/commit-dataset';
import { createTrainer, tokensFromShards } from '../lib/train';
import { withFailureMapping } from './failures';

function policiesOf(spec: TrainingSpec): RetentionPolicy[] {
  const policies: RetentionPolicy[] = [keepLastN(spec.retention.keepLast)];
  if (spec.retention.milestoneEvery) policies.push(keepEveryNSteps(spec.retention.milestoneEvery));
  if (spec.retention.keepBestByValLoss) policies.push(keepBestN(spec.retention.keepBestByValLoss, 'valLoss', 'min'));
  return policies;
}

/** The token streams of a dataset's splits, each shard verified against the manifest as it streams in. */
async function datasetTokens(
  store: TieredStore,
  uri: string,
): Promise<{ train: Uint32Array; validation: Uint32Array }> {
  const manifest = await readManifest(store, uri);
  const meta = manifest.meta as unknown as DatasetMeta;
  const read = async (split: 'train' | 'validation') => {
    const buffers: Buffer[] = [];
    for (const shard of meta.splits[split].shards) {
      const entry = manifest.objects.find((o) => o.uri === shard.uri)!;
      buffers.push(await readAll(await openVerified(store, entry)));
    }
    return tokensFromShards(buffers);
  };
  return { train: await read('train'), validation: await read('validation') };
}

/**
 * One training segment: restore the newest checkpoint that verifies (hot, then warm), train up to `segmentSteps`
 * steps heartbeating step and loss, checkpoint every `checkpointEvery` steps (committed to warm in the background),
 * evaluate, apply retention. A retry after a crash resumes from the last checkpoint and reaches the same weights.
 */
export function createTrainingActivities({ store }: { store: TieredStore }) {
  return {
    async trainSegment(input: { spec: TrainingSpec }): Promise<SegmentSummary> {
      return withFailureMapping(async () => {
        const { spec } = input;
        const ctx = Context.current();
        const data = await datasetTokens(store, spec.dataset);
        const trainer = createTrainer(
          { ...spec.trainer, schedule: { ...spec.trainer.schedule, totalSteps: spec.steps } },
          data.train,
          // Ranks on worker threads: bitwise the same result as running them in turn, faster on several cores.
          { rankThreads: spec.trainer.dataParallelRanks > 1 },
        );
        const checkpoints = new CheckpointManager({
          store,
          runPrefix: `runs/${spec.run}/checkpoints`,
          policy: policiesOf(spec),
          onWarning: (w) => ctx.log.warn(`skipped a checkpoint copy: ${w.message}`),
        });
        try {
          let resumedFrom = 0;
          try {
            const restored = await checkpoints.restoreLatest({ expect: { specDigest: trainer.specDigest } });
            trainer.restore(restored.files);
            resumedFrom = restored.step;
          } catch (err) {
            if (!(err instanceof CheckpointNotFound)) throw err;
          }
          const end = Math.min(spec.steps, trainer.step + spec.segmentSteps);
          const saved: number[] = [];
          const pending: Promise<unknown>[] = [];
          let firstLoss: number | undefined;
          let last = { loss: NaN, tokensPerSecond: 0 };
          while (trainer.step < end) {
            const toCheckpoint = spec.checkpointEvery - (trainer.step % spec.checkpointEvery);
            last = await trainer.trainSteps(Math.min(toCheckpoint, end - trainer.step), ({ step, loss }) => {
              firstLoss ??= loss;
              ctx.heartbeat({ step, loss });
            });
            if (trainer.step % spec.checkpointEvery === 0 || trainer.step === end) {
              await checkpoints.save(trainer.step, trainer.serialize(), {
                runId: spec.run,
                epoch: trainer.epoch,
                specDigest: trainer.specDigest,
                metrics: { loss: last.loss },
              });
              saved.push(trainer.step);
              // Committed to warm while training goes on; awaited before the segment reports done.
              pending.push(checkpoints.commitToWarm(trainer.step));
            }
          }
          await Promise.all(pending);
          const evaluation = trainer.evaluate(
            data.validation.length > spec.trainer.sequenceTokens! ? data.validation : data.train,
            {
              maxTokens: 20_000,
            },
          );
          await checkpoints.applyRetention();
          const weights = trainer.serialize()['weights.f32'];
          return {
            step: trainer.step,
            epoch: trainer.epoch,
            loss: last.loss,
            valLoss: evaluation.loss,
            perplexity: evaluation.perplexity,
            tokensPerSecond: last.tokensPerSecond,
            resumedFrom,
            checkpoints: saved,
            weightsSha256: sha256Hex(weights),
            firstLoss: resumedFrom === 0 ? firstLoss : undefined,
          };
        } finally {
          await checkpoints.drain().catch(() => undefined);
          await trainer.close();
        }
      });
    },
  };
}
