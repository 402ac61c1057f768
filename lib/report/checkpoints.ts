import { CheckpointManager } from '../checkpoint';
import type { TieredStore } from '../storage';
import type { RetainedCheckpoint } from './model';

/** The checkpoints of a run that are committed now, with the tiers holding them (hot is this machine's cache). */
export async function retainedCheckpoints(store: TieredStore, run: string): Promise<RetainedCheckpoint[]> {
  const manager = new CheckpointManager({ store, runPrefix: `runs/${run}/checkpoints` });
  return (await manager.list()).map((c) => ({ step: c.step, epoch: c.epoch, tiers: c.tiers, metrics: c.metrics }));
}
