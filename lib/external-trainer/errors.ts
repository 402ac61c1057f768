import { FlywheelError } from '../common';

/** What went wrong with an external trainer, as a failure type a user can search for. */
export type ExternalTrainerFailure =
  | 'ExternalTrainerCrashed'
  | 'ExternalTrainerConfigError'
  | 'ExternalTrainerProtocolError'
  | 'ExternalTrainerStalled'
  | 'ExternalTrainerTimedOut';

const RETRYABLE: Record<ExternalTrainerFailure, boolean> = {
  ExternalTrainerCrashed: true,
  ExternalTrainerConfigError: false,
  ExternalTrainerProtocolError: false,
  ExternalTrainerStalled: true,
  ExternalTrainerTimedOut: true,
};

export interface ExternalTrainerErrorDetails {
  exitCode?: number;
  signal?: string;
  /** The last lines the trainer wrote to stderr, oldest first. */
  stderrTail: string[];
}

/**
 * An external trainer failed: crashed (retried from the last checkpoint), refused its configuration or broke the
 * progress protocol (not retried), or went silent or over time (killed, retried). The message ends with the tail
 * of the trainer's stderr.
 */
export class ExternalTrainerError extends FlywheelError {
  declare readonly type: ExternalTrainerFailure;
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  readonly stderrTail: readonly string[];

  constructor(
    type: ExternalTrainerFailure,
    readonly problem: string,
    details: ExternalTrainerErrorDetails = { stderrTail: [] },
  ) {
    const tail = details.stderrTail;
    super(
      type,
      tail.length === 0
        ? `${problem} (the trainer wrote nothing to stderr)`
        : `${problem}\nLast ${tail.length} line${tail.length === 1 ? '' : 's'} of the trainer's stderr:\n` +
            tail.map((line) => `  ${line}`).join('\n'),
      {
        retryable: RETRYABLE[type],
        details: { exitCode: details.exitCode, signal: details.signal, stderrTail: tail },
      },
    );
    this.exitCode = details.exitCode;
    this.signal = details.signal;
    this.stderrTail = tail;
  }

  /** The same failure, with the trainer's exit and stderr tail attached (known only once the process is gone). */
  withExit(details: ExternalTrainerErrorDetails): ExternalTrainerError {
    return new ExternalTrainerError(this.type, this.problem, {
      exitCode: this.exitCode ?? details.exitCode,
      signal: this.signal ?? details.signal,
      stderrTail: details.stderrTail,
    });
  }
}

/** A protocol line or event sequence the adapter cannot accept; says what the trainer must print instead. */
export function protocolError(problem: string): ExternalTrainerError {
  return new ExternalTrainerError('ExternalTrainerProtocolError', problem);
}
