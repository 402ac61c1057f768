import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';

const root = path.join(__dirname, '..', '..');

/** A `flywheel worker` child process: what fault scenarios kill, and what the load run and benches run work on. */
export interface WorkerProcess {
  child: ChildProcess;
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** Resolves once it polls its queues. */
  ready: Promise<void>;
  /** SIGKILL, and resolves when it is gone. */
  kill(): Promise<void>;
  /** SIGTERM (graceful drain), SIGKILL after a grace period. */
  stop(): Promise<void>;
}

/**
 * Starts `flywheel worker` with `env` over this process's environment. `args` go to the command (e.g.
 * `['--queues', 'io']`); `cpu` pins it to one CPU with taskset where the system has it (a single-core machine's worth).
 */
export function startWorker(
  env: Record<string, string | undefined>,
  opts: { args?: string[]; cpu?: number } = {},
): WorkerProcess {
  const command = [process.execPath, path.join(root, 'bin', 'flywheel.js'), 'worker', ...(opts.args ?? [])];
  const argv = opts.cpu !== undefined && hasTaskset() ? ['taskset', '-c', String(opts.cpu), ...command] : command;
  const child = spawn(argv[0], argv.slice(1), {
    cwd: root,
    // The suites' specs are their own, so the worker may run without reach lists (a test may still set them).
    env: { ...process.env, FLYWHEEL_METRICS_PORT: '0', FLYWHEEL_REACH_UNRESTRICTED: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let seen = '';
  // Once the worker has exited, its output pipes are closed on this side too: a grandchild that inherited them (tsx's
  // esbuild service of a SIGKILLed worker) must not keep this process alive.
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      setTimeout(() => {
        child.stdout?.destroy();
        child.stderr?.destroy();
      }, 1000).unref();
      resolve();
    }),
  );
  const ready = new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (seen.length > 1 << 20) seen = seen.slice(-(1 << 19));
      if (/\[flywheel\] worker on /.test(seen)) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    void exited.then(() => reject(new Error(`the worker exited (${child.exitCode ?? child.signalCode}):\n${seen}`)));
  });
  ready.catch(() => undefined); // a scenario that never waits for it must not see an unhandled rejection
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    output: () => seen,
    ready,
    async kill() {
      if (alive()) child.kill('SIGKILL');
      await exited;
    },
    async stop() {
      if (!alive()) return;
      child.kill('SIGTERM');
      const force = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(force);
    },
  };
}

let taskset: boolean | undefined;
function hasTaskset(): boolean {
  taskset ??= spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;
  return taskset;
}
