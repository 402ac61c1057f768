import { defineQuery, proxyActivities, setHandler, upsertSearchAttributes } from '@temporalio/workflow';
import type { FlywheelActivities } from '../activities';
import { TrainingSpec, type SegmentSummary, type TrainingProgress } from '../lib/spec/training';
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

/**
 * Training as a sequence of segments on the train queue. Each segment resumes from the newest good checkpoint, so a
 * crashed worker costs at most the steps since the last checkpoint, and the final weights equal an uninterrupted run's.
 */
export async function trainingRun(input: unknown): Promise<SegmentSummary & { segments: number }> {
  const progress: TrainingProgress = { stage: 'validate', step: 0, steps: 0 };
  setHandler(trainingProgress, () => progress);
  const spec = validateSpec('trainingRun', TrainingSpec, input);
  progress.steps = spec.steps;
  const train = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('train'),
    startToCloseTimeout: '12 hours',
    heartbeatTimeout: `${spec.heartbeatTimeoutSeconds} seconds`,
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds', maximumAttempts: 20 },
  });
  upsertSearchAttributes([
    { key: FlywheelKind, value: 'training' },
    { key: FlywheelRun, value: spec.run },
    { key: FlywheelStage, value: 'train' },
  ]);
  progress.stage = 'train';
  let segments = 0;
  let last: SegmentSummary | undefined;
  while (!last || last.step < spec.steps) {
    last = await train.trainSegment({ spec });
    segments += 1;
    progress.step = last.step;
    progress.loss = last.loss;
    progress.valLoss = last.valLoss;
    progress.firstLoss ??= last.firstLoss;
    upsertSearchAttributes([
      { key: FlywheelStep, value: last.step },
      { key: FlywheelEpoch, value: last.epoch },
      { key: FlywheelValLoss, value: last.valLoss },
    ]);
  }
  progress.stage = 'done';
  upsertSearchAttributes([{ key: FlywheelStage, value: 'done' }]);
  return { ...last, firstLoss: progress.firstLoss, segments };
}
