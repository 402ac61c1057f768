import { isGrpcServiceError, type WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time';
import { temporal } from '@temporalio/proto';

/** What a scenario reports when its assertions held. */
export interface ScenarioOutcome {
  /** e.g. "completed; same dataset (62 shards verified)". */
  outcome: string;
  /** Seconds from the end of the fault (kill, server back, space freed) until the interrupted step completed. */
  recoverSeconds?: number;
}

export interface Scenario {
  name: string;
  run(): Promise<ScenarioOutcome>;
}

export interface ScenarioResult extends ScenarioOutcome {
  name: string;
  status: 'pass' | 'fail' | 'skip';
  seconds: number;
}

/** Thrown by a scenario that this machine cannot stage (say, no way to mount a small filesystem). */
export class ScenarioSkipped extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'ScenarioSkipped';
  }
}

export async function runScenario(scenario: Scenario): Promise<ScenarioResult> {
  const started = Date.now();
  const seconds = () => (Date.now() - started) / 1000;
  try {
    const outcome = await scenario.run();
    return { name: scenario.name, status: 'pass', seconds: seconds(), ...outcome };
  } catch (err) {
    if (err instanceof ScenarioSkipped)
      return { name: scenario.name, status: 'skip', seconds: seconds(), outcome: `skipped: ${err.message}` };
    const message = err instanceof Error ? err.message : String(err);
    console.error(`[faults] ${scenario.name} failed:`, err);
    return { name: scenario.name, status: 'fail', seconds: seconds(), outcome: `FAILED: ${message.split('\n')[0]}` };
  }
}

/** The summary table: scenario, outcome, time to recover. */
export function formatTable(results: readonly ScenarioResult[]): string {
  const rows = [
    ['scenario', 'result', 'outcome', 'recover (s)', 'total (s)'],
    ...results.map((r) => [
      r.name,
      r.status,
      r.outcome,
      r.recoverSeconds === undefined ? '-' : r.recoverSeconds.toFixed(1),
      r.seconds.toFixed(0),
    ]),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const line = (row: string[]) => `| ${row.map((cell, c) => cell.padEnd(widths[c])).join(' | ')} |`;
  return [line(rows[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)].join('\n');
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value, failing with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  timeoutMs = 120_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

const STARTED = temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED;

/** A pending activity of this type that a worker has started, if there is one. */
export async function startedActivity(handle: WorkflowHandle, type: string) {
  const described = await handle.describe();
  return described.raw.pendingActivities?.find((a) => a.activityType?.name === type && a.state === STARTED);
}

/** An activity execution as the finished history tells it. */
export interface ActivityRun {
  type: string;
  attempt: number;
  /** When its last attempt completed (ms since the epoch), if it did. */
  completedAt?: number;
  /** What it returned (JSON payloads; Flywheel encrypts nothing unless FLYWHEEL_CODEC_KEYS is set). */
  result?: unknown;
}

/** Every activity of a workflow run with its final attempt number, from the history. */
export async function activityRuns(handle: WorkflowHandle): Promise<ActivityRun[]> {
  const events = (await handle.fetchHistory()).events ?? [];
  const byScheduled = new Map<number, ActivityRun>();
  for (const e of events) {
    const id = Number(e.eventId);
    if (e.activityTaskScheduledEventAttributes) {
      byScheduled.set(id, { type: e.activityTaskScheduledEventAttributes.activityType?.name ?? '?', attempt: 1 });
    } else if (e.activityTaskStartedEventAttributes) {
      const run = byScheduled.get(Number(e.activityTaskStartedEventAttributes.scheduledEventId));
      if (run) run.attempt = e.activityTaskStartedEventAttributes.attempt ?? 1;
    } else if (e.activityTaskCompletedEventAttributes) {
      const completed = e.activityTaskCompletedEventAttributes;
      const run = byScheduled.get(Number(completed.scheduledEventId));
      const data = completed.result?.payloads?.[0]?.data;
      if (run) {
        run.completedAt = tsToMs(e.eventTime);
        run.result = data && data.length > 0 ? JSON.parse(Buffer.from(data).toString('utf8')) : undefined;
      }
    }
  }
  return [...byScheduled.values()];
}

/**
 * Seconds from `since` until the last retried activity of `type` completed: how long the interrupted step took to
 * come back. Fails when none of that type was retried, i.e. the fault missed the step it was aimed at.
 */
export async function recoveredAfter(handle: WorkflowHandle, type: string, since: number): Promise<number> {
  const retried = (await activityRuns(handle)).filter((r) => r.type === type && r.attempt > 1 && r.completedAt);
  if (retried.length === 0) throw new Error(`no ${type} activity was retried: the fault did not interrupt it`);
  return (Math.max(...retried.map((r) => r.completedAt!)) - since) / 1000;
}

/** The workflow's result, waiting through a Temporal server that is down or restarting. */
export async function resultThroughOutages<T>(handle: WorkflowHandle, timeoutMs = 600_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return (await handle.result()) as T;
    } catch (err) {
      if (!isUnavailable(err) || Date.now() > deadline) throw err;
      await sleep(500);
    }
  }
}

function isUnavailable(err: unknown): boolean {
  for (let e: unknown = err; e; e = (e as { cause?: unknown }).cause) {
    if (isGrpcServiceError(e)) return true;
    if (e instanceof Error && /UNAVAILABLE|ECONNREFUSED|transport|connect/i.test(e.message)) return true;
  }
  return false;
}
