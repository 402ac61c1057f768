import { ExternalTrainerError } from './errors';

/** How the trainer's process ended: an exit code, or the signal that killed it. */
export interface TrainerExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * The failure an exit means, or undefined for success (exit 0 after a `done` event). A crash or signal is
 * retried (from the last checkpoint); a configuration exit code, or exit 0 without `done`, is not.
 */
export function exitFailure(
  exit: TrainerExit,
  opts: { sawDone: boolean; nonRetryableExitCodes: readonly number[]; stderrTail: string[] },
): ExternalTrainerError | undefined {
  const details = { exitCode: exit.code ?? undefined, signal: exit.signal ?? undefined, stderrTail: opts.stderrTail };
  if (exit.signal !== null) {
    return new ExternalTrainerError(
      'ExternalTrainerCrashed',
      `the trainer was killed by ${exit.signal}; the segment is retried from its last checkpoint`,
      details,
    );
  }
  if (exit.code === 0) {
    if (opts.sawDone) return undefined;
    return new ExternalTrainerError(
      'ExternalTrainerProtocolError',
      'the trainer exited 0 without a {"event":"done"} line; print it at FLYWHEEL_UNTIL_STEP, after the checkpoint',
      details,
    );
  }
  if (exit.code !== null && opts.nonRetryableExitCodes.includes(exit.code)) {
    return new ExternalTrainerError(
      'ExternalTrainerConfigError',
      `the trainer exited with code ${exit.code}, which means bad configuration (external.nonRetryableExitCodes); ` +
        'fix the command or its environment and start the run again',
      details,
    );
  }
  return new ExternalTrainerError(
    'ExternalTrainerCrashed',
    `the trainer exited with code ${exit.code}; the segment is retried from its last checkpoint`,
    details,
  );
}
