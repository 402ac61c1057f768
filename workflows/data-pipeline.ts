import {
  continueAsNew,
  defineQuery,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { FlywheelActivities } from '../activities';
import { PipelineSpec } from '../lib/contracts/pipeline';
import { specDigest } from '../lib/contracts/digest';
import {
  mergeStats,
  type ArtifactRef,
  type DatasetSummary,
  type PipelineProgress,
} from '../lib/contracts/pipeline-results';
import { validateSpec } from './invalid-spec-failure';
import { FlywheelDataset, FlywheelKind, FlywheelRun, FlywheelStage } from './search-attributes';
import { ExecutionBudget, ExecutionFull, type PipelineOptions } from './pipeline-budget';
import { taskQueueFor } from './task-queues';

export const pipelineProgress = defineQuery<PipelineProgress>('progress');

const retry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  maximumAttempts: 10,
} as const;

/**
 * Raw sources in, training-ready WebDataset shards out: plan → collect (per batch of units) → filter (per batch)
 * → exact dedup → near dedup when asked (sign per partition, join per band group, cluster, filter per partition,
 * commit) → tokenize (per partition) → plan shards → write shards (per shard) → commit the dataset manifest, last.
 * Every stage writes under a folder named by the spec's digest, so a rerun of the same spec reuses what was committed
 * instead of computing it again. A long run continues as new every 2,000 activities (or when its history has grown),
 * carrying the results of the finished ones through warm:// (see ExecutionBudget), so its history stays bounded.
 */
export async function dataPipeline(input: unknown, options: PipelineOptions = {}): Promise<DatasetSummary> {
  const budget = new ExecutionBudget(options, () => {
    const info = workflowInfo();
    return { events: info.historyLength, bytes: info.historySize };
  });
  try {
    return await runPipeline(input, budget);
  } catch (err) {
    if (!(err instanceof ExecutionFull)) throw err;
    // Every activity started in this execution has completed: the next one starts from their results.
    await continueAsNew<typeof dataPipeline>(input, { ...options, carry: await budget.persist() });
    throw err; // continueAsNew never returns
  }
}

