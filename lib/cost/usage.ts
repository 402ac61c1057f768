import { AsyncLocalStorage } from 'node:async_hooks';

/** The storage tiers usage is counted on (the same names as lib/storage's `Tier`). */
export type UsageTier = 'hot' | 'warm' | 'cold';
export type TierBytes = Record<UsageTier, number>;

/** What one activity attempt used: the figures `flywheel cost` prices. */
export interface ActivityUsage {
  workflowId: string;
  runId: string;
  activityId: string;
  activityType: string;
  attempt: number;
  taskQueue: string;
  startedAt: string;
  /** completed, or failed (a retried, cancelled or timed-out attempt costs too). */
  outcome: 'completed' | 'failed';
  wallSeconds: number;
  /** This process's CPU (every thread) apportioned to the attempt: see lib/cost/process-cpu.ts. */
  cpuSeconds: number;
  /** GPUs held × wall seconds (external trainers). */
  gpuSeconds: number;
  bytesRead: TierBytes;
  bytesWritten: TierBytes;
  /** HTTP requests to S3, the SDK's retries of a request included. */
  s3Requests: number;
}

/** Zero bytes in every tier. */
export const noBytes = (): TierBytes => ({ hot: 0, warm: 0, cold: 0 });

/** The counters of one running activity attempt; storage and trainers add to it through {@link currentUsage}. */
export class UsageMeter {
  cpuSeconds = 0;
  gpuSeconds = 0;
  s3Requests = 0;
  readonly bytesRead = noBytes();
  readonly bytesWritten = noBytes();

  read(tier: UsageTier, bytes: number): void {
    this.bytesRead[tier] += bytes;
  }

  written(tier: UsageTier, bytes: number): void {
    this.bytesWritten[tier] += bytes;
  }
}

const meters = new AsyncLocalStorage<UsageMeter>();

/** Runs `fn` with `meter` counting what it does (the worker's usage interceptor wraps each activity in one). */
export function withUsageMeter<T>(meter: UsageMeter, fn: () => T): T {
  return meters.run(meter, fn);
}

/** The meter of the activity attempt this code runs in; undefined outside one (the CLI, tests, start-up). */
export function currentUsage(): UsageMeter | undefined {
  return meters.getStore();
}

/** Runs `fn` uncounted: what Flywheel writes about usage is not usage of the run. */
export function withoutUsageMeter<T>(fn: () => T): T {
  return meters.exit(fn);
}
