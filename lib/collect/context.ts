import type { S3Client } from '@aws-sdk/client-s3';

/** What collection needs from its host: clients and a clock, so tests and activities can supply their own. */
export interface CollectContext {
  /** Required by `s3` sources. */
  s3?: S3Client;
  /** Stamps Document.added. */
  now: () => Date;
  /** Used by `url` sources; defaults to the global fetch. */
  fetch?: typeof fetch;
  /** When given, `path` sources may read only under these folders (symbolic links resolved). */
  allowedRoots?: string[];
  /** Where `url` sources spool downloads; defaults to the OS temp folder. */
  tmpDir?: string;
}