async function runPipeline(input: unknown, budget: ExecutionBudget): Promise<DatasetSummary> {
  const progress: PipelineProgress = { stage: 'validate', done: 0, total: 0, documents: 0, stages: {} };
  setHandler(pipelineProgress, () => progress);
  const spec = validateSpec('dataPipeline', PipelineSpec, input);
  const digest = specDigest(spec);
  const runKey = { dataset: spec.dataset, version: spec.version, digest };

  // Activities heartbeat every few seconds: a worker that dies is noticed within 30 s and its work retried elsewhere.
  const io = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('io'),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '30 seconds',
    retry,
  });
  const cpu = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('cpu'),
    startToCloseTimeout: '6 hours',
    heartbeatTimeout: '30 seconds',
    retry,
  });

  const stage = (name: PipelineProgress['stage'], total = 0) => {
    progress.stage = name;
    progress.done = 0;
    progress.total = total;
    upsertSearchAttributes([{ key: FlywheelStage, value: name }]);
  };
  /** One stage activity through the budget, counted in the stage's progress. */
  const step = async <T>(key: string, work: () => Promise<T>) => {
    const result = await budget.once(key, work);
    progress.done += 1;
    return result;
  };
  upsertSearchAttributes([
    { key: FlywheelKind, value: 'pipeline' },
    { key: FlywheelDataset, value: `${spec.dataset}/${spec.version}` },
    { key: FlywheelRun, value: digest },
  ]);

  // A continued execution reads back what the ones before it finished; it saves the same way when it continues.
  budget.storeWith({
    save: (execution, page, entries) => io.savePipelineCarryPage({ ...runKey, execution, page, entries }),
    load: (execution, page) => io.loadPipelineCarryPage({ ...runKey, execution, page }),
  });
  await budget.restore();

  stage('plan');
  // The dataset check comes first: a rerun of a committed dataset returns it without listing its sources, which may
  // be large, or gone.
  const committed = await budget.once('committed', () => io.findCommittedDataset({ ...runKey }));
  if (committed) {
    stage('done');
    return { ...committed, reused: true };
  }
  const plan = await budget.once('plan', () =>
    io.planCollection({
      ...runKey,
      sources: spec.sources,
      unitsPerBatch: spec.unitsPerBatch,
      unitBytes: spec.unitBytes,
    }),
  );

  stage('collect', plan.batches);
  const collected = await budget.mapBounded(plan.batches, async (batch) => {
    const result = await budget.once(`collect/${batch}`, () =>
      io.collectBatch({ ...runKey, plan: plan.plan, batch, limits: spec.partitions }),
    );
    progress.done += 1;
    progress.documents += result.stats.kept;
    return result;
  });
  progress.stages.collect = mergeStats(collected.map((c) => c.stats));

  stage('filter', collected.length);
  const filtered = await budget.mapBounded(collected.length, async (batch) => {
    const result = await budget.once(`filter/${batch}`, () =>
      cpu.filterBatch({
        ...runKey,
        batch,
        input: collected[batch].partitions,
        quality: spec.quality,
        limits: spec.partitions,
      }),
    );
    progress.done += 1;
    return result;
  });
  progress.stages.filter = mergeStats(filtered.map((f) => f.stats));

  // Exact dedup fans out: keys per batch, one join over the keys alone, each batch filtered by its drop list, one
  // commit listing every batch's partitions. A single batch has nothing to join across: one step does it all. A rerun
  // of the same spec finds the committed stage and skips the steps.
  const onePass = spec.dedup.exact && filtered.length === 1;
  stage('dedup', spec.dedup.exact && !onePass ? 2 * filtered.length + 2 : 1);
  const committedDedup = onePass
    ? undefined
    : await budget.once('dedup/committed', () => cpu.committedExactDedupStage({ ...runKey }));
  const deduped =
    committedDedup ??
    (await (async () => {
      if (!spec.dedup.exact) {
        // Nothing to drop: the stage lists the filter's partitions as they are, without reading them again.
        const batches = filtered.map(({ partitions, stats }) => ({
          partitions,
          stats: { input: stats.kept, kept: stats.kept, dropped: {}, keptBytes: stats.keptBytes },
        }));
        return step('dedup', () => cpu.commitExactDedupStage({ ...runKey, batches }));
      }
      if (onePass) {
        return step('dedup', () =>
          cpu.exactDedupOnePassStage({ ...runKey, input: filtered[0].partitions, limits: spec.partitions }),
        );
      }
      const keys = await budget.mapBounded(filtered.length, (batch) =>
        step(`dedup/keys/${batch}`, () =>
          cpu.exactDedupKeysStage({ ...runKey, batch, input: filtered[batch].partitions }),
        ),
      );
      const drops = await step('dedup/join', () => cpu.exactDedupJoinStage({ ...runKey, keys }));
      const batches = await budget.mapBounded(filtered.length, (batch) =>
        step(`dedup/filter/${batch}`, () =>
          cpu.exactDedupFilterStage({
            ...runKey,
            batch,
            input: filtered[batch].partitions,
            drops: drops[batch],
            limits: spec.partitions,
          }),
        ),
      );
      return step('dedup', () =>
        cpu.commitExactDedupStage({
          ...runKey,
          batches: batches.map(({ partitions, rejected, stats }) => ({ partitions, rejected, stats })),
        }),
      );
    })());
  progress.stages.dedup = deduped.stats;
  progress.done = 1;

  // Near duplicates, in steps that fan out: only references and counts pass through here, the data stays in warm://.
  let nearDeduped: Awaited<ReturnType<typeof cpu.commitNearDedupStage>> | undefined;
  const near = spec.dedup.near;
  if (near) {
    stage('near-dedup', 1);
    const plan = await budget.once('near/plan', () =>
      cpu.planNearDedupStage({ ...runKey, input: deduped.partitions, near }),
    );
    nearDeduped = plan.committed;
    if (!nearDeduped) {
      const units = plan.indexPartitions + plan.partitions;
      progress.total = units + plan.bandGroups.length + 1 + plan.partitions + 1;
      const counts = { indexPartitions: plan.indexPartitions, partitions: plan.partitions };
      await budget.mapBounded(units, (unit) =>
        step(`near/sign/${unit}`, () =>
          cpu.signNearDedupStage({
            ...runKey,
            input: deduped.partitions,
            near,
            plan: { indexPartitions: plan.indexPartitions, against: plan.against },
            unit,
          }),
        ),
      );
      await budget.mapBounded(plan.bandGroups.length, (g) =>
        step(`near/join/${g}`, () => cpu.joinNearDedupStage({ ...runKey, near, ...counts, bands: plan.bandGroups[g] })),
      );
      const clusters = await step('near/cluster', () =>
        cpu.clusterNearDedupStage({ ...runKey, near, ...counts, bands: plan.bands }),
      );
      await budget.mapBounded(plan.partitions, (index) =>
        step(`near/filter/${index}`, () =>
          cpu.filterNearDedupStage({
            ...runKey,
            near,
            input: deduped.partitions,
            clusters: clusters.clusters,
            indexPartitions: plan.indexPartitions,
            index,
            limits: spec.partitions,
          }),
        ),
      );
      nearDeduped = await step('near/commit', () =>
        cpu.commitNearDedupStage({ ...runKey, near, partitions: plan.partitions, clusters: clusters.clusters }),
      );
    }
    progress.stages.nearDedup = nearDeduped.stats;
  }
  const tokenInput = nearDeduped ?? deduped;

  // Tokenize each partition (parallel), fix the shard layout, write every shard (parallel), commit the manifest last.
  stage('tokenize', tokenInput.partitionCount);
  const parts = await budget.mapBounded(tokenInput.partitionCount, async (index) => {
    const part = await budget.once(`tokenize/${index}`, () =>
      cpu.tokenizePartitionStage({
        ...runKey,
        stage: tokenInput.partitions,
        index,
        encoding: spec.tokenizer.encoding,
        validationFraction: spec.shards.validationFraction,
      }),
    );
    progress.done += 1;
    return part;
  });

  const layout = await budget.once('layout', () =>
    cpu.planShardsStage({
      ...runKey,
      parts: parts.map((p) => p.ref),
      encoding: spec.tokenizer.encoding,
      targetBytes: spec.shards.targetBytes,
    }),
  );
  const jobs = (['train', 'validation'] as const).flatMap((split) =>
    Array.from({ length: layout.shards[split] }, (_, index) => ({ split, index })),
  );
  stage('shard', jobs.length);
  await budget.mapBounded(jobs.length, async (j) => {
    await budget.once(`shard/${j}`, () => cpu.writeShardStage({ ...runKey, layout: layout.layout, ...jobs[j] }));
    progress.done += 1;
  });

  stage('commit', 1);
  const summary = await budget.once('commit', () =>
    io.commitDatasetStage({
      ...runKey,
      spec,
      layout: layout.layout,
      parts: parts.map(({ documents, tokens, textBytes, splits }) => ({ documents, tokens, textBytes, splits })),
      stages: { ...progress.stages },
      rejected: [
        ...collected.map((c) => c.rejected),
        ...filtered.map((f) => f.rejected),
        deduped.rejected,
        nearDeduped?.rejected,
      ].filter((r): r is ArtifactRef => r !== undefined),
    }),
  );
  progress.done = 1;
  stage('done');
  return summary;
}
