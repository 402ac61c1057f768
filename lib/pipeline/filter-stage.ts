import type { ArtifactRef } from '../storage/manifest';
import type { TieredStore } from '../storage/tiered-store';
import { countDrop, emptyStats } from '../contracts/pipeline-results';
import { filterDocument } from '../quality';
import type { QualitySpec } from '../quality/spec';
import { commitStage, type StageOutput } from './stage-output';
import { readStageDocuments, stageWriters, type PartitionLimits, type StageCursor } from './stage-io';

/**
 * Runs the quality filters over one batch: kept documents (with C4's line edits applied) to the batch's partitions,
 * every rejected one to its rejected partitions with the rule that rejected it, counted per rule. Resumes from a
 * cursor as collectBatch does (its `record` counts the batch's input documents).
 */
export async function filterStage(input: {
  store: TieredStore;
  folder: string;
  input: ArtifactRef;
  quality: QualitySpec;
  limits: PartitionLimits;
  resumeFrom?: StageCursor;
  onCheckpoint?: (cursor: StageCursor) => void;
  onProgress?: (documents: number) => void;
}): Promise<StageOutput> {
  const resume = input.resumeFrom;
  const stats = resume ? structuredClone(resume.stats) : emptyStats();
  const writers = stageWriters(input.store, input.folder, input.limits, resume);
  let skip = resume?.record ?? 0;
  let record = 0;
  for await (const doc of readStageDocuments(input.store, [input.input])) {
    record += 1;
    if (skip > 0) {
      skip -= 1;
      continue;
    }
    stats.input += 1;
    const verdict = await filterDocument(doc, input.quality);
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
  const out = await writers.finish();
  return commitStage(input.store, input.folder, 'pipeline-filter', { ...out, stats });
}
