import { InvalidSpec, type SpecProblem } from '../spec/invalid-spec';

/** Batch sizes that break DeepSpeed's rule train = micro × accumulation × ranks. Never retried. */
export class InvalidBatchSizes extends InvalidSpec {
  constructor(problems: SpecProblem[]) {
    super('trainer', problems);
    this.name = 'InvalidBatchSizes';
  }
}

/** The training tokens cannot fill one optimizer step. Never retried: more data or smaller batches are needed. */
export class DatasetTooSmall extends Error {
  readonly type = 'DatasetTooSmall';
  constructor(
    readonly tokens: number,
    readonly tokensPerStep: number,
  ) {
    super(
      `the training data has ${tokens} tokens, too few for one step of ${tokensPerStep} ` +
        '(trainBatchSize × sequenceTokens + contextTokens); add data or shrink the batch or sequence',
    );
    this.name = 'DatasetTooSmall';
  }
}

/** One way a checkpoint differs from the trainer it is restored into. */
export interface StateDifference {
  field: string;
  checkpoint: string;
  trainer: string;
}

/** A checkpoint of another model shape, spec or dataset: refused, naming every difference. Never retried. */
export class CheckpointMismatch extends Error {
  readonly type = 'CheckpointMismatch';
  constructor(readonly differences: StateDifference[]) {
    super(
      `checkpoint does not fit this trainer (${differences.length} difference${differences.length === 1 ? '' : 's'}):\n` +
        differences.map((d) => `  ${d.field}: checkpoint ${d.checkpoint}, trainer ${d.trainer}`).join('\n'),
    );
    this.name = 'CheckpointMismatch';
  }
}

/** Trainer state files that are missing, truncated or unreadable. Never retried: use an older checkpoint. */
export class MalformedTrainerState extends Error {
  readonly type = 'MalformedTrainerState';
  constructor(message: string) {
    super(message);
    this.name = 'MalformedTrainerState';
  }
}

/** A token shard that is not a readable WebDataset tar. Never retried: the dataset must be rebuilt. */
export class MalformedShard extends Error {
  readonly type = 'MalformedShard';
  constructor(message: string) {
    super(message);
    this.name = 'MalformedShard';
  }
}
