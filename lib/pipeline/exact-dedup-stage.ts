import { createHash } from 'node:crypto';
import { normalizeText } from '../dedup/normalize';
import type { TieredStore } from '../storage/tiered-store';
import type { ArtifactRef } from '../storage/manifest';
import { countDrop, emptyStats } from '../spec/pipeline-results';
import { commitStage, type StageOutput } from './stage-output';
import { readStageDocuments, stageWriters, type PartitionLimits } from './stage-io';

/** Text as exact dedup compares it: normalized as near-dedup normalizes it (lowercase, punctuation dropped, words). */
export function exactDedupKey(text: string): string {
  // 128 bits of sha256: collisions are out of reach at any corpus size, and the set stays small.
  return createHash('sha256').update(normalizeText(text)).digest('base64').slice(0, 22);
}

/**
 * Keeps the first document of each normalized text, in input order, across every partition of the stage; each
 * later copy goes to the rejected partitions naming the document it repeats.
 */
export async function exactDedupStage(input: {
  store: TieredStore;
  folder: string;
  inputs: readonly ArtifactRef[];
  enabled: boolean;
  limits: PartitionLimits;
  onProgress?: (documents: number) => void;
}): Promise<StageOutput> {
  const stats = emptyStats();
  const firstById = new Map<string, string>();
  const writers = stageWriters(input.store, input.folder, input.limits);
  for await (const doc of readStageDocuments(input.store, input.inputs)) {
    stats.input += 1;
    if (input.enabled) {
      const key = exactDedupKey(doc.text);
      const first = firstById.get(key);
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
      firstById.set(key, doc.id);
    }
    stats.kept += 1;
    stats.keptBytes += Buffer.byteLength(doc.text);
    await writers.keep(doc);
    if (stats.input % 1000 === 0) input.onProgress?.(stats.input);
  }
  const out = await writers.finish();
  return commitStage(input.store, input.folder, 'pipeline-dedup', { ...out, stats });
}
