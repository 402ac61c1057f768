import * as path from 'node:path';
import { NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../activities';
import { closeSharedDedupPool, closeSharedTokenizerPool } from '../activities/pipeline';
import { taskQueueName, type FlywheelConfig, type TaskQueueRole } from '../lib/config';
import { tieredStoreFromConfig } from '../lib/storage/from-config';
import { nativeConnectionOptions } from '../temporal/connection';
import { flywheelDataConverter } from '../temporal/payload-codec';

export const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows', 'index.ts');

let bundlePromise: Promise<WorkflowBundleWithSourceMap> | undefined;

/** Workflow code is bundled once per process and shared by every worker in it. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundlePromise ??= bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger });
  return bundlePromise;
}

const noop = () => undefined;
const quietBundlerLogger = {
  trace: noop,
  debug: noop,
  info: noop,
  warn: console.warn,
  error: console.error,
  log: noop,
};

export interface FlywheelWorkers {
  workers: { role: TaskQueueRole; taskQueue: string; worker: Worker }[];
  connection: NativeConnection;
  /** Resolves when every worker has stopped (after shutdown() or a fatal error). */
  run(): Promise<void>;
  /** Graceful: stop polling, let running activities finish within the grace time. */
  shutdown(): Promise<void>;
}

/**
 * One worker per task queue role. Workflows are registered on the io queue only (orchestration is I/O);
 * every role registers all activities, and workflows send each call to the queue of the resource it needs.
 */
export async function createWorkers(
  config: FlywheelConfig,
  opts: { roles?: TaskQueueRole[]; connection?: NativeConnection } = {},
): Promise<FlywheelWorkers> {
  const roles = opts.roles ?? config.worker.roles;
  const connection = opts.connection ?? (await NativeConnection.connect(nativeConnectionOptions(config)));
  const store = tieredStoreFromConfig(config);
  const activities = createActivities({
    store,
    threads: config.worker.threads,
    allowedRoots: config.worker.collectRoots,
    allowedBuckets: config.worker.collectBuckets,
    allowedHosts: config.worker.collectHosts,
  });
  const bundle = roles.includes('io') ? await workflowBundle() : undefined;
  const workers = await Promise.all(
    roles.map(async (role) => {
      const taskQueue = taskQueueName(config.worker.taskQueuePrefix, role);
      const worker = await Worker.create({
        connection,
        namespace: config.temporal.namespace,
        taskQueue,
        dataConverter: flywheelDataConverter(config),
        activities,
        ...(role === 'io' ? { workflowBundle: bundle } : {}),
        maxConcurrentActivityTaskExecutions: config.worker.concurrency,
        shutdownGraceTime: '10 seconds',
      });
      return { role, taskQueue, worker };
    }),
  );
  let running: Promise<void> | undefined;
  return {
    workers,
    connection,
    run() {
      running ??= Promise.all(workers.map((w) => w.worker.run())).then(() => undefined);
      return running;
    },
    async shutdown() {
      for (const w of workers) {
        if (w.worker.getState() === 'RUNNING') w.worker.shutdown();
      }
      await running;
      await closeSharedTokenizerPool();
      await closeSharedDedupPool();
      if (!opts.connection) await connection.close();
    },
  };
}
