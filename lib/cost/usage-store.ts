import { z } from 'zod';
import type { TieredStore } from '../storage/tiered-store';
import type { ActivityUsage } from './usage';

/** Where the usage of one workflow's activity attempts lives; the id is encoded so any workflow id is one folder. */
export function usagePrefix(workflowId: string): string {
  return `warm://usage/${encodeURIComponent(workflowId)}/`;
}

/** One object per attempt: a retry never overwrites the attempt before it, a continued-as-new run not its first. */
export function usageObjectUri(u: Pick<ActivityUsage, 'workflowId' | 'runId' | 'activityId' | 'attempt'>): string {
  return `${usagePrefix(u.workflowId)}${encodeURIComponent(u.runId)}/${encodeURIComponent(u.activityId)}-${u.attempt}.json`;
}

const tierBytes = z.object({ hot: z.number(), warm: z.number(), cold: z.number() });

const ActivityUsageSchema: z.ZodType<ActivityUsage> = z.object({
  workflowId: z.string(),
  runId: z.string(),
  activityId: z.string(),
  activityType: z.string(),
  attempt: z.number(),
  taskQueue: z.string(),
  startedAt: z.string(),
  outcome: z.enum(['completed', 'failed']),
  wallSeconds: z.number(),
  cpuSeconds: z.number(),
  gpuSeconds: z.number(),
  bytesRead: tierBytes,
  bytesWritten: tierBytes,
  s3Requests: z.number(),
});

/** Every recorded attempt of a workflow (all its runs), oldest first; an unreadable record is skipped and named. */
export async function readWorkflowUsage(
  store: TieredStore,
  workflowId: string,
): Promise<{ attempts: ActivityUsage[]; unreadable: string[] }> {
  const attempts: ActivityUsage[] = [];
  const unreadable: string[] = [];
  for await (const entry of store.listAll(usagePrefix(workflowId))) {
    if (!entry.uri.endsWith('.json')) continue;
    try {
      const parsed = ActivityUsageSchema.safeParse(JSON.parse((await store.getBytes(entry.uri)).toString('utf8')));
      if (parsed.success) attempts.push(parsed.data);
      else unreadable.push(entry.uri);
    } catch {
      unreadable.push(entry.uri);
    }
  }
  attempts.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
  return { attempts, unreadable };
}
