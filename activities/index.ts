import type { TieredStore } from '../lib/storage';
import { createPipelineActivities } from './pipeline';
import { createStorageCheckActivities } from './storage-check';
import { createTrainingActivities } from './training';

export interface ActivityDeps {
  store: TieredStore;
  /** Local folders collection may read; unrestricted when left out. */
  allowedRoots?: string[];
}

/** Every activity Flywheel's workers register; workflows route each call to the queue of its resource. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createStorageCheckActivities(deps),
    ...createPipelineActivities(deps),
    ...createTrainingActivities(deps),
  };
}

export type FlywheelActivities = ReturnType<typeof createActivities>;
