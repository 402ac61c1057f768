import { setTimeout as sleep } from 'node:timers/promises';
import { ExternalTrainerError } from './errors';
import { exitFailure, type TrainerExit } from './exit-status';
import { FileLineFollower, forEachLine } from './line-sources';
import { LineTail } from './line-tail';
import { ProcessGroup, type LaunchOptions } from './process-group';
import { configRefused, parseProtocolLine, type ProtocolEvent } from './protocol';

/** The events a segment handles in order; a `fatal` event ends the run instead. */
export type TrainingEvent = Exclude<ProtocolEvent, { event: 'fatal' }>;

/** The running trainer, as an event handler sees it. */
export interface RunningTrainer {
  readonly pid: number;
  /** Ends the trainer early on purpose (SIGTERM, then SIGKILL after the grace time); not a failure. */
  stop(): void;
}

export interface TrainerRunOptions {
  launch: LaunchOptions;
  /** Read protocol lines from this file instead of stdout (stdout is then only logged). */
  progressFile?: string;
  stallTimeoutMs: number;
  timeoutMs?: number;
  killGraceMs: number;
  nonRetryableExitCodes: readonly number[];
  /** Aborting it terminates the trainer; the run then resolves with `stopped: 'cancelled'`. */
  signal?: AbortSignal;
  stderrTailLines?: number;
  onStart?: (trainer: RunningTrainer) => void;
  /** Each protocol event in order, one at a time; what it throws stops the trainer and is what the run throws. */
  onEvent: (event: TrainingEvent, trainer: RunningTrainer) => Promise<void> | void;
  /** stdout lines that are not protocol events, and every stderr line. */
  onText?: (line: string, stream: 'stdout' | 'stderr') => void;
}

export interface TrainerRunOutcome {
  exit: TrainerExit;
  /** Set when the trainer was ended on purpose rather than finishing with `done`. */
  stopped?: 'cancelled' | 'requested';
  stderrTail: string[];
}

type StopReason = 'cancelled' | 'requested' | 'stall' | 'timeout' | 'failure';

/**
 * Runs an external trainer to its end: feeds its protocol events to `onEvent`, keeps the tail of its stderr, kills
 * its process group when it goes silent, overruns, is cancelled or breaks the protocol, and turns its exit into
 * success or an ExternalTrainerError (retryable or not).
 */
export async function runExternalTrainer(opts: TrainerRunOptions): Promise<TrainerRunOutcome> {
  const group = await ProcessGroup.start(opts.launch);
  const tail = new LineTail(opts.stderrTailLines ?? 50);
  let stopped: StopReason | undefined;
  let failure: { error: unknown } | undefined;
  let sawDone = false;
  let events: Promise<void> = Promise.resolve();

  const stop = (reason: StopReason) => {
    if (stopped !== undefined || group.exited) return;
    stopped = reason;
    void group.terminate(opts.killGraceMs);
  };
  const fail = (error: unknown) => {
    failure ??= { error };
    stop('failure');
  };
  const trainer: RunningTrainer = { pid: group.pid, stop: () => stop('requested') };
  const stall = setTimeout(() => stop('stall'), opts.stallTimeoutMs);
  const overrun = opts.timeoutMs === undefined ? undefined : setTimeout(() => stop('timeout'), opts.timeoutMs);
  const onAbort = () => stop('cancelled');
  if (opts.signal?.aborted) onAbort();
  else opts.signal?.addEventListener('abort', onAbort, { once: true });

  const onProtocolLine = (line: string) => {
    let parsed;
    try {
      parsed = parseProtocolLine(line);
    } catch (err) {
      fail(err);
      return;
    }
    if (parsed.kind === 'text') {
      opts.onText?.(line, 'stdout');
      return;
    }
    stall.refresh();
    const { event } = parsed;
    if (event.event === 'fatal') {
      fail(configRefused(event.message));
      return;
    }
    events = events
      .then(async () => {
        if (failure !== undefined) return;
        await opts.onEvent(event, trainer);
        if (event.event === 'done') sawDone = true;
      })
      .catch(fail);
  };

  try {
    opts.onStart?.(trainer);
    const follower =
      opts.progressFile === undefined ? undefined : new FileLineFollower(opts.progressFile, onProtocolLine);
    const stdout = forEachLine(
      group.stdout,
      follower === undefined ? onProtocolLine : (line) => opts.onText?.(line, 'stdout'),
    );
    const stderr = forEachLine(group.stderr, (line) => {
      tail.push(line);
      opts.onText?.(line, 'stderr');
    });
    const exit = await group.finished;
    await Promise.race([Promise.all([stdout, stderr]), sleep(1_000)]);
    await follower?.stop();
    await events;

    const details = { exitCode: exit.code ?? undefined, signal: exit.signal ?? undefined, stderrTail: tail.lines() };
    if (failure !== undefined) {
      throw failure.error instanceof ExternalTrainerError ? failure.error.withExit(details) : failure.error;
    }
    if (stopped === 'stall') {
      throw new ExternalTrainerError(
        'ExternalTrainerStalled',
        `the trainer printed no protocol line for ${opts.stallTimeoutMs / 1000} s (external.stallTimeoutSeconds); ` +
          'its process group was killed and the segment is retried from its last checkpoint',
        details,
      );
    }
    if (stopped === 'timeout') {
      throw new ExternalTrainerError(
        'ExternalTrainerTimedOut',
        `the segment ran past ${opts.timeoutMs! / 1000} s (external.timeoutSeconds); its process group was killed ` +
          'and the segment is retried from its last checkpoint',
        details,
      );
    }
    if (stopped === 'cancelled' || stopped === 'requested') return { exit, stopped, stderrTail: details.stderrTail };
    const failed = exitFailure(exit, {
      sawDone,
      nonRetryableExitCodes: opts.nonRetryableExitCodes,
      stderrTail: details.stderrTail,
    });
    if (failed) throw failed;
    return { exit, stderrTail: details.stderrTail };
  } finally {
    clearTimeout(stall);
    clearTimeout(overrun);
    opts.signal?.removeEventListener('abort', onAbort);
    if (!group.exited) await group.terminate(0);
  }
}
