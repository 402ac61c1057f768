import { pad } from '../common/pad';
import { exactDedupKey } from '../dedup/exact';
import type { ExactKeys } from '../dedup/jsonl-batch';
import type { TieredStore } from '../storage/tiered-store';
import type { ArtifactRef } from '../storage/manifest';
import { decodeJsonlGz } from '../document/jsonl-partition';
import type { Document } from '../document/schema';
import { openVerified, readManifest } from '../storage/manifest';
import { readAll } from '../storage/object-store';
import { countDrop, emptyStats, mergeStats } from '../contracts/pipeline-results';
import { PartitionWriter } from './partition-writer';
import { commitStage, type StageOutput } from './stage-output';
import { readStageRecords, stagePartitions, stageWriters, mapPartitionRanges, type PartitionLimits } from './stage-io';

/**
 * Exact dedup fans out like the other stages: keys per batch (parallel), one join over the keys alone (small: a key
 * and an id per document), then each batch filtered by its drop list (parallel), and a commit that lists every
 * batch's partitions in order. Keeps the first document of each normalized text in input order, across all batches;
 * each later copy goes to the rejected partitions naming the document it repeats.
 */

/** The worker threads that compute exact-dedup keys: the dedup pool's, which read byte ranges of a partition file. */
export interface ExactKeyPool {
  exactKeys(file: string, start: number, end: number): Promise<ExactKeys>;
}

/**
 * Step 1, per batch: each document's key and id, in order, as gzip JSON lines `[key, id]`. Normalizing and hashing
 * run on the pool's threads, a partition's byte ranges at once, so one worker process keys on every core it has.
 */
export async function exactDedupKeys(input: {
  store: TieredStore;
  uri: string;
  input: ArtifactRef;
  pool: ExactKeyPool;
  onProgress?: (documents: number) => void;
}): Promise<(ArtifactRef & { documents: number }) | null> {
  const writer = new PartitionWriter(input.store, input.uri, { maxRecords: Infinity, maxBytes: Infinity });
  let documents = 0;
  for (const partition of await stagePartitions(input.store, [input.input])) {
    const ranges = await mapPartitionRanges(input.store, partition, (file, start, end) =>
      input.pool.exactKeys(file, start, end),
    );
    for (const { keys, ids } of ranges) {
      for (let i = 0; i < keys.length; i++) await writer.write([keys[i], ids[i]]);
      documents += keys.length;
      input.onProgress?.(documents);
    }
  }
  const [written] = await writer.finish();
  return written ? { uri: written.uri, sha256: written.sha256, bytes: written.bytes, documents } : null;
}

/** Step 2, once: which documents of each batch repeat an earlier one. One drop list per batch, `[index, firstId]`. */
export async function exactDedupJoin(input: {
  store: TieredStore;
  folder: string;
  /** Per batch; null for a batch without documents. */
  keys: readonly (ArtifactRef | null)[];
}): Promise<(ArtifactRef | null)[]> {
  const firstByKey = new Map<string, string>();
  const out: (ArtifactRef | null)[] = [];
  for (let batch = 0; batch < input.keys.length; batch++) {
    const drops: [number, string][] = [];
    let index = 0;
    const keys = input.keys[batch];
    if (!keys) {
      out.push(null);
      continue;
    }
    for await (const [key, id] of decodeJsonlGz<[string, string]>(await openVerified(input.store, keys))) {
      const first = firstByKey.get(key);
      if (first === undefined) firstByKey.set(key, id);
      else drops.push([index, first]);
      index += 1;
    }
    if (drops.length === 0) {
      out.push(null);
      continue;
    }
    const put = await input.store.put(`${input.folder}/drops-${pad(batch)}.json`, JSON.stringify(drops));
    out.push({ uri: put.uri, sha256: put.sha256, bytes: put.bytes });
  }
  return out;
}

/** Step 3, per batch: its documents with the repeats moved to the rejected partitions. */
export async function exactDedupFilter(input: {
  store: TieredStore;
  folder: string;
  input: ArtifactRef;
  drops: ArtifactRef | null;
  limits: PartitionLimits;
  onProgress?: (documents: number) => void;
}): Promise<StageOutput> {
  const drops = new Map<number, string>(
    input.drops
      ? (JSON.parse((await readAll(await openVerified(input.store, input.drops))).toString('utf8')) as [
          number,
          string,
        ][])
      : [],
  );
  let index = 0;
  const out = await moveRepeats(input, () => drops.get(index++));
  return commitStage(input.store, input.folder, 'pipeline-dedup-batch', out);
}

/**
 * The whole stage for input that is one batch: a key per document as it is read, the repeats moved to the rejected
 * partitions, the stage committed. The steps above would keep the same documents; with nothing to join across
 * batches they only add a pass over the text, a key file and three scheduling round trips.
 */
export async function exactDedupOnePass(input: {
  store: TieredStore;
  folder: string;
  input: ArtifactRef;
  limits: PartitionLimits;
  onProgress?: (documents: number) => void;
}): Promise<StageOutput> {
  const firstByKey = new Map<string, string>();
  const out = await moveRepeats(input, (doc) => {
    const key = exactDedupKey(doc.text);
    const first = firstByKey.get(key);
    if (first === undefined) firstByKey.set(key, doc.id);
    return first;
  });
  return commitStage(input.store, input.folder, 'pipeline-dedup', out);
}

/**
 * Reads a stage's documents in order and writes them to `folder`'s partitions, except those `repeats` names an
 * earlier document for: those go to the rejected partitions, naming it. Shared by the per-batch filter (a drop list
 * by index) and the one-pass stage (keys as it reads), so both cut, reject and count alike.
 */
async function moveRepeats(
  input: {
    store: TieredStore;
    folder: string;
    input: ArtifactRef;
    limits: PartitionLimits;
    onProgress?: (documents: number) => void;
  },
  repeats: (doc: Document) => string | undefined,
) {
  const stats = emptyStats();
  const writers = stageWriters(input.store, input.folder, input.limits);
  for await (const { doc, json } of readStageRecords(input.store, [input.input])) {
    stats.input += 1;
    const first = repeats(doc);
    if (first !== undefined) {
      countDrop(stats, 'dedup.exact');
      await writers.reject({
        doc,
        stage: 'dedup',
        rule: 'dedup.exact',
        detail: `same text as ${first}`,
        duplicateOf: first,
      });
      continue;
    }
    stats.kept += 1;
    stats.keptBytes += Buffer.byteLength(doc.text);
    await writers.keep(doc, json);
    if (stats.input % 1000 === 0) input.onProgress?.(stats.input);
  }
  return { ...(await writers.finish()), stats };
}

/** Step 4, once: the stage's manifest, listing every batch's partitions (and rejected partitions) in batch order. */
export async function commitExactDedup(input: {
  store: TieredStore;
  folder: string;
  batches: readonly Pick<StageOutput, 'partitions' | 'rejected' | 'stats'>[];
}): Promise<StageOutput> {
  const kept: ArtifactRef[] = [];
  const rejected: ArtifactRef[] = [];
  for (const batch of input.batches) {
    kept.push(...(await readManifest(input.store, batch.partitions)).objects);
    if (batch.rejected) rejected.push(...(await readManifest(input.store, batch.rejected)).objects);
  }
  const stats = mergeStats(input.batches.map((b) => b.stats));
  return commitStage(input.store, input.folder, 'pipeline-dedup', { kept, rejected, stats });
}
