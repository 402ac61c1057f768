import type { SourceSpec } from '../collect/source-spec';
import type { QualitySpec } from '../quality/spec';
import type { CarryEntries } from '../contracts/pipeline-carry';
import type { NearDedupSpec, PipelineSpec } from '../contracts/pipeline';
import type { ArtifactRef, PipelineProgress } from '../contracts/pipeline-results';
import { readManifest } from '../storage/manifest';
import type { TieredStore } from '../storage/tiered-store';
import type { TokenizerEncoding } from '../tokenize/encodings';
import type { Split } from '../webdataset/split';
import { collectBatch, planCollection, ResumeMismatch } from './collect-stage';
import { commitDataset, findCommittedDataset, shardFolder } from './commit-dataset';
import {
  commitExactDedup,
  exactDedupFilter,
  exactDedupJoin,
  exactDedupKeys,
  exactDedupOnePass,
} from './exact-dedup-stage';
import { filterStage } from './filter-stage';
import {
  clusterNearDuplicates,
  commitNearDedup,
  filterNearDuplicates,
  joinNearDedupBands,
  planNearDedup,
  signNearDedupUnit,
  type NearDedupPlan,
} from './near-dedup';
import {
  planShards,
  shardedDataset,
  tokenizePartition,
  tokenizerFacts,
  writeShard,
  type TokenPartitionSummary,
} from './shard-stages';
import { runLayout } from './run-layout';
import { pipelineStep } from './stage';
import type { PartitionLimits } from './stage-io';
import { committedStage, type RunKey, type StageOutput } from './stage-output';

/** A stage that commits partitions: reused when committed, timed under its stage with the documents it read. */
const partitionStage = (stage: string) => ({
  reuse: committedStage,
  timed: { stage, counts: (out: StageOutput) => ({ documents: out.stats.input }) },
});

/**
 * The data pipeline's steps, by the names the workflow calls them: each a declaration of where its output goes,
 * whether committed output is reused, and the lib/pipeline work it runs. Executors lend the store, progress reporting
 * and worker pools (activities/pipeline.ts runs them as Temporal activities).
 */
