import { ConfigError, type FlywheelConfig } from './load';

/** `flywheel worker` with no reach list set and no FLYWHEEL_REACH_UNRESTRICTED: it refuses to start (exit code 2). */
export class WorkerReachUnset extends ConfigError {
  constructor() {
    super([
      { variable: 'FLYWHEEL_COLLECT_ROOTS', expected: 'the folders path sources may read' },
      { variable: 'FLYWHEEL_COLLECT_BUCKETS', expected: 'the S3 buckets s3 sources may read, or none' },
      { variable: 'FLYWHEEL_COLLECT_HOSTS', expected: 'the hosts url sources may reach, or none' },
      { variable: 'FLYWHEEL_REACH_UNRESTRICTED', expected: '1 to run with none of them, where every spec is trusted' },
    ]);
    this.message =
      'flywheel worker refuses to start: FLYWHEEL_COLLECT_ROOTS, FLYWHEEL_COLLECT_BUCKETS and FLYWHEEL_COLLECT_HOSTS ' +
      'are all unset, so a spec from anyone who can start a workflow (the Web UI included) could read any file this ' +
      'worker can, any bucket its credentials can and any public URL.\n' +
      '  Set them: FLYWHEEL_COLLECT_ROOTS=/data FLYWHEEL_COLLECT_BUCKETS=my-corpus FLYWHEEL_COLLECT_HOSTS=none ' +
      '(none turns that kind of source off),\n' +
      '  or set FLYWHEEL_REACH_UNRESTRICTED=1 where every spec is trusted.';
  }
}

/** Throws WorkerReachUnset unless at least one reach list is set or the operator said unrestricted on purpose. */
export function checkWorkerReach(config: FlywheelConfig): void {
  const { collectRoots, collectBuckets, collectHosts, reachUnrestricted } = config.worker;
  if (reachUnrestricted || collectRoots || collectBuckets || collectHosts) return;
  throw new WorkerReachUnset();
}

/**
 * The reach of the local stacks (`flywheel start`, `flywheel dev`): path sources confined to the working directory
 * unless FLYWHEEL_COLLECT_ROOTS or FLYWHEEL_REACH_UNRESTRICTED says otherwise (sample sources need no folder);
 * `notice` is the one line that says so, absent when nothing was confined.
 */
export function confineLocalReach(config: FlywheelConfig, cwd: string): { config: FlywheelConfig; notice?: string } {
  const { worker } = config;
  if (worker.reachUnrestricted || worker.collectRoots !== undefined) return { config };
  return {
    config: { ...config, worker: { ...worker, collectRoots: [cwd] } },
    notice:
      `Path sources read only under ${cwd} (the bundled sample corpus needs no folder); ` +
      'set FLYWHEEL_COLLECT_ROOTS to choose folders, or FLYWHEEL_REACH_UNRESTRICTED=1 for any',
  };
}
