import * as path from 'node:path';
import { NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createActivities } from '../activities';
import { closeSharedDedupPool, closeSharedFilterPool, closeSharedTokenizerPool } from '../activities/pipeline';
import { taskQueueName, type FlywheelConfig, type TaskQueueRole } from '../lib/config';
import { tieredStoreFromConfig } from '../lib/storage/from-config';
import { nativeConnectionOptions } from '../temporal/connection';
import { flywheelDataConverter } from '../temporal/payload-codec';
import { installTracing } from '../temporal/tracing';
import { WORKFLOW_TRACING_INTERCEPTORS, workerTracing } from './tracing';
import { workerUsage } from './usage';

export const WORKFLOWS_PATH = path.join(__dirname, '..', 'workflows', 'index.ts');

const bundles = new Map<boolean, Promise<WorkflowBundleWithSourceMap>>();

/**
 * Workflow code is bundled once per process and shared by every worker in it; with traces on, the bundle carries the
 * workflow-side tracing interceptors (a prebuilt bundle ignores WorkerOptions.interceptors.workflowModules).
 */
export function workflowBundle(traced = false): Promise<WorkflowBundleWithSourceMap> {
  let bundle = bundles.get(traced);
  if (!bundle) {
    bundle = bundleWorkflowCode({
      workflowsPath: WORKFLOWS_PATH,
      workflowInterceptorModules: traced ? [WORKFLOW_TRACING_INTERCEPTORS] : [],
      logger: quietBundlerLogger,
    });
    bundles.set(traced, bundle);
  }
  return bundle;
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
  const tracing = installTracing(config);
  const traced = tracing ? workerTracing(tracing) : undefined;
  const bundle = roles.includes('io') ? await workflowBundle(traced !== undefined) : undefined;
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
        ...(traced ?? {}),
        // Usage recording wraps each activity outermost, so its own span and every other interceptor are measured.
        interceptors: { activity: [...workerUsage(store).activity!, ...(traced?.interceptors.activity ?? [])] },
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
      await closeSharedFilterPool();
      if (!opts.connection) await connection.close();
    },
  };
}
