import type { ModelScores } from '../contracts/flywheel';
import { ModelRegistry } from '../registry';
import type { TieredStore } from '../storage';
import { readSplitTokens } from '../train/shard-tokens';
import { TrainedModel } from '../train/model-files';
import { externalTrainerOf, scoreExternalModels } from './external-scores';

export interface ModelScoring {
  store: TieredStore;
  model: string;
  /** The versions to score, champion first. */
  versions: string[];
  /** The held-out dataset's manifest: its validation split is scored. */
  heldout: string;
  /** The new feedback's dataset manifest: its validation split, or its training split when that is too small. */
  feedback: string;
  evalTokens: number;
  signal?: AbortSignal;
  onScored?: (version: string) => void;
}

/**
 * Scores model versions on the same data: the base dataset's validation split and the new feedback's. Versions of an
 * externally trained champion are scored by its evaluation command (external-scores.ts); built-in ones here.
 */
export async function scoreModels(job: ModelScoring): Promise<ModelScores[]> {
  const { store } = job;
  const registry = new ModelRegistry(store);
  const versions = await Promise.all(job.versions.map((v) => registry.get(job.model, v)));
  if (externalTrainerOf(versions[0])) {
    return scoreExternalModels({
      store,
      registry,
      versions,
      heldout: job.heldout,
      feedback: job.feedback,
      evalTokens: job.evalTokens,
      signal: job.signal,
      onScored: job.onScored,
    });
  }
  const heldout = await readSplitTokens(store, job.heldout, 'validation');
  let feedback = await readSplitTokens(store, job.feedback, 'validation');
  if (feedback.length < 16) feedback = await readSplitTokens(store, job.feedback, 'train');
  const scores: ModelScores[] = [];
  for (const version of versions) {
    const model = TrainedModel.fromFiles(await registry.loadFiles(version));
    const h = model.evaluate(heldout, { maxTokens: job.evalTokens });
    const score: ModelScores = { 'heldout.valLoss': h.loss, 'heldout.perplexity': h.perplexity };
    if (feedback.length > model.shape.contextTokens) {
      const f = model.evaluate(feedback, { maxTokens: job.evalTokens });
      score['feedback.valLoss'] = f.loss;
      score['feedback.perplexity'] = f.perplexity;
    }
    scores.push(score);
    job.onScored?.(version.version);
  }
  return scores;
}
