import { foldEvaluation, type EarlyStopState, type Evaluation, type TrainingSpec } from '../contracts/training';
import { protocolError } from './errors';
import type { CheckpointEvent, DoneEvent, EvalEvent, StepEvent } from './protocol';

/** What a segment resumes from: the restored checkpoint's step and Flywheel's records saved with it. */
export interface SegmentStart {
  step: number;
  /** Every evaluation up to `step`, oldest first. */
  evaluations: Evaluation[];
  loss?: number;
  epoch?: number;
}

/**
 * One segment's view of the trainer's protocol events: checks them against the plan (steps move forward, nothing
 * past FLYWHEEL_UNTIL_STEP, `done` only after the final checkpoint) and keeps loss, throughput, evaluations and
 * early stopping.
 */
export class SegmentProgress {
  readonly start: number;
  readonly until: number;
  loss: number | undefined;
  firstLoss: number | undefined;
  tokensPerSecond = 0;
  epoch: number;
  lastStep: number;
  lastCheckpoint: number | undefined;
  /** Loss and epoch as of the last committed checkpoint (or the restored one): where the segment ends. */
  atCheckpoint: { loss: number | undefined; epoch: number };
  finished = false;
  earlyStop: EarlyStopState;
  /** Every evaluation of the run so far, oldest first (saved with each checkpoint). */
  readonly evaluations: Evaluation[];

  constructor(
    private readonly spec: Pick<TrainingSpec, 'steps' | 'segmentSteps' | 'earlyStopping'>,
    from: SegmentStart,
    /** The workflow's early-stopping state, and the last step it has a report of. */
    reported: { earlyStop: EarlyStopState; from: number },
  ) {
    this.start = from.step;
    this.until = Math.min(spec.steps, from.step + spec.segmentSteps);
    this.lastStep = from.step;
    this.loss = from.loss;
    this.epoch = from.epoch ?? 0;
    this.atCheckpoint = { loss: this.loss, epoch: this.epoch };
    this.evaluations = from.evaluations.filter((e) => e.step <= from.step);
    this.earlyStop = reported.earlyStop;
    for (const e of this.evaluations.filter((e) => e.step > reported.from)) this.fold(e.valLoss);
  }

  /** Patience is spent: the segment ends at its next checkpoint. */
  get patienceSpent(): boolean {
    return !!this.spec.earlyStopping && this.earlyStop.sinceBest >= this.spec.earlyStopping.patience;
  }

  /** Evaluations after the workflow's last report (`from`), for the segment summary. */
  evaluationsAfter(from: number): Evaluation[] {
    return this.evaluations.filter((e) => e.step > from);
  }

  step(e: StepEvent): void {
    this.within(e.step, 'step');
    if (e.step <= this.lastStep) throw protocolError(`step ${e.step} after step ${this.lastStep}: steps must increase`);
    this.lastStep = e.step;
    this.loss = e.loss;
    if (this.start === 0) this.firstLoss ??= e.loss;
    this.tokensPerSecond = e.tokensPerSecond;
    if (e.epoch !== undefined) this.epoch = e.epoch;
  }

  eval(e: EvalEvent): Evaluation {
    this.within(e.step, 'eval');
    if (e.step <= this.start || this.loss === undefined || e.step > this.lastStep) {
      throw protocolError(`eval at step ${e.step} before its step event; print {"event":"step",...} first`);
    }
    const previous = this.evaluations.at(-1);
    if (previous !== undefined && e.step <= previous.step) {
      throw protocolError(
        `eval at step ${e.step} after the eval at step ${previous.step}: one eval per step, in order`,
      );
    }
    const evaluation = {
      step: e.step,
      epoch: this.epoch,
      valLoss: e.valLoss,
      perplexity: Math.exp(e.valLoss),
      loss: this.loss,
    };
    this.evaluations.push(evaluation);
    this.fold(e.valLoss);
    return evaluation;
  }

  checkpoint(e: CheckpointEvent): void {
    this.within(e.step, 'checkpoint');
    const after = this.lastCheckpoint ?? this.start;
    if (e.step <= after) throw protocolError(`checkpoint ${e.step} after checkpoint ${after}: steps must increase`);
    if (e.epoch !== undefined) this.epoch = e.epoch;
  }

  /** The checkpoint is committed to hot: the segment can now end at it. */
  committed(step: number): void {
    this.lastCheckpoint = step;
    this.atCheckpoint = { loss: this.loss, epoch: this.epoch };
  }

  done(e: DoneEvent): void {
    if (e.step !== this.until) {
      throw protocolError(
        `done at step ${e.step}, but this segment runs until step ${this.until} (FLYWHEEL_UNTIL_STEP)`,
      );
    }
    if (this.lastCheckpoint !== this.until) {
      throw protocolError(
        `done at step ${e.step} without its checkpoint; print the checkpoint event for step ${e.step} first`,
      );
    }
    this.finished = true;
  }

  private within(step: number, what: string): void {
    if (step > this.until) {
      throw protocolError(
        `${what} at step ${step}, past this segment's end at step ${this.until} (FLYWHEEL_UNTIL_STEP)`,
      );
    }
  }

  private fold(valLoss: number): void {
    this.earlyStop = foldEvaluation(this.earlyStop, valLoss, this.spec.earlyStopping?.minDelta ?? 0);
  }
}
