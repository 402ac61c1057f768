import { randomUUID } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  externalScratchDir,
  localizeDataset,
  runEvaluationCommand,
  writeCheckpointFolder,
  type ExternalTrainerSpec,
  type LocalDataset,
} from '../external-trainer';
import type { ModelRegistry, ModelVersion } from '../registry';
import type { ModelScores } from '../contracts/flywheel';
import type { TrainingSpec } from '../contracts/training';
import type { TieredStore } from '../storage';

/** The external trainer a registered version was trained with, when it was. */
export function externalTrainerOf(version: Pick<ModelVersion, 'spec'>): ExternalTrainerSpec | undefined {
  return (version.spec as Partial<TrainingSpec> | undefined)?.external;
}

export interface ExternalScoring {
  store: TieredStore;
  registry: ModelRegistry;
  /** The versions to score, champion first: every one is scored by the champion's evaluation command. */
  versions: ModelVersion[];
  heldout: string;
  feedback: string;
  evalTokens: number;
  signal?: AbortSignal;
  onScored?: (version: string) => void;
}

/**
 * Scores externally trained versions the way the gate scores built-in ones: each on the held-out dataset's
 * validation split and on the new feedback (its validation split, or its training split when that is empty), all
 * with one evaluation command (the champion's) on the same local shards, so the numbers compare.
 */
export async function scoreExternalModels(job: ExternalScoring): Promise<ModelScores[]> {
  const scorer = externalTrainerOf(job.versions[0])!;
  const work = join(externalScratchDir(), 'scores', randomUUID());
  const shardCache = join(externalScratchDir(), 'shards');
  try {
    await mkdir(work, { recursive: true });
    const heldout = await localizeDataset(job.store, job.heldout, shardCache, join(work, 'heldout.json'));
    const feedback = await localizeDataset(job.store, job.feedback, shardCache, join(work, 'feedback.json'));
    const feedbackSplit = feedback.splits.validation.tokens >= 2 ? 'validation' : 'train';
    const scores: ModelScores[] = [];
    for (const version of job.versions) {
      const weightsDir = join(work, version.version);
      await writeCheckpointFolder(weightsDir, await job.registry.loadFiles(version));
      const score = (dataset: LocalDataset, split: 'train' | 'validation') =>
        runEvaluationCommand({
          external: scorer,
          weightsDir,
          shards: dataset.splits[split].shards,
          evalTokens: job.evalTokens,
          vocabSize: dataset.tokenizer.vocabSize,
          label: `${version.model}@${version.version}`,
          signal: job.signal,
        });
      const h = await score(heldout, 'validation');
      const result: ModelScores = { 'heldout.valLoss': h.valLoss, 'heldout.perplexity': Math.exp(h.valLoss) };
      if (feedback.splits[feedbackSplit].tokens >= 2) {
        const f = await score(feedback, feedbackSplit);
        result['feedback.valLoss'] = f.valLoss;
        result['feedback.perplexity'] = Math.exp(f.valLoss);
      }
      scores.push(result);
      job.onScored?.(version.version);
    }
    return scores;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
