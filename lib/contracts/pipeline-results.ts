import type { ArtifactRef } from '../storage/manifest';
import type { TokenDtype } from '../webdataset/npy';

export type { ArtifactRef };

/** What a stage saw, kept and dropped, with a count per reason: the funnel a report draws. Pure, workflow-safe. */
export interface StageStats {
  input: number;
  kept: number;
  dropped: Record<string, number>;
  /** UTF-8 bytes of the text kept. */
  keptBytes: number;
  /**
   * Records of the sources passed over as not documents, by what they were (collection only: WARC `request` and
   * `metadata` records, redirects as `warc.response_3xx`). Not part of `input`: they were never documents.
   */
  skipped?: Record<string, number>;
}

export function emptyStats(): StageStats {
  return { input: 0, kept: 0, dropped: {}, keptBytes: 0 };
}

export function countDrop(stats: StageStats, reason: string, n = 1): void {
  stats.dropped[reason] = (stats.dropped[reason] ?? 0) + n;
}

/** Counts a record passed over as not a document (StageStats.skipped). */
export function countSkipped(stats: StageStats, what: string, n = 1): void {
  stats.skipped ??= {};
  stats.skipped[what] = (stats.skipped[what] ?? 0) + n;
}

export function mergeStats(all: readonly StageStats[]): StageStats {
  const out = emptyStats();
  for (const s of all) {
    out.input += s.input;
    out.kept += s.kept;
    out.keptBytes += s.keptBytes;
    for (const [reason, n] of Object.entries(s.dropped)) countDrop(out, reason, n);
    for (const [what, n] of Object.entries(s.skipped ?? {})) countSkipped(out, what, n);
  }
  return out;
}

export type PipelineStage =
  'validate' | 'plan' | 'collect' | 'filter' | 'dedup' | 'near-dedup' | 'tokenize' | 'shard' | 'commit' | 'done';

export interface PipelineProgress {
  stage: PipelineStage;
  done: number;
  total: number;
  documents: number;
  stages: Partial<Record<'collect' | 'filter' | 'dedup' | 'nearDedup', StageStats>>;
}

export interface SplitSummary {
  shards: number;
  documents: number;
  tokens: number;
}

/** The pipeline's result: small, so it fits any workflow history; the manifest holds the rest. */
export interface DatasetSummary {
  manifest: ArtifactRef;
  dataset: string;
  version: string;
  specDigest: string;
  tokenizer: { encoding: string; dtype: TokenDtype; eot: number; vocabSize: number };
  documents: number;
  tokens: number;
  textBytes: number;
  splits: { train: SplitSummary; validation: SplitSummary };
  stages: PipelineProgress['stages'];
  /** Quarantined, filtered-out and duplicate records, kept with their reasons. */
  rejected: ArtifactRef[];
  reused: boolean;
}
