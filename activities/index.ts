import type { TieredStore } from '../lib/storage';
import { createStorageCheckActivities } from './storage-check';

export interface ActivityDeps {
  store: TieredStore;
}

/** Every activity Flywheel's workers register; workflows route each call to the queue of its resource. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createStorageCheckActivities(deps),
  };
}

export type FlywheelActivities = ReturnType<typeof createActivities>;
