import type { ArtifactRef } from '../storage/manifest';
import type { TieredStore } from '../storage/tiered-store';
import { countDrop, emptyStats } from '../contracts/pipeline-results';
import { parseSpec } from '../contracts/invalid-spec';
import type { Document } from '../document';
import { QualitySpec } from '../quality/spec';
import { FilterPool } from '../quality/filter-pool';
import type { FilterResult } from '../quality';
import { commitStage, type StageOutput } from './stage-output';
import { readStageDocuments, stageWriters, type PartitionLimits, type StageCursor } from './stage-io';

/** Documents per pool task: enough to amortize the transfer, few enough that every thread gets work. */
const BATCH_DOCUMENTS = 256;
const BATCH_BYTES = 1 << 20;

/** Filters on the calling thread when the executor lends no pool. */
const onThisThread = new FilterPool({ threads: 0 });

/**
 * Runs the quality filters over one batch: kept documents (with C4's line edits applied) to the batch's partitions,
 * every rejected one to its rejected partitions with the rule that rejected it, counted per rule. Resumes from a
 * cursor as collectBatch does (its `record` counts the batch's input documents). The filters run on `pool`'s threads,
 * a few batches ahead of the writer, which takes verdicts in input order: the output does not depend on the pool.
 */
export async function filterStage(input: {
  store: TieredStore;
  folder: string;
  input: ArtifactRef;
  quality: QualitySpec;
  limits: PartitionLimits;
  pool?: FilterPool;
  resumeFrom?: StageCursor;
  onCheckpoint?: (cursor: StageCursor) => void;
  onProgress?: (documents: number) => void;
}): Promise<StageOutput> {
  // A bad spec fails here as InvalidSpec, before any thread sees it.
  parseSpec('quality', QualitySpec, input.quality);
  const pool = input.pool ?? onThisThread;
  const ahead = Math.max(1, pool.threads * 2);
  const resume = input.resumeFrom;
  const stats = resume ? structuredClone(resume.stats) : emptyStats();
  const writers = stageWriters(input.store, input.folder, input.limits, resume);
  let skip = resume?.record ?? 0;
  let record = 0;
  const inFlight: Array<{ docs: Document[]; verdicts: Promise<FilterResult[]> }> = [];

  const write = async (docs: Document[], verdicts: FilterResult[]) => {
    for (let i = 0; i < docs.length; i++) {
      const doc = docs[i];
      const verdict = verdicts[i];
      record += 1;
      stats.input += 1;
      let boundary = false;
      if (verdict.kept) {
        stats.kept += 1;
        stats.keptBytes += Buffer.byteLength(verdict.doc.text);
        boundary = await writers.keep(verdict.doc);
      } else {
        countDrop(stats, verdict.rule);
        await writers.reject({ doc, stage: 'filter', rule: verdict.rule, detail: verdict.detail });
      }
      if (boundary) input.onCheckpoint?.({ unit: 0, record, ...writers.closed(), stats: structuredClone(stats) });
      if (stats.input % 500 === 0) input.onProgress?.(stats.input);
    }
  };
  const writeOldest = async () => {
    const { docs, verdicts } = inFlight.shift()!;
    await write(docs, await verdicts);
  };
  const send = async (docs: Document[]) => {
    const verdicts = pool.filter(docs, input.quality);
    verdicts.catch(() => undefined); // awaited in order below; a failure surfaces there
    inFlight.push({ docs, verdicts });
    if (inFlight.length >= ahead) await writeOldest();
  };

  try {
    let batch: Document[] = [];
    let batchBytes = 0;
    for await (const doc of readStageDocuments(input.store, [input.input])) {
      if (skip > 0) {
        skip -= 1;
        record += 1;
        continue;
      }
      batch.push(doc);
      batchBytes += doc.text.length;
      if (batch.length >= BATCH_DOCUMENTS || batchBytes >= BATCH_BYTES) {
        await send(batch);
        batch = [];
        batchBytes = 0;
      }
    }
    if (batch.length > 0) await send(batch);
    while (inFlight.length > 0) await writeOldest();
  } finally {
    // Batches still out when a write fails finish on their threads; nothing waits for them.
    inFlight.length = 0;
  }
  const out = await writers.finish();
  return commitStage(input.store, input.folder, 'pipeline-filter', { ...out, stats });
}
