import { z } from 'zod';
import { TrainerSpec } from '../train/spec';
import { ExternalTrainerSpec } from '../external-trainer/spec';

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
    model: name.optional().describe('registry name the finished run registers a version under (default: the run name)'),
    init: z
      .object({
        model: name.describe('registered model to start from'),
        version: z
          .string()
          .regex(/^(v[0-9]+|champion)$/, 'a version such as v3, or champion')
          .default('champion')
          .describe('version or alias'),
      })
      .strict()
      .optional()
      .describe(
        "fine-tune: start from a registered model's weights (fresh optimizer and schedule); an external trainer gets " +
          'its registered files in FLYWHEEL_INIT_DIR',
      ),
    trainer: TrainerSpec.prefault({}).describe('the built-in trainer (ignored when `external` is set)'),
    external: ExternalTrainerSpec.optional().describe(
      'train with your own command (torchrun, deepspeed) instead of the built-in trainer',
    ),
    steps: z.number().int().min(1).default(100).describe('optimizer steps in all'),
    segmentSteps: z
      .number()
      .int()
      .min(1)
      .default(50)
      .describe('steps per training activity (a retry repeats at most these)'),
    checkpointEvery: z.number().int().min(1).default(25).describe('steps between checkpoints'),
    evalEvery: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('steps between validation evaluations (default: segmentSteps)'),
    evalTokens: z.number().int().min(1).default(20_000).describe('validation tokens scored per evaluation'),
    earlyStopping: z
      .object({
        patience: z.number().int().min(1).describe('evaluations without improvement before the run stops'),
        minDelta: z.number().min(0).default(0).describe('smallest validation-loss drop that counts as improvement'),
      })
      .strict()
      .optional(),
    segmentsPerExecution: z
      .number()
      .int()
      .min(1)
      .default(200)
      .describe('segments before the workflow continues as new (sooner when Temporal suggests it)'),
    register: z.boolean().default(true).describe('register the finished run in the model registry'),
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

/** Where early stopping stands: the best validation loss so far and how many evaluations since it improved. */
export interface EarlyStopState {
  best?: number;
  sinceBest: number;
}

/** Folds one evaluation into the early-stopping state; an improvement must beat the best by more than `minDelta`. */
export function foldEvaluation(state: EarlyStopState, valLoss: number, minDelta: number): EarlyStopState {
  return state.best === undefined || valLoss < state.best - minDelta
    ? { best: valLoss, sinceBest: 0 }
    : { best: state.best, sinceBest: state.sinceBest + 1 };
}

export interface SegmentInput {
  spec: TrainingSpec;
  /** The last step the workflow has a report of: evaluations at or before it are not reported again. */
  from: number;
  /** The registered model a fine-tune starts from, resolved once so every segment uses the same version. */
  base?: { model: string; version: string };
  earlyStop: EarlyStopState;
}

export interface SegmentSummary {
  /** Evaluations of this segment after `from`, in step order. */
  evaluations: Evaluation[];
  earlyStop: EarlyStopState;
  stoppedEarly: boolean;
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

export interface Evaluation {
  step: number;
  epoch: number;
  valLoss: number;
  perplexity: number;
  /** Training loss of the last step before the evaluation. */
  loss: number;
}

export interface TrainingProgress {
  stage: 'validate' | 'train' | 'paused' | 'register' | 'done' | 'cancelled';
  step: number;
  steps: number;
  loss?: number;
  valLoss?: number;
  firstLoss?: number;
  paused: boolean;
  evaluations: Evaluation[];
  /** Steps of the checkpoints written so far, in order. */
  checkpoints: number[];
}

/** What trainingRun returns. */
export interface TrainingResult {
  run: string;
  step: number;
  epoch: number;
  steps: number;
  firstLoss?: number;
  loss: number;
  valLoss: number;
  perplexity: number;
  tokensPerSecond: number;
  segments: number;
  /** Every evaluation, in step order: the validation-loss curve. */
  evaluations: Evaluation[];
  checkpoints: number[];
  weightsSha256: string;
  stoppedEarly: boolean;
  /** The registered model version, when `register` is on. */
  model?: { name: string; version: string };
}

export function trainingWorkflowId(spec: Pick<TrainingSpec, 'run'>): string {
  return `train-${spec.run}`;
}
