import { FlywheelError } from '../common';

/** Dedup options that cannot work (threshold outside (0, 1), bands that do not divide num_perm, ...): every problem listed. */
export class InvalidDedupOptions extends FlywheelError {
  /** Usage errors exit the command with code 2. */
  readonly exitCode = 2;
  constructor(readonly problems: string[]) {
    super(
      'InvalidDedupOptions',
      `Invalid dedup options (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`,
      { retryable: true },
    );
  }
}

/** Input the dedup cannot take (a line without text, duplicate ids, ...), with the line numbers to look at. */
export class DedupInputError extends FlywheelError {
  readonly exitCode = 2;
  constructor(
    message: string,
    /** 1-based line numbers in the input file that the message is about. */
    readonly lines: number[] = [],
    /** For a problem with one line: what is wrong with it, without the "line N: " prefix. */
    readonly problem?: string,
  ) {
    super('DedupInputError', message, { retryable: true });
  }

  static atLine(line: number, problem: string): DedupInputError {
    return new DedupInputError(`line ${line}: ${problem}`, [line], problem);
  }
}
