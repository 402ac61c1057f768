import { FlywheelError } from '../common';
import { InvalidSpec, type SpecProblem } from '../contracts/invalid-spec';

/** Batch sizes that break DeepSpeed's rule train = micro × accumulation × ranks. Never retried. */
export class InvalidBatchSizes extends InvalidSpec {
  constructor(problems: SpecProblem[]) {
    super('trainer', problems);
    this.name = 'InvalidBatchSizes';
  }
}

/** The training tokens cannot fill one optimizer step. Never retried: more data or smaller batches are needed. */
export class DatasetTooSmall extends FlywheelError {
  constructor(
    readonly tokens: number,
    readonly tokensPerStep: number,
  ) {
    super(
      'DatasetTooSmall',
      `the training data has ${tokens} tokens, too few for one step of ${tokensPerStep} ` +
        '(trainBatchSize × sequenceTokens + contextTokens); add data or shrink the batch or sequence',
      { retryable: false },
    );
  }
}

/** One way a checkpoint differs from the trainer it is restored into. */
export interface StateDifference {
  field: string;
  checkpoint: string;
  trainer: string;
}

/** A checkpoint of another model shape, spec or dataset: refused, naming every difference. Never retried. */
export class CheckpointMismatch extends FlywheelError {
  constructor(readonly differences: StateDifference[]) {
    super(
      'CheckpointMismatch',
      `checkpoint does not fit this trainer (${differences.length} difference${differences.length === 1 ? '' : 's'}):\n` +
        differences.map((d) => `  ${d.field}: checkpoint ${d.checkpoint}, trainer ${d.trainer}`).join('\n'),
      { retryable: false },
    );
  }
}

/** Trainer state files that are missing, truncated or unreadable. Never retried: use an older checkpoint. */
export class MalformedTrainerState extends FlywheelError {
  constructor(message: string) {
    super('MalformedTrainerState', message, { retryable: false });
  }
}

/** A token shard that is not a readable WebDataset tar. Never retried: the dataset must be rebuilt. */
export class MalformedShard extends FlywheelError {
  constructor(message: string) {
    super('MalformedShard', message, { retryable: false });
  }
}
