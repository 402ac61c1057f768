import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExternalTrainerError } from './errors';
import type { TrainerExit } from './exit-status';

export interface LaunchOptions {
  argv: readonly string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
}

/** After the leader exits, how long its output may take to drain once the rest of the group is killed. */
const DRAIN_MS = 5_000;

/**
 * A process started as the leader of its own process group (setsid), so a signal reaches everything it started:
 * a launcher's ranks, data loader workers, helpers. The group never outlives the leader: once the leader exits,
 * whatever is left of the group is killed. Its stdin stays open, so a trainer can exit when it reads EOF (the
 * worker is gone).
 */
export class ProcessGroup {
  /** The leader's pid, which is also the process group id. */
  readonly pid: number;
  readonly stdout: NodeJS.ReadableStream;
  readonly stderr: NodeJS.ReadableStream;
  /** The leader's exit, once its group is gone and its output is read to the end. */
  readonly finished: Promise<TrainerExit>;
  private exit: TrainerExit | undefined;

  private constructor(
    private readonly child: ChildProcess,
    leaderExit: Promise<TrainerExit>,
    closed: Promise<unknown>,
  ) {
    this.pid = child.pid!;
    this.stdout = child.stdout!;
    this.stderr = child.stderr!;
    child.on('error', () => undefined); // a failed kill of a process already gone is no failure
    this.finished = (async () => {
      this.exit = await leaderExit;
      this.signal('SIGKILL');
      // A helper that left the group could hold the pipes open for ever: stop waiting for it.
      await Promise.race([closed, sleep(DRAIN_MS)]);
      child.stdout?.destroy();
      child.stderr?.destroy();
      return this.exit;
    })();
  }

  /** Starts `argv` without a shell; a command that cannot be started is a configuration error, never retried. */
  static async start(opts: LaunchOptions): Promise<ProcessGroup> {
    const [file, ...args] = opts.argv;
    const child = spawn(file, args, {
      cwd: opts.cwd,
      env: opts.env,
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    // Listen before anything is awaited, so no event can pass unseen.
    const leaderExit = new Promise<TrainerExit>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    const closed = new Promise((resolve) => child.once('close', resolve));
    const started = new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', reject);
    });
    try {
      await started;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new ExternalTrainerError(
        'ExternalTrainerConfigError',
        `could not start ${JSON.stringify(file)}${opts.cwd ? ` in ${opts.cwd}` : ''} (${reason}); check ` +
          'external.command, external.cwd and the PATH of the train workers',
      );
    }
    child.stdin!.on('error', () => undefined); // a trainer that closes its stdin is no failure
    return new ProcessGroup(child, leaderExit, closed);
  }

  get exited(): boolean {
    return this.exit !== undefined;
  }

  /** Sends `signal` to the whole group; a group already gone is no error. */
  signal(signal: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  /** SIGTERM to the group, then SIGKILL if the leader has not exited after `graceMs`. */
  async terminate(graceMs: number): Promise<TrainerExit> {
    if (!this.exited) {
      this.signal('SIGTERM');
      const timer = sleep(graceMs, 'grace-over' as const);
      if ((await Promise.race([this.finished, timer])) === 'grace-over') this.signal('SIGKILL');
    }
    return this.finished;
  }

  /** Closes the trainer's stdin (it sees EOF). */
  closeStdin(): void {
    this.child.stdin?.end();
  }
}
