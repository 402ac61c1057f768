import { z } from 'zod';
import { TrainerSpec } from '../train/spec';

const name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes, at most 63');

/**
 * The trainingRun workflow's one argument: a dataset manifest, the trainer's spec, and how the run is cut into
 * segments and checkpointed. `{ "run": "demo", "dataset": "warm://datasets/sample/v1/manifest.json" }` is complete.
 */
export const TrainingSpec = z
  .object({
    run: name.describe('run name: names its checkpoints folder and the workflow id'),
    dataset: z
      .string()
      .regex(
        /^(hot|warm|cold):\/\/.+\/manifest\.json$/,
        'a dataset manifest URI, e.g. warm://datasets/sample/v1/manifest.json',
      )
      .describe('the data pipeline output to train on'),
    trainer: TrainerSpec.prefault({}),
    steps: z.number().int().min(1).default(100).describe('optimizer steps in all'),
    segmentSteps: z
      .number()
      .int()
      .min(1)
      .default(50)
      .describe('steps per training activity (a retry repeats at most these)'),
    checkpointEvery: z.number().int().min(1).default(25).describe('steps between checkpoints'),
    heartbeatTimeoutSeconds: z
      .number()
      .int()
      .min(2)
      .default(60)
      .describe('a segment whose worker is silent this long is retried elsewhere (from its last checkpoint)'),
    retention: z
      .object({
        keepLast: z.number().int().min(2, 'keep at least 2 checkpoints (the newest may be mid-commit)').default(3),
        milestoneEvery: z.number().int().min(1).optional().describe('keep every Nth step in cold://'),
        keepBestByValLoss: z.number().int().min(1).optional(),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .refine((s) => s.checkpointEvery <= s.segmentSteps, {
    path: ['checkpointEvery'],
    message: 'at most segmentSteps, so every segment leaves a checkpoint',
  });

export type TrainingSpec = z.infer<typeof TrainingSpec>;
export type TrainingInput = z.input<typeof TrainingSpec>;

export interface SegmentSummary {
  step: number;
  epoch: number;
  loss: number;
  valLoss: number;
  perplexity: number;
  tokensPerSecond: number;
  /** Step of the checkpoint the segment started from (0 when fresh). */
  resumedFrom: number;
  checkpoints: number[];
  /** sha256 of the serialized weights at the end of the segment: equal weights, equal hashes. */
  weightsSha256: string;
  firstLoss?: number;
}

export interface TrainingProgress {
  stage: 'validate' | 'train' | 'done';
  step: number;
  steps: number;
  loss?: number;
  valLoss?: number;
  firstLoss?: number;
}

export function trainingWorkflowId(spec: Pick<TrainingSpec, 'run'>): string {
  return `train-${spec.run}`;
}
