import type { CollectReach } from '../collect/context';
import type { FilterPool } from '../quality/filter-pool';
import type { TieredStore } from '../storage/tiered-store';
import type { TokenizerPool } from '../tokenize/pool';
import type { ExactKeyPool } from './exact-dedup-stage';
import type { ChunkSigningPool } from './near-dedup';
import type { StageCursor } from './stage-io';
import { runFolder, type RunKey } from './stage-output';

/**
 * What an executor lends a step while it runs: the store, where its output goes, how it reports progress, and the
 * resources of the process it runs in. The step itself does not know where it runs.
 */
export interface StepEnv {
  store: TieredStore;
  /** Where the step's output goes: its declaration's `output`. */
  folder: string;
  /** Reports progress at once. */
  heartbeat(details: unknown): void;
  /** Reports progress at most every few seconds: for calls per record or document. */
  progress(details: Record<string, unknown>): void;
  /** A resumable step's cursor from the interrupted attempt it continues, if any. */
  resumeFrom?: StageCursor;
  /** Saves a resumable step's cursor at a partition boundary. */
  checkpoint(cursor: StageCursor): void;
  /** Where collection may read. */
  reach: CollectReach;
  /** The process's worker threads for dedup (near-dup signatures, exact keys), those that tokenize, those that filter. */
  dedupPool(): ChunkSigningPool & ExactKeyPool;
  tokenizerPool(): TokenizerPool;
  filterPool(): FilterPool;
}

/** A batch step that saves cursors with its progress and resumes from the last one: the stage and batch they name. */
export interface ResumableBatch {
  stage: 'collect' | 'filter';
  batch: number;
}

/**
 * One pipeline step as a declaration: where its output goes, what an earlier attempt or run committed there (returned
 * instead of running again), and the work. Executors run it: every step the same way.
 */
export interface PipelineStep<I extends RunKey, O> {
  /** The folder (or object) the step writes, from the run and its input; the run folder when left out. */
  output?(input: NoInfer<I>): string;
  /** The output committed at `folder`, if any. */
  reuse?(store: TieredStore, folder: string, input: NoInfer<I>): Promise<O | undefined>;
  /** Set for a step that resumes from the cursor an interrupted attempt saved. */
  resumable?(input: NoInfer<I>): ResumableBatch;
  /** A step whose run is timed in the stage metrics, under this stage, with the counts of its output. */
  timed?: { stage: string; counts(out: O): { documents?: number; tokens?: number } };
  run(input: I, env: StepEnv): Promise<O>;
}

/** Declares a step, inferring its input from `run`'s first parameter and its output from what it returns. */
export function pipelineStep<I extends RunKey, O>(step: PipelineStep<I, O>): PipelineStep<I, O> {
  return step;
}

/** Where a step's output goes. */
export function stepFolder<I extends RunKey, O>(step: PipelineStep<I, O>, input: I): string {
  return step.output?.(input) ?? runFolder(input);
}

/** Executors turn each step into a call of this shape (an activity, a function). */
export type StepCalls<T> = {
  [K in keyof T]: T[K] extends PipelineStep<infer I, infer O> ? (input: I) => Promise<O> : never;
};

/** Every step of a table as a call, under the step's name (which the executor is told too). */
export function stepCalls<T extends Record<string, PipelineStep<never, unknown>>>(
  steps: T,
  call: <I extends RunKey, O>(step: PipelineStep<I, O>, name: keyof T & string) => (input: I) => Promise<O>,
): StepCalls<T> {
  const calls: Record<string, unknown> = {};
  for (const [name, step] of Object.entries(steps)) calls[name] = call(step, name);
  return calls as StepCalls<T>;
}

/** What runs steps: lends each its environment, and may time its work. */
export interface StepExecutor {
  store: TieredStore;
  env(folder: string, resumable?: ResumableBatch): StepEnv;
  time<O>(
    stage: string,
    work: () => Promise<O>,
    counts: (out: O) => { documents?: number; tokens?: number },
  ): Promise<O>;
}

/** Runs a step: the output committed where it goes if there is one, else the step's work (which commits it). */
export async function runStep<I extends RunKey, O>(
  step: PipelineStep<I, O>,
  input: I,
  executor: StepExecutor,
): Promise<O> {
  const folder = stepFolder(step, input);
  const reused = await step.reuse?.(executor.store, folder, input);
  if (reused !== undefined) return reused;
  const env = executor.env(folder, step.resumable?.(input));
  const work = () => step.run(input, env);
  const timed = step.timed;
  return timed ? executor.time(timed.stage, work, (out) => timed.counts(out)) : work();
}
