import { Context } from '@temporalio/activity';
import { collectBatch, planCollection, type CollectionPlanSummary } from '../lib/pipeline/collect-stage';
import { commitDataset, datasetFolder, findCommittedDataset } from '../lib/pipeline/commit-dataset';
import { exactDedupStage } from '../lib/pipeline/exact-dedup-stage';
import { filterStage } from '../lib/pipeline/filter-stage';
import { committedStage, runFolder, type RunKey, type StageOutput } from '../lib/pipeline/stage-output';
import { stagePartitions, type PartitionLimits } from '../lib/pipeline/stage-io';
import { tokenizeAndShard } from '../lib/pipeline/tokenize-and-shard';
import type { SourceSpec } from '../lib/collect/source-spec';
import type { QualitySpec } from '../lib/quality/spec';
import type { PipelineSpec } from '../lib/spec/pipeline';
import type { ArtifactRef, DatasetSummary, PipelineProgress } from '../lib/spec/pipeline-results';
import type { TieredStore } from '../lib/storage';
import { TokenizerPool } from '../lib/tokenize/pool';
import { withFailureMapping } from './failures';

export interface PipelineDeps {
  store: TieredStore;
  /** Where collection may read local files (a spec from the UI must not read the whole disk). */
  allowedRoots?: string[];
}

const pad = (n: number) => String(n).padStart(6, '0');

/** Heartbeats at most every few seconds: enough for liveness and progress, cheap on history and the server. */
function throttledHeartbeat(): (details: unknown) => void {
  let last = 0;
  return (details) => {
    const now = Date.now();
    if (now - last < 2000) return;
    last = now;
    Context.current().heartbeat(details);
  };
}

/**
 * The data pipeline's activities: each a thin adapter over a lib/pipeline stage that reuses committed output
 * (a retried or rerun stage returns what its earlier attempt committed) and heartbeats progress.
 */
export function createPipelineActivities({ store, allowedRoots }: PipelineDeps) {
  return {
    async findCommittedDataset(key: RunKey): Promise<DatasetSummary | undefined> {
      return withFailureMapping(() => findCommittedDataset(store, key));
    },

    async planCollection(
      input: RunKey & { sources: SourceSpec[]; unitsPerBatch: number },
    ): Promise<CollectionPlanSummary> {
      return withFailureMapping(() =>
        planCollection({
          store,
          folder: runFolder(input),
          sources: input.sources,
          unitsPerBatch: input.unitsPerBatch,
          allowedRoots,
        }),
      );
    },

    async collectBatch(
      input: RunKey & { plan: ArtifactRef; batch: number; limits: PartitionLimits },
    ): Promise<StageOutput> {
      return withFailureMapping(async () => {
        const folder = `${runFolder(input)}/collect/batch-${pad(input.batch)}`;
        const beat = throttledHeartbeat();
        return (
          (await committedStage(store, folder)) ??
          collectBatch({
            store,
            folder,
            plan: input.plan,
            batch: input.batch,
            limits: input.limits,
            allowedRoots,
            onProgress: (p) => beat({ stage: 'collect', batch: input.batch, ...p }),
          })
        );
      });
    },

    async filterBatch(
      input: RunKey & { batch: number; input: ArtifactRef; quality: QualitySpec; limits: PartitionLimits },
    ): Promise<StageOutput> {
      return withFailureMapping(async () => {
        const folder = `${runFolder(input)}/filter/batch-${pad(input.batch)}`;
        const beat = throttledHeartbeat();
        return (
          (await committedStage(store, folder)) ??
          filterStage({
            store,
            folder,
            input: input.input,
            quality: input.quality,
            limits: input.limits,
            onProgress: (documents) => beat({ stage: 'filter', batch: input.batch, documents }),
          })
        );
      });
    },

    async exactDedupStage(
      input: RunKey & { enabled: boolean; inputs: ArtifactRef[]; limits: PartitionLimits },
    ): Promise<StageOutput> {
      return withFailureMapping(async () => {
        const folder = `${runFolder(input)}/dedup`;
        const beat = throttledHeartbeat();
        return (
          (await committedStage(store, folder)) ??
          exactDedupStage({
            store,
            folder,
            inputs: input.inputs,
            enabled: input.enabled,
            limits: input.limits,
            onProgress: (documents) => beat({ stage: 'dedup', documents }),
          })
        );
      });
    },

    async tokenizeAndShardStage(
      input: RunKey & {
        spec: PipelineSpec;
        input: ArtifactRef;
        stages: PipelineProgress['stages'];
        rejected: ArtifactRef[];
      },
    ): Promise<DatasetSummary> {
      return withFailureMapping(async () => {
        const committed = await findCommittedDataset(store, input);
        if (committed) return committed;
        const beat = throttledHeartbeat();
        const pool = new TokenizerPool();
        try {
          const sharded = await tokenizeAndShard({
            store,
            partitions: await stagePartitions(store, [input.input]),
            encoding: input.spec.tokenizer.encoding,
            targetShardBytes: input.spec.shards.targetBytes,
            validationFraction: input.spec.shards.validationFraction,
            outPrefix: datasetFolder(input.dataset, input.version),
            pool,
            onProgress: (p) => beat({ stage: 'tokenize', ...p }),
          });
          return await commitDataset(store, {
            dataset: input.dataset,
            version: input.version,
            specDigest: input.digest,
            spec: input.spec,
            stages: input.stages,
            rejected: input.rejected,
            sharded,
            encoding: input.spec.tokenizer.encoding,
          });
        } finally {
          await pool.close();
        }
      });
    },
  };
}
