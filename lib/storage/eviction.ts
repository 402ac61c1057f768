import type { ListEntry, ObjectStore } from './object-store';

export interface EvictionPlan {
  /** Oldest first: the order they should be deleted in. */
  evict: ListEntry[];
  bytesBefore: number;
  bytesAfter: number;
}

/**
 * Which objects to drop so the rest fit in `maxBytes`: least recently modified first (ties broken by key, so the
 * plan is deterministic), stopping as soon as the total fits. Pure, so the policy is tested without a disk.
 */
export function planEviction(entries: readonly ListEntry[], maxBytes: number): EvictionPlan {
  if (!Number.isFinite(maxBytes) || maxBytes < 0) {
    throw new RangeError(`maxBytes must be a non-negative number of bytes, got ${maxBytes}`);
  }
  const bytesBefore = entries.reduce((sum, e) => sum + e.bytes, 0);
  const oldestFirst = [...entries].sort(
    (a, b) => a.modified.getTime() - b.modified.getTime() || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  );
  const evict: ListEntry[] = [];
  let total = bytesBefore;
  for (const entry of oldestFirst) {
    if (total <= maxBytes) break;
    evict.push(entry);
    total -= entry.bytes;
  }
  return { evict, bytesBefore, bytesAfter: total };
}

/** Bounds a cache store (the hot tier) to `maxBytes` by deleting its least recently modified objects. */
export async function evictLeastRecentlyUsed(
  store: ObjectStore,
  maxBytes: number,
  opts: { prefix?: string } = {},
): Promise<EvictionPlan> {
  const entries: ListEntry[] = [];
  for await (const entry of store.listAll(opts.prefix ?? '')) entries.push(entry);
  const plan = planEviction(entries, maxBytes);
  for (const entry of plan.evict) await store.delete(entry.key);
  return plan;
}
