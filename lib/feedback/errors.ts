/** A partition that does not decompress or parse: it was changed after the ledger wrote it. Never retried. */
export class CorruptFeedbackPartition extends Error {
  readonly type = 'CorruptFeedbackPartition';
  constructor(
    readonly uri: string,
    cause: unknown,
  ) {
    super(
      `Feedback partition ${uri} is unreadable (${cause instanceof Error ? cause.message : String(cause)}). ` +
        'Restore it from a backup or delete it; readers stop at it until then.',
      { cause },
    );
    this.name = 'CorruptFeedbackPartition';
  }
}
