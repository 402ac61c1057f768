import { checkWorkerReach, loadConfig, type TaskQueueRole } from '../lib/config';
import { installRuntime } from './runtime';
import { createWorkers } from './workers';

/**
 * A worker process: serves the configured task queues until SIGINT or SIGTERM, then drains gracefully.
 * `flywheel worker --queues io,cpu` and `FLYWHEEL_TASK_QUEUES` choose a subset. It refuses to start (exit code 2)
 * with no reach list set unless FLYWHEEL_REACH_UNRESTRICTED says so: it serves specs from anyone who can start one.
 */
export async function runWorkerProcess(opts: { roles?: TaskQueueRole[] } = {}): Promise<void> {
  const config = loadConfig();
  checkWorkerReach(config);
  const { metricsUrl } = await installRuntime(config);
  const workers = await createWorkers(config, { roles: opts.roles });
  console.log(
    `[flywheel] worker on ${config.temporal.address} (namespace ${config.temporal.namespace}), ` +
      `queues ${workers.workers.map((w) => w.taskQueue).join(', ')}` +
      (metricsUrl ? `, metrics ${metricsUrl}` : ''),
  );
  onShutdownSignal(() => workers.shutdown());
  await workers.run();
  console.log('[flywheel] worker stopped');
}

/** First signal: graceful drain; a second one exits at once. */
export function onShutdownSignal(drain: () => Promise<void>): void {
  let draining = false;
  const handler = (signal: NodeJS.Signals) => {
    if (draining) {
      console.error(`[flywheel] ${signal} again: exiting now`);
      process.exit(130);
    }
    draining = true;
    console.log(`[flywheel] ${signal}: finishing running tasks, then stopping (again to force)`);
    drain().catch((err) => {
      console.error('[flywheel] shutdown failed:', err);
      process.exit(1);
    });
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

if (require.main === module) {
  runWorkerProcess().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(
      typeof (err as { exitCode?: number }).exitCode === 'number' ? (err as { exitCode: number }).exitCode : 1,
    );
  });
}
