import type { FlywheelConfig } from '../config';
import { createS3Client } from './s3-store';
import { storeFromLocation, TieredStore, TIERS, type Tier } from './tiered-store';
import type { ObjectStore } from './object-store';
import { BoundedStore } from './bounded-store';
import type { S3Client } from '@aws-sdk/client-s3';

/** The worker's TieredStore from configuration; S3 tiers share one client (one connection pool). */
export function tieredStoreFromConfig(
  config: Pick<FlywheelConfig, 'tiers' | 's3'> & { hotMaxBytes?: number },
): TieredStore {
  let client: S3Client | undefined;
  const stores = {} as Record<Tier, ObjectStore>;
  for (const tier of TIERS) {
    const location = config.tiers[tier];
    if (location.startsWith('s3://')) client ??= createS3Client(config.s3);
    stores[tier] = storeFromLocation(location, client);
  }
  // The hot tier is a cache: bounded when FLYWHEEL_HOT_MAX_BYTES is set.
  if (config.hotMaxBytes && config.hotMaxBytes > 0) stores.hot = new BoundedStore(stores.hot, config.hotMaxBytes);
  return new TieredStore(stores);
}
