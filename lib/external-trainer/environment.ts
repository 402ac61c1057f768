import { canonicalJson } from '../contracts/digest';
import type { TrainingSpec } from '../contracts/training';
import { sha256Hex } from '../storage';
import type { LocalDataset } from './local-dataset';
import type { ExternalTrainerSpec } from './spec';
import type { TrainerWorkDir } from './work-dir';

/** The segment an external trainer is started for. */
export interface TrainerLaunchPlan {
  spec: TrainingSpec & { external: ExternalTrainerSpec };
  work: TrainerWorkDir;
  dataset: LocalDataset;
  /** The step the trainer starts from: the restored checkpoint's, or 0. */
  start: number;
  until: number;
  /** The activity attempt (1 for the first). */
  attempt: number;
  /** A fine-tune's base model, written to `work.init`; handed over only when the run starts fresh. */
  init?: { model: string; version: string };
}

/** WebDataset's separator for several URLs in one string: `wds.WebDataset(os.environ["FLYWHEEL_TRAIN_SHARDS"])`. */
export const SHARD_SEPARATOR = '::';

/**
 * The argv and environment an external trainer starts with: the worker's environment, the spec's `env`, then
 * Flywheel's FLYWHEEL_* variables; `resumeArgument <folder>` is appended when a checkpoint was restored.
 */
export function trainerLaunch(plan: TrainerLaunchPlan): { argv: string[]; env: NodeJS.ProcessEnv } {
  const { spec, work, dataset } = plan;
  const external = spec.external;
  const resuming = plan.start > 0;
  const flywheel: Record<string, string> = {
    FLYWHEEL_RUN: spec.run,
    FLYWHEEL_DATASET: spec.dataset,
    FLYWHEEL_DATASET_FILE: work.datasetFile,
    FLYWHEEL_TRAIN_SHARDS: dataset.splits.train.shards.join(SHARD_SEPARATOR),
    FLYWHEEL_VALIDATION_SHARDS: dataset.splits.validation.shards.join(SHARD_SEPARATOR),
    FLYWHEEL_VOCAB_SIZE: String(dataset.tokenizer.vocabSize),
    FLYWHEEL_CHECKPOINT_DIR: work.checkpoints,
    FLYWHEEL_START_STEP: String(plan.start),
    FLYWHEEL_UNTIL_STEP: String(plan.until),
    FLYWHEEL_TOTAL_STEPS: String(spec.steps),
    FLYWHEEL_CHECKPOINT_EVERY: String(spec.checkpointEvery),
    FLYWHEEL_EVAL_EVERY: String(spec.evalEvery ?? spec.segmentSteps),
    FLYWHEEL_EVAL_TOKENS: String(spec.evalTokens),
    FLYWHEEL_ATTEMPT: String(plan.attempt),
    FLYWHEEL_TRAINER_ID: work.trainerId,
    ...(resuming ? { FLYWHEEL_RESUME_DIR: work.resume, FLYWHEEL_RESUME_STEP: String(plan.start) } : {}),
    ...(!resuming && plan.init
      ? { FLYWHEEL_INIT_DIR: work.init, FLYWHEEL_INIT_MODEL: `${plan.init.model}@${plan.init.version}` }
      : {}),
    ...(external.report === 'file' ? { FLYWHEEL_PROGRESS_FILE: work.progressFile } : {}),
  };
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('FLYWHEEL_')));
  const argv = [...external.command];
  if (resuming && external.resumeArgument !== null) argv.push(external.resumeArgument, work.resume);
  // Python trainers would otherwise buffer stdout, and progress would arrive in bursts.
  return { argv, env: { PYTHONUNBUFFERED: '1', ...inherited, ...external.env, ...flywheel } };
}

/**
 * Identifies what an external run's checkpoints belong to (the command and the dataset), so a run restarted with
 * another command under the same name refuses the old checkpoints instead of loading them into the wrong model.
 */
export function externalSpecDigest(
  spec: Pick<TrainingSpec, 'dataset'> & { external: Pick<ExternalTrainerSpec, 'command'> },
): string {
  return sha256Hex(canonicalJson({ trainer: 'external', command: spec.external.command, dataset: spec.dataset }));
}
