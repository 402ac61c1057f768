import { FlywheelError } from '../common';

/** A partition that does not decompress or parse: it was changed after the ledger wrote it. Never retried. */
export class CorruptFeedbackPartition extends FlywheelError {
  constructor(
    readonly uri: string,
    cause: unknown,
  ) {
    super(
      'CorruptFeedbackPartition',
      `Feedback partition ${uri} is unreadable (${cause instanceof Error ? cause.message : String(cause)}). ` +
        'Restore it from a backup or delete it; readers stop at it until then.',
      { retryable: false, details: uri, cause },
    );
  }
}
