import * as os from 'node:os';
import { Context } from '@temporalio/activity';
import {
  collectBatch,
  planCollection,
  ResumeMismatch,
  type CollectionPlanSummary,
} from '../lib/pipeline/collect-stage';
import { commitDataset, findCommittedDataset, shardFolder } from '../lib/pipeline/commit-dataset';
import {
  commitExactDedup,
  exactDedupFilter,
  exactDedupJoin,
  exactDedupKeys,
  exactDedupOnePass,
} from '../lib/pipeline/exact-dedup-stage';
import { filterStage } from '../lib/pipeline/filter-stage';
import {
  clusterNearDuplicates,
  commitNearDedup,
  filterNearDuplicates,
  joinNearDedupBands,
  nearDedupFolder,
  planNearDedup,
  signNearDedupUnit,
  type BandJoinCounts,
  type NearDedupClusters,
  type NearDedupOutput,
  type NearDedupPlan,
} from '../lib/pipeline/near-dedup-stage';
import { committedStage, runFolder, type RunKey, type StageOutput } from '../lib/pipeline/stage-output';
import type { PartitionLimits, StageCursor } from '../lib/pipeline/stage-io';
import {
  planShards,
  shardedDataset,
  tokenizePartition,
  tokenizerFacts,
  writeShard,
  type TokenPartitionSummary,
} from '../lib/pipeline/shard-stages';
import type { TokenizerEncoding } from '../lib/tokenize/encodings';
import type { Split } from '../lib/webdataset/split';
import type { CollectReach } from '../lib/collect/context';
import type { SourceSpec } from '../lib/collect/source-spec';
import type { QualitySpec } from '../lib/quality/spec';
import type { NearDedupSpec, PipelineSpec } from '../lib/spec/pipeline';
import type { ArtifactRef, DatasetSummary, PipelineProgress, StageStats } from '../lib/spec/pipeline-results';
import { DedupPool } from '../lib/dedup/dedup-pool';
import { readManifest, type TieredStore } from '../lib/storage';
import { TokenizerPool } from '../lib/tokenize/pool';
import { timeStage } from '../lib/metrics';
import { withFailureMapping } from './failures';
import type { CarryEntries } from '../workflows/pipeline-budget';

/** The store, and where collection may read: a spec from the UI must not read the whole disk, nor any bucket or host. */
export interface PipelineDeps extends CollectReach {
  store: TieredStore;
  threads?: number;
}

const pad = (n: number) => String(n).padStart(6, '0');

const carryPageUri = (key: RunKey & { execution: number; page: number }) =>
  `${runFolder(key)}/carry/execution-${pad(key.execution)}/page-${pad(key.page)}.json`;

let tokenizerPool: TokenizerPool | undefined;

/** One tokenizer pool per worker process, shared by concurrent activities: threads match cores, not activities. */
function sharedTokenizerPool(threads?: number): TokenizerPool {
  tokenizerPool ??= new TokenizerPool({ threads });
  return tokenizerPool;
}

/** Called by the worker on shutdown. */
export async function closeSharedTokenizerPool(): Promise<void> {
  const pool = tokenizerPool;
  tokenizerPool = undefined;
  await pool?.close();
}

/** Near-dedup signing runs on the dedup worker threads, one pool per worker process like the tokenizer's. */
function sharedDedupPool(threads?: number): DedupPool {
  return DedupPool.shared(Math.max(1, threads ?? os.availableParallelism()));
}

/** Called by the worker on shutdown. */
export async function closeSharedDedupPool(): Promise<void> {
  await DedupPool.closeShared();
}

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
 * Heartbeats of a batch activity that can resume: progress every few seconds, and every cursor (a partition
 * boundary) at once, the SDK keeping the latest for its next heartbeat. A retry starts from the cursor the last
 * attempt heartbeated, logging where.
 */
function resumableBatch(stage: 'collect' | 'filter', batch: number, beat: (details: unknown) => void) {
  const ctx = Context.current();
  const resumeFrom = cursorOf(ctx.info.heartbeatDetails, stage, batch);
  if (resumeFrom) {
    ctx.log.info(
      `${stage} batch ${batch}: resuming at unit ${resumeFrom.unit}, record ${resumeFrom.record} ` +
        `(${resumeFrom.kept.length} partitions already stored)`,
    );
  }
  let cursor = resumeFrom;
  let progress: Record<string, number> = {};
  return {
    resumeFrom,
    checkpoint: (c: StageCursor) => {
      cursor = c;
      ctx.heartbeat({ stage, batch, ...progress, cursor });
    },
    progress: (p: Record<string, number>) => {
      progress = p;
      beat({ stage, batch, ...p, cursor });
    },
  };
}