export const pipelineSteps = {
  findCommittedDataset: pipelineStep({
    run: (key: RunKey, env) => findCommittedDataset(env.store, key),
  }),

  /** One page of the results a pipeline execution carries into the next when it continues as new. */
  savePipelineCarryPage: pipelineStep({
    output: runLayout.carryPage,
    run: async (input: RunKey & { execution: number; page: number; entries: CarryEntries }, env): Promise<void> => {
      await env.store.put(env.folder, Buffer.from(JSON.stringify(input.entries)), { contentType: 'application/json' });
    },
  }),

  loadPipelineCarryPage: pipelineStep({
    output: runLayout.carryPage,
    run: async (_input: RunKey & { execution: number; page: number }, env): Promise<CarryEntries> =>
      JSON.parse((await env.store.getBytes(env.folder)).toString('utf8')),
  }),

  planCollection: pipelineStep({
    run: (input: RunKey & { sources: SourceSpec[]; unitsPerBatch: number; unitBytes?: number }, env) =>
      planCollection({
        store: env.store,
        folder: env.folder,
        sources: input.sources,
        unitsPerBatch: input.unitsPerBatch,
        unitBytes: input.unitBytes,
        ...env.reach,
        onProgress: env.progress,
      }),
  }),

  collectBatch: pipelineStep({
    output: runLayout.collectBatch,
    ...partitionStage('collect'),
    resumable: (input: RunKey & { batch: number }) => ({ stage: 'collect', batch: input.batch }),
    run: (input: RunKey & { plan: ArtifactRef; batch: number; limits: PartitionLimits }, env) =>
      collectBatch({
        store: env.store,
        folder: env.folder,
        plan: input.plan,
        batch: input.batch,
        limits: input.limits,
        ...env.reach,
        resumeFrom: env.resumeFrom,
        onCheckpoint: env.checkpoint,
        onProgress: env.progress,
      }).catch((err: unknown) => {
        // The next attempt starts the batch over: the heartbeat sent with the failure carries no cursor.
        if (err instanceof ResumeMismatch) env.heartbeat({ stage: 'collect', batch: input.batch });
        throw err;
      }),
  }),

  filterBatch: pipelineStep({
    output: runLayout.filterBatch,
    ...partitionStage('filter'),
    resumable: (input: RunKey & { batch: number }) => ({ stage: 'filter', batch: input.batch }),
    run: (input: RunKey & { batch: number; input: ArtifactRef; quality: QualitySpec; limits: PartitionLimits }, env) =>
      filterStage({
        store: env.store,
        folder: env.folder,
        input: input.input,
        quality: input.quality,
        limits: input.limits,
        pool: env.filterPool(),
        resumeFrom: env.resumeFrom,
        onCheckpoint: env.checkpoint,
        onProgress: (documents) => env.progress({ documents }),
      }),
  }),

  /** The dedup stage as committed by an earlier run of the same spec, if any: its steps are then skipped. */
  committedExactDedupStage: pipelineStep({
    output: runLayout.exactDedup,
    run: (_key: RunKey, env) => committedStage(env.store, env.folder),
  }),

  exactDedupKeysStage: pipelineStep({
    output: runLayout.exactDedupKeys,
    run: (input: RunKey & { batch: number; input: ArtifactRef }, env) =>
      exactDedupKeys({
        store: env.store,
        uri: env.folder,
        input: input.input,
        pool: env.dedupPool(),
        onProgress: (documents) => env.progress({ stage: 'dedup-keys', batch: input.batch, documents }),
      }),
  }),

  exactDedupJoinStage: pipelineStep({
    output: runLayout.exactDedupDrops,
    run: (input: RunKey & { keys: (ArtifactRef | null)[] }, env) =>
      exactDedupJoin({ store: env.store, folder: env.folder, keys: input.keys }),
  }),

  exactDedupFilterStage: pipelineStep({
    output: runLayout.exactDedupBatch,
    ...partitionStage('dedup'),
    run: (
      input: RunKey & { batch: number; input: ArtifactRef; drops: ArtifactRef | null; limits: PartitionLimits },
      env,
    ) =>
      exactDedupFilter({
        store: env.store,
        folder: env.folder,
        input: input.input,
        drops: input.drops,
        limits: input.limits,
        onProgress: (documents) => env.progress({ stage: 'dedup', batch: input.batch, documents }),
      }),
  }),

  exactDedupOnePassStage: pipelineStep({
    output: runLayout.exactDedup,
    ...partitionStage('dedup'),
    run: (input: RunKey & { input: ArtifactRef; limits: PartitionLimits }, env) =>
      exactDedupOnePass({
        store: env.store,
        folder: env.folder,
        input: input.input,
        limits: input.limits,
        onProgress: (documents) => env.progress({ stage: 'dedup', documents }),
      }),
  }),

  commitExactDedupStage: pipelineStep({
    output: runLayout.exactDedup,
    ...partitionStage('dedup'),
    run: (input: RunKey & { batches: Pick<StageOutput, 'partitions' | 'rejected' | 'stats'>[] }, env) =>
      commitExactDedup({ store: env.store, folder: env.folder, batches: input.batches }),
  }),

  planNearDedupStage: pipelineStep({
    output: runLayout.nearDedup,
    run: (input: RunKey & { input: ArtifactRef; near: NearDedupSpec }, env) =>
      planNearDedup({ ...input, store: env.store, folder: env.folder }),
  }),

  signNearDedupStage: pipelineStep({
    output: runLayout.nearDedup,
    run: (
      input: RunKey & {
        input: ArtifactRef;
        near: NearDedupSpec;
        plan: Pick<NearDedupPlan, 'indexPartitions' | 'against'>;
        unit: number;
      },
      env,
    ) =>
      signNearDedupUnit({
        ...input,
        store: env.store,
        folder: env.folder,
        pool: env.dedupPool(),
        onProgress: (documents) => env.progress({ stage: 'near-dedup', step: 'sign', unit: input.unit, documents }),
      }),
  }),

  joinNearDedupStage: pipelineStep({
    output: runLayout.nearDedup,
    run: (input: RunKey & { near: NearDedupSpec; indexPartitions: number; partitions: number; bands: number[] }, env) =>
      joinNearDedupBands({
        ...input,
        store: env.store,
        folder: env.folder,
        onProgress: (band) => env.progress({ stage: 'near-dedup', step: 'join', band }),
      }),
  }),

  clusterNearDedupStage: pipelineStep({
    output: runLayout.nearDedup,
    run: (input: RunKey & { near: NearDedupSpec; indexPartitions: number; partitions: number; bands: number }, env) =>
      clusterNearDuplicates({
        ...input,
        store: env.store,
        folder: env.folder,
        onProgress: (step) => env.progress({ stage: 'near-dedup', step: 'cluster', ...step }),
      }),
  }),

  filterNearDedupStage: pipelineStep({
    output: runLayout.nearDedup,
    run: (
      input: RunKey & {
        near: NearDedupSpec;
        input: ArtifactRef;
        clusters: ArtifactRef;
        indexPartitions: number;
        index: number;
        limits: PartitionLimits;
      },
      env,
    ) =>
      filterNearDuplicates({
        ...input,
        store: env.store,
        folder: env.folder,
        onProgress: (documents) =>
          env.progress({ stage: 'near-dedup', step: 'filter', partition: input.index, documents }),
      }),
  }),

  commitNearDedupStage: pipelineStep({
    output: runLayout.nearDedup,
    run: (input: RunKey & { near: NearDedupSpec; partitions: number; clusters: ArtifactRef }, env) =>
      commitNearDedup({ ...input, store: env.store, folder: env.folder }),
  }),

  tokenizePartitionStage: pipelineStep({
    output: runLayout.tokens,
    timed: { stage: 'tokenize', counts: (p: TokenPartitionSummary) => ({ documents: p.documents, tokens: p.tokens }) },
    run: async (
      input: RunKey & { stage: ArtifactRef; index: number; encoding: TokenizerEncoding; validationFraction: number },
      env,
    ) =>
      tokenizePartition({
        store: env.store,
        partition: (await readManifest(env.store, input.stage)).objects[input.index],
        outPrefix: env.folder,
        encoding: input.encoding,
        validationFraction: input.validationFraction,
        pool: env.tokenizerPool(),
        onProgress: (documents) => env.progress({ stage: 'tokenize', partition: input.index, documents }),
      }),
  }),

  planShardsStage: pipelineStep({
    output: runLayout.shardLayout,
    run: (input: RunKey & { parts: ArtifactRef[]; encoding: TokenizerEncoding; targetBytes: number }, env) =>
      planShards({
        store: env.store,
        parts: input.parts,
        dtype: tokenizerFacts(input.encoding).dtype,
        targetBytes: input.targetBytes,
        layoutUri: env.folder,
        onProgress: (records) => env.progress({ stage: 'plan-shards', records }),
      }),
  }),

  writeShardStage: pipelineStep({
    output: runLayout.shardRecords,
    run: async (input: RunKey & { layout: ArtifactRef; split: Split; index: number }, env) => {
      env.heartbeat({ stage: 'shard', split: input.split, index: input.index });
      const shard = await writeShard({
        store: env.store,
        layout: input.layout,
        split: input.split,
        index: input.index,
        outPrefix: shardFolder(input.dataset, input.version, input.digest),
        recordFolder: env.folder,
        onProgress: (records) => env.progress({ stage: 'shard', split: input.split, index: input.index, records }),
      });
      return { bytes: shard.bytes, samples: shard.samples };
    },
  }),

  commitDatasetStage: pipelineStep({
    reuse: (store: TieredStore, _folder: string, key: RunKey) => findCommittedDataset(store, key),
    run: async (
      input: RunKey & {
        spec: PipelineSpec;
        layout: ArtifactRef;
        parts: Pick<TokenPartitionSummary, 'documents' | 'tokens' | 'textBytes' | 'splits'>[];
        stages: PipelineProgress['stages'];
        rejected: ArtifactRef[];
      },
      env,
    ) => {
      const encoding = input.spec.tokenizer.encoding;
      const sharded = await shardedDataset(
        env.store,
        input.layout,
        runLayout.shardRecords(input),
        tokenizerFacts(encoding),
        input.parts,
      );
      return commitDataset(env.store, {
        dataset: input.dataset,
        version: input.version,
        specDigest: input.digest,
        spec: input.spec,
        stages: input.stages,
        rejected: input.rejected,
        sharded,
        encoding,
      });
    },
  }),
};
