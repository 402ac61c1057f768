import { promisify } from 'node:util';
import { gunzip, gzip } from 'node:zlib';
import { pad } from '../common';
import type { FeedbackEvent } from '../contracts/feedback';

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

/** Every ledger writes under this prefix: `warm://feedback/<day>/<shard>/part-<NNNNNN>.jsonl.gz`. */
export const FEEDBACK_ROOT = 'warm://feedback/';

export interface FeedbackPartitionId {
  day: string;
  shard: number;
  part: number;
}

/** The folder of one ledger's partitions. */
export function feedbackLedgerPrefix(day: string, shard: number): string {
  return `${FEEDBACK_ROOT}${day}/${shard}/`;
}

/** A partition's URI: the same ledger and part number always name the same object, so a retried flush overwrites. */
export function feedbackPartitionUri({ day, shard, part }: FeedbackPartitionId): string {
  return `${feedbackLedgerPrefix(day, shard)}part-${pad(part)}.jsonl.gz`;
}

const PARTITION_URI = /^warm:\/\/feedback\/(\d{4}-\d{2}-\d{2})\/(\d+)\/part-(\d{6,})\.jsonl\.gz$/;

/** The ledger and part number of a partition URI; undefined for anything else under the prefix. */
export function parseFeedbackPartitionUri(uri: string): FeedbackPartitionId | undefined {
  const m = PARTITION_URI.exec(uri);
  return m ? { day: m[1], shard: Number(m[2]), part: Number(m[3]) } : undefined;
}

/** Partitions in reading order: by day, then shard, then part. */
export function comparePartitions(a: FeedbackPartitionId, b: FeedbackPartitionId): number {
  return a.day < b.day ? -1 : a.day > b.day ? 1 : a.shard - b.shard || a.part - b.part;
}

/** Gzip JSON lines, one event per line, in the order the ledger accepted them. Same events, same bytes. */
export async function encodeFeedbackPartition(events: readonly FeedbackEvent[]): Promise<Buffer> {
  const text = events.map((e) => JSON.stringify(e)).join('\n') + (events.length ? '\n' : '');
  return gzipAsync(Buffer.from(text));
}

export async function decodeFeedbackPartition(bytes: Buffer): Promise<FeedbackEvent[]> {
  const text = (await gunzipAsync(bytes)).toString('utf8');
  return text
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as FeedbackEvent);
}
