import type { Context as ActivityContext } from '@temporalio/activity';
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  Next,
  WorkerInterceptors,
} from '@temporalio/worker';
import {
  processCpu,
  usageObjectUri,
  UsageMeter,
  withoutUsageMeter,
  withUsageMeter,
  type ActivityUsage,
} from '../lib/cost';
import type { TieredStore } from '../lib/storage';

/**
 * The worker side of `flywheel cost`: each activity attempt runs with a usage meter (bytes per tier, S3 requests, GPU
 * time) and its share of the process's CPU, and leaves what it used in `warm://usage/<workflow>/<run>/<activity>-
 * <attempt>.json` when it ends, completed or not. Recording never fails an activity: a failed write is one warning.
 */
export function workerUsage(store: TieredStore): WorkerInterceptors {
  return { activity: [(ctx) => ({ inbound: new ActivityUsageRecorder(ctx, store) })] };
}

class ActivityUsageRecorder implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: ActivityContext,
    private readonly store: TieredStore,
  ) {}

  async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const meter = new UsageMeter();
    const startedAt = new Date();
    const started = performance.now();
    processCpu.begin(meter);
    let outcome: ActivityUsage['outcome'] = 'failed';
    try {
      const result = await withUsageMeter(meter, () => next(input));
      outcome = 'completed';
      return result;
    } finally {
      processCpu.end(meter);
      await this.record(meter, outcome, startedAt, (performance.now() - started) / 1000);
    }
  }

  private async record(meter: UsageMeter, outcome: ActivityUsage['outcome'], startedAt: Date, wallSeconds: number) {
    const { info } = this.ctx;
    const execution = info.workflowExecution;
    if (!execution) return; // a standalone activity belongs to no run
    const usage: ActivityUsage = {
      workflowId: execution.workflowId,
      runId: execution.runId,
      activityId: info.activityId,
      activityType: info.activityType,
      attempt: info.attempt,
      taskQueue: info.taskQueue,
      startedAt: startedAt.toISOString(),
      outcome,
      wallSeconds,
      cpuSeconds: meter.cpuSeconds,
      gpuSeconds: meter.gpuSeconds,
      bytesRead: meter.bytesRead,
      bytesWritten: meter.bytesWritten,
      s3Requests: meter.s3Requests,
    };
    try {
      await withoutUsageMeter(() => this.store.put(usageObjectUri(usage), JSON.stringify(usage) + '\n'));
    } catch (err) {
      this.ctx.log.warn('usage of this activity attempt not recorded; `flywheel cost` will miss it', {
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
}
