import { StorageError, type StorageErrorOptions } from '../storage';

/** What a restore found instead of the bytes a checkpoint's manifest promised. */
export interface CorruptCheckpointDetails {
  step: number;
  file: string;
  expectedSha256: string;
  /** Undefined when the file is missing altogether. */
  actualSha256?: string;
  expectedBytes: number;
  actualBytes?: number;
}

/** A committed checkpoint whose file is missing or differs from its manifest; retrying the read cannot fix it. */
export class CorruptCheckpoint extends StorageError {
  readonly step: number;
  readonly file: string;
  readonly expectedSha256: string;
  readonly actualSha256: string | undefined;

  constructor(uri: string, details: CorruptCheckpointDetails, options: StorageErrorOptions = {}) {
    const found =
      details.actualSha256 === undefined
        ? 'the file is missing'
        : `got sha256 ${details.actualSha256} (${details.actualBytes ?? '?'} bytes)`;
    super(
      'CorruptCheckpoint',
      uri,
      `Corrupt checkpoint at step ${details.step}: file '${details.file}' (${uri}) expected sha256 ` +
        `${details.expectedSha256} (${details.expectedBytes} bytes), ${found}. Restore from another tier or an ` +
        'earlier checkpoint.',
      false,
      options,
    );
    this.step = details.step;
    this.file = details.file;
    this.expectedSha256 = details.expectedSha256;
    this.actualSha256 = details.actualSha256;
  }
}

/** No committed checkpoint (at `step`, when given) under the run's prefix in any tier. */
export class CheckpointNotFound extends StorageError {
  readonly step: number | undefined;

  constructor(prefixUri: string, step?: number, detail = 'no committed manifest in hot, warm or cold') {
    super(
      'CheckpointNotFound',
      prefixUri,
      `${step === undefined ? 'No checkpoint that verifies' : `No checkpoint at step ${step}`} under ${prefixUri} ` +
        `(${detail}). Start the run from scratch, or check the run id and storage configuration.`,
      false,
    );
    this.step = step;
  }
}

/** A checkpoint written for another spec or with another file set; loading it would silently train the wrong model. */
export class IncompatibleCheckpoint extends StorageError {
  readonly step: number;
  readonly differences: readonly string[];

  constructor(uri: string, step: number, differences: readonly string[]) {
    super(
      'IncompatibleCheckpoint',
      uri,
      `Checkpoint at step ${step} (${uri}) does not match this run: ${differences.join('; ')}. Use a new run id ` +
        'for a changed spec, or restore with the spec that wrote it.',
      false,
    );
    this.step = step;
    this.differences = differences;
  }
}

/** A retention policy that would be unsafe or meaningless (e.g. keepLastN(1)). */
export class InvalidRetentionPolicy extends StorageError {
  constructor(policy: string, reason: string) {
    super('InvalidRetentionPolicy', policy, `Invalid retention policy ${policy}: ${reason}.`, false);
  }
}
