import {
  ActivityCancellationType,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { FlywheelActivities } from '../activities';
import {
  TrainingSpec,
  type EarlyStopState,
  type TrainingProgress,
  type TrainingResult,
  type SegmentSummary,
} from '../lib/contracts/training';
import { validateSpec } from './invalid-spec-failure';
import {
  FlywheelEpoch,
  FlywheelKind,
  FlywheelRun,
  FlywheelStage,
  FlywheelStep,
  FlywheelValLoss,
} from './search-attributes';
import { taskQueueFor } from './task-queues';

export const trainingProgress = defineQuery<TrainingProgress>('progress');
/** Stops the run at the end of the current segment (a checkpoint) until `resume`. */
export const pauseTraining = defineSignal('pause');
export const resumeTraining = defineSignal('resume');

/** What a training run carries across continue-as-new. */
export interface TrainingCarry {
  progress: TrainingProgress;
  segments: number;
  earlyStop: EarlyStopState;
  base?: { model: string; version: string };
  last?: SegmentSummary;
}

/**
 * Training as a sequence of segments on the train queue. Each segment resumes from the newest good checkpoint, so a
 * crashed worker costs at most the steps since the last checkpoint, and the final weights equal an uninterrupted
 * run's. Between segments the run can pause, continue as new, or stop early; at the end it registers a model.
 */
export async function trainingRun(input: unknown, carry?: TrainingCarry): Promise<TrainingResult> {
  const progress: TrainingProgress = carry?.progress ?? {
    stage: 'validate',
    step: 0,
    steps: 0,
    paused: false,
    evaluations: [],
    checkpoints: [],
  };
  setHandler(trainingProgress, () => progress);
  setHandler(pauseTraining, () => void (progress.paused = true));
  setHandler(resumeTraining, () => void (progress.paused = false));
  const spec = validateSpec('trainingRun', TrainingSpec, input);
  progress.steps = spec.steps;
  const train = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('train'),
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: `${spec.heartbeatTimeoutSeconds} seconds`,
    // A cancelled run waits for the segment to reach its next checkpoint, so the checkpoint it leaves is whole.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
  const io = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('io'),
    startToCloseTimeout: '10 minutes',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 10 },
  });
  upsertSearchAttributes([
    { key: FlywheelKind, value: 'training' },
    { key: FlywheelRun, value: spec.run },
    { key: FlywheelStage, value: 'train' },
  ]);
  const setStage = (stage: TrainingProgress['stage']) => {
    progress.stage = stage;
    upsertSearchAttributes([{ key: FlywheelStage, value: stage }]);
  };
  progress.stage = 'train';
  let segments = carry?.segments ?? 0;
  let earlyStop = carry?.earlyStop ?? { sinceBest: 0 };
  let last = carry?.last;
  const base = carry?.base ?? (spec.init ? await io.resolveModel(spec.init) : undefined);
  let segmentsHere = 0;
  try {
    while (!last || (last.step < spec.steps && !last.stoppedEarly)) {
      if (progress.paused) {
        setStage('paused');
        await condition(() => !progress.paused);
        setStage('train');
      }
      if (segmentsHere >= spec.segmentsPerExecution || workflowInfo().continueAsNewSuggested) {
        await condition(allHandlersFinished);
        await continueAsNew<typeof trainingRun>(spec, { progress, segments, earlyStop, base, last });
      }
      const segment = { spec, from: progress.step, base, earlyStop };
      last = spec.external ? await train.externalSegment(segment) : await train.trainSegment(segment);
      segments += 1;
      segmentsHere += 1;
      earlyStop = last.earlyStop;
      progress.step = last.step;
      progress.loss = last.loss;
      progress.valLoss = last.valLoss;
      progress.firstLoss ??= last.firstLoss;
      progress.evaluations.push(...last.evaluations);
      progress.checkpoints.push(...last.checkpoints.filter((s) => !progress.checkpoints.includes(s)));
      upsertSearchAttributes([
        { key: FlywheelStep, value: last.step },
        { key: FlywheelEpoch, value: last.epoch },
        { key: FlywheelValLoss, value: last.valLoss },
      ]);
    }
  } catch (err) {
    if (isCancellation(err)) setStage('cancelled');
    throw err;
  }
  let model: TrainingResult['model'];
  if (spec.register) {
    setStage('register');
    model = await io.registerModel({
      spec,
      step: last.step,
      base,
      metrics: { valLoss: last.valLoss, perplexity: last.perplexity, loss: last.loss },
    });
  }
  setStage('done');
  return {
    run: spec.run,
    step: last.step,
    epoch: last.epoch,
    steps: spec.steps,
    firstLoss: progress.firstLoss,
    loss: last.loss,
    valLoss: last.valLoss,
    perplexity: last.perplexity,
    tokensPerSecond: last.tokensPerSecond,
    segments,
    evaluations: progress.evaluations,
    checkpoints: progress.checkpoints,
    weightsSha256: last.weightsSha256,
    stoppedEarly: last.stoppedEarly,
    model,
  };
}
