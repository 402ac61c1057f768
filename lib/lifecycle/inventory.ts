import { TIERS, tierUri, type Tier, type TieredStore } from '../storage';

/** One stored object as the lifecycle sees it: where, how big, and when it was last written (its age). */
export interface StoredObject {
  uri: string;
  tier: Tier;
  key: string;
  bytes: number;
  modified: Date;
}

/** What the first folder of a key says an object is; anything else is `other`. */
export const STORAGE_KINDS = ['datasets', 'pipelines', 'runs', 'models', 'feedback', 'flywheel', 'other'] as const;
export type StorageKind = (typeof STORAGE_KINDS)[number];

export function kindOf(key: string): StorageKind {
  const first = key.split('/')[0];
  return (STORAGE_KINDS as readonly string[]).includes(first) ? (first as StorageKind) : 'other';
}

/** Every object in every tier, from the stores' listings (sizes and LastModified, no object is read). */
export async function listInventory(store: TieredStore, onListed?: (objects: number) => void): Promise<StoredObject[]> {
  const objects: StoredObject[] = [];
  for (const tier of TIERS) {
    for await (const entry of store.tier(tier).listAll('')) {
      objects.push({
        uri: tierUri(tier, entry.key),
        tier,
        key: entry.key,
        bytes: entry.bytes,
        modified: entry.modified,
      });
      if (objects.length % 1000 === 0) onListed?.(objects.length);
    }
  }
  return objects;
}

export interface UsageCount {
  objects: number;
  bytes: number;
}

export interface StorageUsage {
  tiers: Record<Tier, UsageCount & { kinds: Record<StorageKind, UsageCount> }>;
  total: UsageCount;
}

/** Bytes and objects per tier and, within each, per kind. */
export function storageUsage(objects: readonly StoredObject[]): StorageUsage {
  const zero = (): UsageCount => ({ objects: 0, bytes: 0 });
  const tiers = Object.fromEntries(
    TIERS.map((t) => [t, { ...zero(), kinds: Object.fromEntries(STORAGE_KINDS.map((k) => [k, zero()])) }]),
  ) as StorageUsage['tiers'];
  const total = zero();
  for (const o of objects) {
    for (const count of [tiers[o.tier], tiers[o.tier].kinds[kindOf(o.key)], total]) {
      count.objects += 1;
      count.bytes += o.bytes;
    }
  }
  return { tiers, total };
}
