import type { S3Client } from '@aws-sdk/client-s3';
import type { TieredStore } from '../storage/tiered-store';

/** What collection needs from its host: clients and a clock, so tests and activities can supply their own. */
export interface CollectContext extends CollectReach {
  /** Required by `s3` sources. */
  s3?: S3Client;
  /** Required by `tier` sources: Flywheel's own storage. */
  store?: TieredStore;
  /** Stamps Document.added. */
  now: () => Date;
  /** Used by `url` sources; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** Where `url` sources spool downloads; defaults to the OS temp folder. */
  tmpDir?: string;
}

/** Where collection may read from; each list left out leaves its kind of source unrestricted. */
export interface CollectReach {
  /** `path` sources may read only under these folders (symbolic links resolved). */
  allowedRoots?: string[];
  /** `s3` sources may read only these buckets. */
  allowedBuckets?: string[];
  /** `url` sources, and every redirect they follow, may reach only these hosts (see hostAllowed). */
  allowedHosts?: string[];
}
