import { DatasetTooSmall } from './errors';
import { Xorshift128 } from './rng';

/** Where training stands in the data: which epoch, and how many optimizer steps of it are done. */
export interface DataCursor {
  epoch: number;
  stepInEpoch: number;
}

/**
 * A row stream cut into packed sequences: sequence i predicts rows [i·S + C, i·S + C + S) from the C rows before
 * each, so consecutive sequences share only context, and documents run into each other across their end-of-text
 * ids as GPT-style packing does. Each epoch visits sequences in a seeded shuffled order; a partial last batch is
 * dropped so every step has exactly `trainBatchSize` sequences.
 */
export class PackedSequences {
  readonly sequences: number;
  readonly stepsPerEpoch: number;
  private order: Uint32Array;
  private orderEpoch = -1;

  constructor(
    readonly rows: Uint32Array,
    readonly contextTokens: number,
    readonly sequenceTokens: number,
    readonly trainBatchSize: number,
    private readonly seed: number,
  ) {
    this.sequences = Math.max(0, Math.floor((rows.length - contextTokens) / sequenceTokens));
    this.stepsPerEpoch = Math.floor(this.sequences / trainBatchSize);
    if (this.stepsPerEpoch < 1) throw new DatasetTooSmall(rows.length, trainBatchSize * sequenceTokens + contextTokens);
    this.order = new Uint32Array(this.sequences);
  }

  /** First predicted position of the `sample`-th sequence of the step at `cursor` (sample < trainBatchSize). */
  sequenceStart(cursor: DataCursor, sample: number): number {
    if (this.orderEpoch !== cursor.epoch) this.shuffle(cursor.epoch);
    return this.order[cursor.stepInEpoch * this.trainBatchSize + sample] * this.sequenceTokens + this.contextTokens;
  }

  next(cursor: DataCursor): DataCursor {
    return cursor.stepInEpoch + 1 < this.stepsPerEpoch
      ? { epoch: cursor.epoch, stepInEpoch: cursor.stepInEpoch + 1 }
      : { epoch: cursor.epoch + 1, stepInEpoch: 0 };
  }

  /** Fisher–Yates with a generator derived from (seed, epoch) only, so any epoch's order is rebuilt on resume. */
  private shuffle(epoch: number): void {
    const rng = Xorshift128.fromSeed(this.seed, epoch + 1);
    const order = this.order;
    for (let i = 0; i < order.length; i++) order[i] = i;
    for (let i = order.length - 1; i > 0; i--) {
      const j = rng.nextBelow(i + 1);
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    this.orderEpoch = epoch;
  }
}
