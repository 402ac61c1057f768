import type { CollectReach } from '../lib/collect/context';
import type { TieredStore } from '../lib/storage';
import { createPipelineActivities } from './pipeline';
import { createStorageCheckActivities } from './storage-check';
import { createTrainingActivities } from './training';
import { createExternalTrainingActivities } from './external-training';
import { createFeedbackActivities } from './feedback';
import { createFlywheelActivities } from './flywheel';
import { createStorageLifecycleActivities } from './storage-lifecycle';

/** The store, and the folders, buckets and hosts collection may read (each unrestricted when left out). */
export interface ActivityDeps extends CollectReach {
  store: TieredStore;
  /** Threads of the process's filter, dedup and tokenizer pools; the CPUs it may use when left out. */
  threads?: number;
}

/** Every activity Flywheel's workers register; workflows route each call to the queue of its resource. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createStorageCheckActivities(deps),
    ...createPipelineActivities(deps),
    ...createTrainingActivities(deps),
    ...createExternalTrainingActivities(deps),
    ...createFeedbackActivities(deps),
    ...createFlywheelActivities(deps),
    ...createStorageLifecycleActivities(deps),
  };
}

export type FlywheelActivities = ReturnType<typeof createActivities>;
