import { resolveDedupOptions, type ResolvedDedupOptions } from '../../dedup';
import type { NearDedupSpec } from '../../contracts/pipeline';
import type { TieredStore } from '../../storage/tiered-store';

/** What every near-dedup step is given. */
export interface NearDedupStepInput {
  store: TieredStore;
  /** `<run>/near-dedup` */
  folder: string;
  near: NearDedupSpec;
}

/** Objects a step reads at once. */
export const READ_CONCURRENCY = 8;

/** The dedup options a near spec means; exact dedup is the stage before, so it is off here. */
export function nearDedupOptions(near: NearDedupSpec): ResolvedDedupOptions {
  return resolveDedupOptions({
    threshold: near.threshold,
    ngram: near.ngram,
    numPerm: near.numPerm,
    bands: near.bands,
    normalizeNumbers: near.normalizeNumbers,
    normalizeDiacritics: near.normalizeDiacritics,
    verify: near.verify,
    exact: false,
  });
}

export const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
