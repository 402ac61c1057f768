import type { VerifyOptions } from './band-join';
import { InvalidDedupOptions } from './errors';
import { EQUAL_WEIGHTS, optimalParams, type LshParams, type LshWeights } from './lsh-params';
import { DEFAULT_MINHASH, type MinHashParams } from './minhash';

export interface DedupOptions extends Partial<MinHashParams> {
  /** Jaccard similarity from which two documents are near duplicates (0 < t < 1). Default 0.8. */
  threshold?: number;
  /** Fix the number of bands (rows = numPerm / bands, which must divide evenly) instead of optimizing them. */
  bands?: number;
  /** Weights of the FP and FN areas when choosing bands × rows. Default: recall-leaning when verifying, else equal. */
  weights?: LshWeights;
  /**
   * How candidate pairs from the bands are verified: `exact` (default; also `true`) by the exact Jaccard of their
   * shingle sets against the threshold, so no pair below it is ever joined; `estimate` by the Jaccard the signatures
   * estimate (faster, no second read of the candidates' texts); `false` not at all (every band collision joins).
   */
  verify?: boolean | 'exact' | 'estimate';
  /**
   * Estimated Jaccard a candidate needs where it is verified by estimate (with `estimate`, and with `exact` for pairs
   * whose shingles are not at hand: documents of an `against` index); default: threshold less the estimator's
   * one-sided 95% margin.
   */
  verifyThreshold?: number;
  /** Exact dedup (same normalized text, or same `exactField`) before MinHash (default true). */
  exact?: boolean;
  /** A top-level field exact dedup compares instead of the normalized text (e.g. "url"). */
  exactField?: string;
}

/**
 * With verification on, a false positive costs one signature comparison while a false negative loses a duplicate for
 * good, so bands are chosen leaning to recall (t = 0.8, 128 permutations: 14 × 9; datasketch's equal weights: 9 × 13).
 */
export const VERIFIED_WEIGHTS: LshWeights = { falsePositive: 0.1, falseNegative: 0.9 };

/**
 * Exact verification never lets a false positive through, so its bands lean further to recall (t = 0.8, 128
 * permutations: 16 × 8). On the labelled corpus of the accuracy test, pair recall at J ≥ 0.8 goes from 0.967 (14 × 9)
 * to 0.993 for a third more candidate pairs.
 */
export const EXACT_VERIFIED_WEIGHTS: LshWeights = { falsePositive: 0.05, falseNegative: 0.95 };

export interface ResolvedDedupOptions {
  minhash: MinHashParams;
  threshold: number;
  lsh: LshParams;
  weights: LshWeights;
  /** How candidates are verified. */
  verification: 'exact' | 'estimate' | 'none';
  /** The bar of an estimated pair; undefined: candidates are not verified. */
  verifyThreshold: number | undefined;
  exact: boolean;
  exactField: string | undefined;
}

/** The estimator's one-sided 95% lower margin at similarity t: accept unless J < t is likely. */
export function defaultVerifyThreshold(threshold: number, numPerm: number): number {
  return Math.max(0, threshold - 1.645 * Math.sqrt((threshold * (1 - threshold)) / numPerm));
}

export function resolveDedupOptions(opts: DedupOptions = {}): ResolvedDedupOptions {
  const problems: string[] = [];
  const minhash: MinHashParams = { ...DEFAULT_MINHASH };
  for (const [k, v] of Object.entries(opts))
    if (k in minhash && v !== undefined) (minhash as unknown as Record<string, unknown>)[k] = v;
  const threshold = opts.threshold ?? 0.8;
  const wholeAtLeast = (name: string, value: number, min: number) => {
    if (!Number.isInteger(value) || value < min) problems.push(`${name} = ${value}: expected a whole number ≥ ${min}`);
  };
  if (!(typeof threshold === 'number' && threshold > 0 && threshold < 1))
    problems.push(`threshold = ${threshold}: expected a number strictly between 0 and 1`);
  wholeAtLeast('num_perm', minhash.numPerm, 1);
  wholeAtLeast('ngram', minhash.ngram, 1);
  if (!Number.isInteger(minhash.seed)) problems.push(`seed = ${minhash.seed}: expected a whole number`);
  const verification = opts.verify === false ? 'none' : opts.verify === 'estimate' ? 'estimate' : 'exact';
  if (opts.verify !== undefined && ![true, false, 'exact', 'estimate'].includes(opts.verify))
    problems.push(`verify = ${String(opts.verify)}: expected 'exact', 'estimate' or false`);
  const verify = verification !== 'none';
  const weights =
    opts.weights ?? (verification === 'exact' ? EXACT_VERIFIED_WEIGHTS : verify ? VERIFIED_WEIGHTS : EQUAL_WEIGHTS);
  let lsh: LshParams = { bands: 1, rows: 1 };
  if (opts.bands !== undefined) {
    wholeAtLeast('bands', opts.bands, 1);
    if (Number.isInteger(opts.bands) && opts.bands >= 1 && Number.isInteger(minhash.numPerm)) {
      if (minhash.numPerm % opts.bands !== 0)
        problems.push(
          `num_perm = ${minhash.numPerm} is not divisible into ${opts.bands} bands: use a num_perm that is a multiple of ${opts.bands}, or other bands`,
        );
      else lsh = { bands: opts.bands, rows: minhash.numPerm / opts.bands };
    }
  }
  const verifyThreshold = verify
    ? (opts.verifyThreshold ?? defaultVerifyThreshold(threshold, minhash.numPerm))
    : undefined;
  if (verifyThreshold !== undefined && !(verifyThreshold >= 0 && verifyThreshold <= 1))
    problems.push(`verify threshold = ${verifyThreshold}: expected a number from 0 to 1`);
  if (opts.exactField !== undefined && opts.exactField.length === 0)
    problems.push('exact field: expected a field name');
  if (problems.length) throw new InvalidDedupOptions(problems);
  if (opts.bands === undefined) lsh = optimalParams(threshold, minhash.numPerm, weights);
  return {
    minhash,
    threshold,
    lsh,
    weights,
    verification,
    verifyThreshold,
    exact: opts.exact ?? true,
    exactField: opts.exactField,
  };
}

/** What the verification of candidate pairs is given for these options. */
export function verifyOptionsOf(
  options: Pick<ResolvedDedupOptions, 'verification' | 'threshold' | 'verifyThreshold'>,
): VerifyOptions {
  switch (options.verification) {
    case 'none':
      return {};
    case 'estimate':
      return { minSimilarity: options.verifyThreshold };
    case 'exact':
      return { minSimilarity: options.threshold, minEstimated: options.verifyThreshold };
  }
}