/** The cursor a previous attempt of this stage activity heartbeated, if any. */
function cursorOf(details: unknown, stage: string, batch: number): StageCursor | undefined {
  const d = details as { stage?: unknown; batch?: unknown; cursor?: StageCursor } | undefined;
  if (!d || d.stage !== stage || d.batch !== batch || !d.cursor) return undefined;
  const c = d.cursor;
  return Number.isInteger(c.unit) && Number.isInteger(c.record) && Array.isArray(c.kept) && Array.isArray(c.rejected)
    ? c
    : undefined;
}

/** The stage a stage folder belongs to, as metrics name it: …/collect/batch-000003 → collect, …/dedup → dedup. */
const stageOf = (folder: string) =>
  folder
    .replace(/\/batch-\d+$/, '')
    .split('/')
    .pop() ?? 'stage';

/**
 * The data pipeline's activities: each a thin adapter over a lib/pipeline stage that reuses committed output
 * (a retried or rerun stage returns what its earlier attempt committed) and heartbeats progress.
 */
export function createPipelineActivities({ store, threads, allowedRoots, allowedBuckets, allowedHosts }: PipelineDeps) {
  const reach: CollectReach = { allowedRoots, allowedBuckets, allowedHosts };
  /** A stage's committed output when an earlier attempt or run left one; else the stage, heartbeating. */
  const reuseOrRun = (
    folder: string,
    run: (folder: string, beat: (details: unknown) => void) => Promise<StageOutput>,
  ) =>
    withFailureMapping(
      async () =>
        (await committedStage(store, folder)) ??
        timeStage(
          Context.current().metricMeter,
          stageOf(folder),
          () => run(folder, throttledHeartbeat()),
          (out) => ({
            documents: out.stats.input,
          }),
        ),
    );

  return {
    async findCommittedDataset(key: RunKey): Promise<DatasetSummary | undefined> {
      return withFailureMapping(() => findCommittedDataset(store, key));
    },

    /** One page of the results a pipeline execution carries into the next when it continues as new. */
    async savePipelineCarryPage(input: RunKey & { execution: number; page: number; entries: CarryEntries }) {
      return withFailureMapping(async () => {
        await store.put(carryPageUri(input), Buffer.from(JSON.stringify(input.entries)), {
          contentType: 'application/json',
        });
      });
    },

    async loadPipelineCarryPage(input: RunKey & { execution: number; page: number }): Promise<CarryEntries> {
      return withFailureMapping(async () => JSON.parse((await store.getBytes(carryPageUri(input))).toString('utf8')));
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
          ...reach,
        }),
      );
    },

    async collectBatch(
      input: RunKey & { plan: ArtifactRef; batch: number; limits: PartitionLimits },
    ): Promise<StageOutput> {
      return reuseOrRun(`${runFolder(input)}/collect/batch-${pad(input.batch)}`, (folder, beat) => {
        const cursor = resumableBatch('collect', input.batch, beat);
        return collectBatch({
          store,
          folder,
          plan: input.plan,
          batch: input.batch,
          limits: input.limits,
          ...reach,
          resumeFrom: cursor.resumeFrom,
          onCheckpoint: cursor.checkpoint,
          onProgress: cursor.progress,
        }).catch((err: unknown) => {
          // The next attempt starts the batch over: the heartbeat sent with the failure carries no cursor.
          if (err instanceof ResumeMismatch) Context.current().heartbeat({ stage: 'collect', batch: input.batch });
          throw err;
        });
      });
    },

    async filterBatch(
      input: RunKey & { batch: number; input: ArtifactRef; quality: QualitySpec; limits: PartitionLimits },
    ): Promise<StageOutput> {
      return reuseOrRun(`${runFolder(input)}/filter/batch-${pad(input.batch)}`, (folder, beat) => {
        const cursor = resumableBatch('filter', input.batch, beat);
        return filterStage({
          store,
          folder,
          input: input.input,
          quality: input.quality,
          limits: input.limits,
          resumeFrom: cursor.resumeFrom,
          onCheckpoint: cursor.checkpoint,
          onProgress: (documents) => cursor.progress({ documents }),
        });
      });
    },

    /** The dedup stage as committed by an earlier run of the same spec, if any: its steps are then skipped. */
    async committedExactDedupStage(input: RunKey): Promise<StageOutput | undefined> {
      return withFailureMapping(() => committedStage(store, `${runFolder(input)}/dedup`));
    },

    async exactDedupKeysStage(input: RunKey & { batch: number; input: ArtifactRef }) {
      return withFailureMapping(() =>
        exactDedupKeys({
          store,
          uri: `${runFolder(input)}/dedup/keys/batch-${pad(input.batch)}`,
          input: input.input,
          onProgress: (documents) =>
            Context.current().heartbeat({ stage: 'dedup-keys', batch: input.batch, documents }),
        }),
      );
    },

    async exactDedupJoinStage(input: RunKey & { keys: (ArtifactRef | null)[] }): Promise<(ArtifactRef | null)[]> {
      return withFailureMapping(() =>
        exactDedupJoin({ store, folder: `${runFolder(input)}/dedup/drops`, keys: input.keys }),
      );
    },

    async exactDedupFilterStage(
      input: RunKey & { batch: number; input: ArtifactRef; drops: ArtifactRef | null; limits: PartitionLimits },
    ): Promise<StageOutput> {
      return reuseOrRun(`${runFolder(input)}/dedup/batch-${pad(input.batch)}`, (folder, beat) =>
        exactDedupFilter({
          store,
          folder,
          input: input.input,
          drops: input.drops,
          limits: input.limits,
          onProgress: (documents) => beat({ stage: 'dedup', batch: input.batch, documents }),
        }),
      );
    },

    async exactDedupOnePassStage(
      input: RunKey & { input: ArtifactRef; limits: PartitionLimits },
    ): Promise<StageOutput> {
      return reuseOrRun(`${runFolder(input)}/dedup`, (folder, beat) =>
        exactDedupOnePass({
          store,
          folder,
          input: input.input,
          limits: input.limits,
          onProgress: (documents) => beat({ stage: 'dedup', documents }),
        }),
      );
    },

    async commitExactDedupStage(
      input: RunKey & { batches: Pick<StageOutput, 'partitions' | 'rejected' | 'stats'>[] },
    ): Promise<StageOutput> {
      return reuseOrRun(`${runFolder(input)}/dedup`, (folder) =>
        commitExactDedup({ store, folder, batches: input.batches }),
      );
    },

    async planNearDedupStage(input: RunKey & { input: ArtifactRef; near: NearDedupSpec }): Promise<NearDedupPlan> {
      return withFailureMapping(() =>
        planNearDedup({ store, folder: nearDedupFolder(runFolder(input)), input: input.input, near: input.near }),
      );
    },

    async signNearDedupStage(
      input: RunKey & {
        input: ArtifactRef;
        near: NearDedupSpec;
        plan: Pick<NearDedupPlan, 'indexPartitions' | 'against'>;
        unit: number;
      },
    ): Promise<{ documents: number }> {
      return withFailureMapping(async () => {
        const beat = throttledHeartbeat();
        return signNearDedupUnit({
          store,
          folder: nearDedupFolder(runFolder(input)),
          input: input.input,
          near: input.near,
          plan: input.plan,
          unit: input.unit,
          pool: sharedDedupPool(threads),
          onProgress: (documents) => beat({ stage: 'near-dedup', step: 'sign', unit: input.unit, documents }),
        });
      });
    },

    async joinNearDedupStage(
      input: RunKey & { near: NearDedupSpec; indexPartitions: number; partitions: number; bands: number[] },
    ): Promise<BandJoinCounts> {
      return withFailureMapping(async () => {
        const beat = throttledHeartbeat();
        return joinNearDedupBands({
          store,
          folder: nearDedupFolder(runFolder(input)),
          near: input.near,
          indexPartitions: input.indexPartitions,
          partitions: input.partitions,
          bands: input.bands,
          onProgress: (band) => beat({ stage: 'near-dedup', step: 'join', band }),
        });
      });
    },

    async clusterNearDedupStage(
      input: RunKey & { near: NearDedupSpec; indexPartitions: number; partitions: number; bands: number },
    ): Promise<NearDedupClusters> {
      return withFailureMapping(async () => {
        const beat = throttledHeartbeat();
        return clusterNearDuplicates({
          store,
          folder: nearDedupFolder(runFolder(input)),
          near: input.near,
          indexPartitions: input.indexPartitions,
          partitions: input.partitions,
          bands: input.bands,
          onProgress: (step) => beat({ stage: 'near-dedup', step: 'cluster', ...step }),
        });
      });
    },

    async filterNearDedupStage(
      input: RunKey & {
        near: NearDedupSpec;
        input: ArtifactRef;
        clusters: ArtifactRef;
        indexPartitions: number;
        index: number;
        limits: PartitionLimits;
      },
    ): Promise<StageStats> {
      return withFailureMapping(async () => {
        const beat = throttledHeartbeat();
        return filterNearDuplicates({
          store,
          folder: nearDedupFolder(runFolder(input)),
          near: input.near,
          input: input.input,
          clusters: input.clusters,
          indexPartitions: input.indexPartitions,
          index: input.index,
          limits: input.limits,
          onProgress: (documents) => beat({ stage: 'near-dedup', step: 'filter', partition: input.index, documents }),
        });
      });
    },

    async commitNearDedupStage(
      input: RunKey & { near: NearDedupSpec; partitions: number; clusters: ArtifactRef },
    ): Promise<NearDedupOutput> {
      return withFailureMapping(() =>
        commitNearDedup({
          store,
          folder: nearDedupFolder(runFolder(input)),
          near: input.near,
          partitions: input.partitions,
          clusters: input.clusters,
        }),
      );
    },

    async tokenizePartitionStage(
      input: RunKey & { stage: ArtifactRef; index: number; encoding: TokenizerEncoding; validationFraction: number },
    ): Promise<TokenPartitionSummary> {
      return withFailureMapping(async () => {
        const beat = throttledHeartbeat();
        const partition = (await readManifest(store, input.stage)).objects[input.index];
        const tokenize = () =>
          tokenizePartition({
            store,
            partition,
            outPrefix: `${runFolder(input)}/tokens/part-${pad(input.index)}`,
            encoding: input.encoding,
            validationFraction: input.validationFraction,
            pool: sharedTokenizerPool(threads),
            onProgress: (documents) => beat({ stage: 'tokenize', partition: input.index, documents }),
          });
        return timeStage(Context.current().metricMeter, 'tokenize', tokenize, (p) => ({
          documents: p.documents,
          tokens: p.tokens,
        }));
      });
    },

    async planShardsStage(
      input: RunKey & { parts: ArtifactRef[]; encoding: TokenizerEncoding; targetBytes: number },
    ): Promise<{ layout: ArtifactRef; shards: Record<Split, number> }> {
      return withFailureMapping(() =>
        planShards({
          store,
          parts: input.parts,
          dtype: tokenizerFacts(input.encoding).dtype,
          targetBytes: input.targetBytes,
          layoutUri: `${runFolder(input)}/shard-layout.json`,
          onProgress: (
            (beat) => (records: number) =>
              beat({ stage: 'plan-shards', records })
          )(throttledHeartbeat()),
        }),
      );
    },

    async writeShardStage(
      input: RunKey & { layout: ArtifactRef; split: Split; index: number },
    ): Promise<{ bytes: number; samples: number }> {
      return withFailureMapping(async () => {
        Context.current().heartbeat({ stage: 'shard', split: input.split, index: input.index });
        const shard = await writeShard({
          store,
          layout: input.layout,
          split: input.split,
          index: input.index,
          outPrefix: shardFolder(input.dataset, input.version, input.digest),
          recordFolder: `${runFolder(input)}/shards`,
          onProgress: (
            (beat) => (records: number) =>
              beat({ stage: 'shard', split: input.split, index: input.index, records })
          )(throttledHeartbeat()),
        });
        return { bytes: shard.bytes, samples: shard.samples };
      });
    },

    async commitDatasetStage(
      input: RunKey & {
        spec: PipelineSpec;
        layout: ArtifactRef;
        parts: Pick<TokenPartitionSummary, 'documents' | 'tokens' | 'textBytes' | 'splits'>[];
        stages: PipelineProgress['stages'];
        rejected: ArtifactRef[];
      },
    ): Promise<DatasetSummary> {
      return withFailureMapping(async () => {
        const committed = await findCommittedDataset(store, input);
        if (committed) return committed;
        const encoding = input.spec.tokenizer.encoding;
        const sharded = await shardedDataset(
          store,
          input.layout,
          `${runFolder(input)}/shards`,
          tokenizerFacts(encoding),
          input.parts,
        );
        return commitDataset(store, {
          dataset: input.dataset,
          version: input.version,
          specDigest: input.digest,
          spec: input.spec,
          stages: input.stages,
          rejected: input.rejected,
          sharded,
          encoding,
        });
      });
    },
  };
}
