import { defineQuery, proxyActivities, setHandler, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { FlywheelActivities } from '../activities';
import {
  StorageLifecycleSpec,
  type StorageLifecycleProgress,
  type StorageLifecycleResult,
} from '../lib/contracts/storage-lifecycle';
import { validateSpec } from './invalid-spec-failure';
import { FlywheelKind, FlywheelRun, FlywheelStage } from './search-attributes';
import { taskQueueFor } from './task-queues';

export const storageLifecycleProgress = defineQuery<StorageLifecycleProgress>('progress');

/**
 * The storage lifecycle: plans what the policy moves to cold and deletes, ages measured from the workflow's own time,
 * and with `apply` carries the plan out. Nothing a manifest still needs is touched; a policy that would delete such
 * an object fails the run at once (LifecyclePolicyRefused), naming the object and what needs it.
 */
export async function storageLifecycle(input: unknown): Promise<StorageLifecycleResult> {
  const progress: StorageLifecycleProgress = { stage: 'validate' };
  setHandler(storageLifecycleProgress, () => progress);
  const spec = validateSpec('storageLifecycle', StorageLifecycleSpec, input);
  const io = proxyActivities<FlywheelActivities>({
    taskQueue: taskQueueFor('io'),
    startToCloseTimeout: '2 hours',
    heartbeatTimeout: '2 minutes',
    retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 10 },
  });
  const stage = (s: StorageLifecycleProgress['stage']) => {
    progress.stage = s;
    upsertSearchAttributes([{ key: FlywheelStage, value: s }]);
  };
  upsertSearchAttributes([
    { key: FlywheelKind, value: 'storage-lifecycle' },
    { key: FlywheelRun, value: workflowInfo().workflowId },
  ]);
  // Workflow time: deterministic on replay, and the one clock both steps measure ages from.
  const now = new Date().toISOString();

  stage('plan');
  const plan = await io.planStorageLifecycle({ policy: spec.policy, now });
  progress.actions = plan.actions.length;
  if (!spec.apply || plan.actions.length === 0) {
    stage('done');
    return { applied: false, plan };
  }
  stage('apply');
  const applied = await io.applyStorageLifecycle({ policy: spec.policy, now });
  progress.done = applied.actions.length;
  stage('done');
  return { applied: true, plan: applied };
}
