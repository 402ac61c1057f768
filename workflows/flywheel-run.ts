import {
  condition,
  defineQuery,
  defineSignal,
  executeChild,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { FlywheelActivities } from '../activities';
import {
  applyGate,
  durationMs,
  FlywheelSpec,
  type FlywheelDecisionKind,
  type FlywheelProgress,
  type FlywheelResult,
  type ModelScores,
} from '../lib/contracts/flywheel';
import { pipelineWorkflowId, type PipelineInput } from '../lib/contracts/pipeline';
import type { DatasetSummary } from '../lib/contracts/pipeline-results';
import { trainingWorkflowId, type TrainingInput, type TrainingResult } from '../lib/contracts/training';
import { validateSpec } from './invalid-spec-failure';
import { FlywheelDataset, FlywheelKind, FlywheelRun, FlywheelStage } from './search-attributes';
import { taskQueueFor } from './task-queues';

export const flywheelProgress = defineQuery<FlywheelProgress>('progress');
/** A human's answer when the spec asks for approval before a promotion. */
export const approvePromotion = defineSignal<[{ by?: string; note?: string }?]>('approve');
export const rejectPromotion = defineSignal<[{ by?: string; note?: string }?]>('reject');

/**
 * One turn of the data flywheel: feedback since the watermark → training documents → the pipeline's filters and
 * near-dedup against the champion's dataset → an incremental dataset (base shards + new ones) → a challenger
 * fine-tuned from the champion → both scored on the same held-out data → promoted only through the gate.
 * Every decision is recorded in the registry with its numbers; a failed challenger leaves the champion in place.
 */
export async function flywheelRun(input: unknown): Promise<FlywheelResult> {
  const progress: FlywheelProgress = { stage: 'validate' };
  setHandler(flywheelProgress, () => progress);
  let answer: { decision: 'promote' | 'reject'; by?: string; note?: string } | undefined;
  setHandler(approvePromotion, (who) => void (answer = { decision: 'promote', ...who }));
  setHandler(rejectPromotion, (who) => void (answer = { decision: 'reject', ...who }));
  const spec = validateSpec('flywheelRun', FlywheelSpec, input);
  const info = workflowInfo();
  const decisionId = `${info.workflowId}.${info.runId}`;
  const io = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('io'),
    startToCloseTimeout: '30 minutes',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 10 },
  });
  const train = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('train'),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 5 },
  });
  const stage = (s: FlywheelProgress['stage']) => {
    progress.stage = s;
    upsertSearchAttributes([{ key: FlywheelStage, value: s }]);
  };
  upsertSearchAttributes([
    { key: FlywheelKind, value: 'flywheel' },
    { key: FlywheelRun, value: info.workflowId },
  ]);

  stage('curate');
  const curated = await io.curateFeedback({ spec, decisionId });
  progress.events = curated.events;
  upsertSearchAttributes([{ key: FlywheelDataset, value: curated.baseDataset.dataset }]);
  const finish = async (
    decision: FlywheelDecisionKind,
    reasons: string[],
    extra: Partial<FlywheelResult> & { promote?: boolean; advanceWatermark?: boolean } = {},
  ): Promise<FlywheelResult> => {
    stage('decide');
    const { promote = false, advanceWatermark = false, ...rest } = extra;
    const recorded = await io.recordFlywheelDecision({
      decisionId,
      model: spec.model,
      decision,
      reasons,
      champion: curated.champion.version,
      challenger: rest.challenger,
      scores: rest.scores,
      events: curated.events,
      newDocs: rest.newDocs ?? 0,
      dataset: rest.dataset,
      promote,
      watermark: advanceWatermark ? curated.watermark : undefined,
    });
    stage('done');
    return {
      model: spec.model,
      decision,
      reasons,
      events: curated.events,
      newDocs: 0,
      champion: curated.champion.version,
      championAfter: recorded.champion,
      decisionId,
      ...rest,
    };
  };

  if (curated.documents === 0)
    return finish('no-data', [`no usable feedback since the last watermark (${curated.events} events read)`], {
      advanceWatermark: true,
    });

  // The pipeline's own filters, exact dedup and near-dedup against the champion's dataset, as a child run.
  stage('pipeline');
  const addition: PipelineInput = {
    dataset: `${curated.baseDataset.dataset}-feedback`,
    version: `fb-${info.runId.replace(/-/g, '').slice(-12)}`,
    sources: [{ type: 'tier', name: 'feedback', uri: curated.documentsUri, format: 'jsonl' }],
    quality: spec.quality,
    dedup: {
      exact: true,
      ...(spec.nearDedup && curated.baseNear
        ? { near: { ...curated.baseNear, against: curated.baseDataset.uri } }
        : {}),
    },
    tokenizer: { encoding: curated.baseDataset.encoding },
    shards: { targetBytes: 64 * 1024 * 1024, validationFraction: 0.2 },
  } as PipelineInput;
  let added: DatasetSummary;
  try {
    added = await executeChild<(input: unknown) => Promise<DatasetSummary>>('dataPipeline', {
      args: [addition],
      workflowId: pipelineWorkflowId({ dataset: addition.dataset, version: addition.version! }),
      taskQueue: info.taskQueue,
    });
  } catch (err) {
    return finish('failed', [`the feedback pipeline failed: ${messageOf(err)}`]);
  }
  progress.newDocs = added.documents;
  if (added.documents === 0 || added.splits.train.documents === 0)
    return finish('no-data', [`all ${curated.documents} feedback documents were filtered or deduplicated away`], {
      advanceWatermark: true,
    });
  const combined = await io.composeDataset({
    base: curated.baseDataset.uri,
    addition: added.manifest.uri,
    version: addition.version!,
  });

  stage('train');
  const run = `${spec.model}-fb-${info.runId.replace(/-/g, '').slice(-12)}`.toLowerCase();
  progress.challenger = run;
  const training: TrainingInput = {
    run,
    model: spec.model,
    dataset: combined,
    init: { model: spec.model, version: curated.champion.version },
    // An external champion's challenger is trained by the same command; the built-in one merges the overrides.
    ...(curated.championExternal
      ? { external: curated.championExternal }
      : { trainer: deepMerge(curated.championTrainer, spec.training.trainer ?? {}) as TrainingInput['trainer'] }),
    steps: spec.training.steps,
    segmentSteps: spec.training.segmentSteps,
    checkpointEvery: Math.min(spec.training.checkpointEvery, spec.training.segmentSteps),
  };
  let trained: TrainingResult;
  try {
    trained = await executeChild<(input: unknown) => Promise<TrainingResult>>('trainingRun', {
      args: [training],
      workflowId: trainingWorkflowId({ run }),
      taskQueue: info.taskQueue,
    });
  } catch (err) {
    return finish('failed', [`the challenger failed to train; the champion stays: ${messageOf(err)}`], {
      newDocs: added.documents,
      dataset: combined,
    });
  }
  const challenger = trained.model!.version;

  stage('evaluate');
  // External models are scored by their evaluation command, which needs the train workers' environment (torch).
  const scorer = curated.championExternal ? train : io;
  const scores = await scorer.scoreModels({
    model: spec.model,
    versions: [curated.champion.version, challenger],
    heldout: curated.baseDataset.uri,
    feedback: added.manifest.uri,
    evalTokens: spec.gate.evalTokens,
  });
  const pair = { champion: scores[0] as ModelScores, challenger: scores[1] as ModelScores };
  const gate = applyGate(spec.gate, pair.champion, pair.challenger);
  let decision: FlywheelDecisionKind = gate.passed ? 'promote' : 'reject';
  const reasons = [...gate.reasons];
  if (gate.passed && spec.approval) {
    stage('approval');
    const answered = await condition(() => answer !== undefined, durationMs(spec.approval.timeout));
    if (answered) {
      decision = answer!.decision;
      reasons.push(`${answer!.decision === 'promote' ? 'approved' : 'rejected'} by ${answer!.by ?? 'a reviewer'}`);
      if (answer!.note) reasons.push(answer!.note);
    } else {
      decision = spec.approval.default;
      reasons.push(`no answer within ${spec.approval.timeout}: default decision ${spec.approval.default}`);
    }
  }
  return finish(decision, reasons, {
    challenger,
    scores: pair,
    newDocs: added.documents,
    dataset: combined,
    promote: decision === 'promote',
    advanceWatermark: decision === 'promote',
  });
}

function messageOf(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  // Child and activity failures wrap the reason: report the innermost message.
  while (e?.cause) e = e.cause as typeof e;
  return e?.message ?? String(err);
}

function deepMerge(base: unknown, over: unknown): unknown {
  if (over === undefined) return base;
  if (base && over && typeof base === 'object' && typeof over === 'object' && !Array.isArray(over)) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(over as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
    return out;
  }
  return over;
}
