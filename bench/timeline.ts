import type { Client } from '@temporalio/client';

/** One activity attempt that completed, from the workflow's history (times in seconds from the workflow's start). */
interface Span {
  type: string;
  start: number;
  end: number;
}

/** Per activity type: how many ran, from the first start to the last end, and their summed duration. */
export interface StageSpan {
  type: string;
  count: number;
  first: number;
  last: number;
  busy: number;
}

/** Where a run's wall time went: each activity type's span, and the time with 0, 1, 2… activities running. */
export interface Timeline {
  wall: number;
  stages: StageSpan[];
  /** concurrency[k] = seconds during which exactly k activities ran (the last entry: k or more). */
  concurrency: number[];
}

const seconds = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  t ? Number(t.seconds ?? 0) + (t.nanos ?? 0) / 1e9 : 0;

/**
 * Reads a finished workflow's history and lays its activities out in time: which stage ran when and how many
 * activities overlapped. The history holds each activity's last attempt only (a retried attempt's time is not
 * counted), and its wall time runs from the first event to the last. The benches print it under their figures, so a missed busy-share target says where the idle
 * cores were (a barrier between stages, one long activity, scheduling).
 */
export async function activityTimeline(client: Client, workflowId: string, slots = 2): Promise<Timeline> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const t0 = seconds(events[0]?.eventTime);
  const scheduled = new Map<string, string>();
  const started = new Map<string, { type: string; at: number }>();
  const spans: Span[] = [];
  for (const e of events) {
    const id = String(e.eventId);
    const at = seconds(e.eventTime) - t0;
    if (e.activityTaskScheduledEventAttributes)
      scheduled.set(id, e.activityTaskScheduledEventAttributes.activityType?.name ?? '?');
    else if (e.activityTaskStartedEventAttributes) {
      const from = String(e.activityTaskStartedEventAttributes.scheduledEventId);
      started.set(id, { type: scheduled.get(from) ?? '?', at });
    } else {
      const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
      const s = done && started.get(String(done.startedEventId));
      if (s) spans.push({ type: s.type, start: s.at, end: at });
    }
  }
  const wall = seconds(events.at(-1)?.eventTime) - t0;
  const byType = new Map<string, StageSpan>();
  for (const s of spans) {
    const stage = byType.get(s.type) ?? { type: s.type, count: 0, first: s.start, last: s.end, busy: 0 };
    stage.count += 1;
    stage.first = Math.min(stage.first, s.start);
    stage.last = Math.max(stage.last, s.end);
    stage.busy += s.end - s.start;
    byType.set(s.type, stage);
  }
  const edges = spans.flatMap((s) => [
    { at: s.start, d: 1 },
    { at: s.end, d: -1 },
  ]);
  edges.sort((a, b) => a.at - b.at || a.d - b.d);
  const concurrency = new Array<number>(slots + 1).fill(0);
  let running = 0;
  let last = 0;
  for (const edge of edges) {
    concurrency[Math.min(running, slots)] += edge.at - last;
    running += edge.d;
    last = edge.at;
  }
  concurrency[0] += Math.max(0, wall - last);
  return { wall, stages: [...byType.values()].sort((a, b) => a.first - b.first), concurrency };
}

/** The timeline as lines for a bench's log. */
export function formatTimeline(name: string, t: Timeline): string {
  const share = (s: number) => `${((100 * s) / t.wall).toFixed(0)}%`;
  const lines = [
    `${name}: wall ${t.wall.toFixed(1)} s; ` +
      t.concurrency.map((s, k) => `${k}${k === t.concurrency.length - 1 ? '+' : ''} running ${share(s)}`).join(', '),
  ];
  for (const s of t.stages)
    lines.push(
      `  ${s.type.padEnd(28)} ${String(s.count).padStart(4)} × ` +
        `${s.first.toFixed(1).padStart(6)}–${s.last.toFixed(1).padEnd(6)} s, busy ${s.busy.toFixed(1)} s`,
    );
  return lines.join('\n');
}
