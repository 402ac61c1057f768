import { workflowInfo } from '@temporalio/workflow';

export type QueueRole = 'io' | 'cpu' | 'train';

/**
 * Workflows run on `<prefix>-io`; activities go to the queue of the resource they need. The prefix is read from the
 * workflow's own task queue, so several deployments (or test runs) can share one namespace without crossing.
 */
export function taskQueueFor(role: QueueRole): string {
  const own = workflowInfo().taskQueue;
  const prefix = own.replace(/-(io|cpu|train)$/, '');
  return `${prefix}-${role}`;
}
