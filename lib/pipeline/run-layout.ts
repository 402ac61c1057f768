import { pad } from '../common/pad';
import { nearDedupFolder } from './near-dedup/layout';
import { runFolder, type RunKey } from './stage-output';

/**
 * Where each pipeline step's output goes in a run's folder (`warm://pipelines/<dataset>/<version>/<digest>`): named
 * here once, for the steps that write it and the steps that read it.
 */
export const runLayout = {
  carryPage: (key: RunKey & { execution: number; page: number }) =>
    `${runFolder(key)}/carry/execution-${pad(key.execution)}/page-${pad(key.page)}.json`,
  collectBatch: (key: RunKey & { batch: number }) => `${runFolder(key)}/collect/batch-${pad(key.batch)}`,
  filterBatch: (key: RunKey & { batch: number }) => `${runFolder(key)}/filter/batch-${pad(key.batch)}`,
  exactDedup: (key: RunKey) => `${runFolder(key)}/dedup`,
  exactDedupKeys: (key: RunKey & { batch: number }) => `${runFolder(key)}/dedup/keys/batch-${pad(key.batch)}`,
  exactDedupDrops: (key: RunKey) => `${runFolder(key)}/dedup/drops`,
  exactDedupBatch: (key: RunKey & { batch: number }) => `${runFolder(key)}/dedup/batch-${pad(key.batch)}`,
  nearDedup: (key: RunKey) => nearDedupFolder(runFolder(key)),
  tokens: (key: RunKey & { index: number }) => `${runFolder(key)}/tokens/part-${pad(key.index)}`,
  shardLayout: (key: RunKey) => `${runFolder(key)}/shard-layout.json`,
  shardRecords: (key: RunKey) => `${runFolder(key)}/shards`,
};
