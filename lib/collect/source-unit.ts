import { createHash } from 'node:crypto';
import type { SourceSpec } from './source-spec';

/**
 * One unit of collection work (a file, an S3 object, a URL, a slice of a sample corpus): the grain an activity
 * reads, retries and resumes. Plain data, so it can travel in activity arguments.
 */
export interface SourceUnit {
  /** Stable across runs: a hash of `uri` and `ref`. */
  id: string;
  /** The source it belongs to, with defaults applied (readUnit needs its limits, format and fields). */
  source: SourceSpec;
  /** Where in the source: a relative path, an object key, the URL, or a document range `start-end` of a sample. */
  ref: string;
  /** The location documents name in Document.source: a path, s3:// URI, URL or `sample:<name>`. */
  uri: string;
  /** Size in bytes when known before reading (0 for URLs). */
  bytes: number;
  /** Last modification (ISO 8601) when the store says. */
  modified?: string;
}

export function unitId(uri: string, ref: string): string {
  return createHash('sha256').update(`${uri}\n${ref}`).digest('hex').slice(0, 16);
}

/** A document id derived from where the document sits, for sources that give none: 128 bits of sha256. */
export function derivedDocumentId(location: string): string {
  return createHash('sha256').update(location).digest('hex').slice(0, 32);
}

/** Byte-wise order of UTF-16 code units: the same on every machine and locale. */
export function compareRefs(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
