/**
 * Banding parameters for MinHash LSH: b bands of r rows make two documents of Jaccard similarity s a candidate
 * pair with probability 1 − (1 − s^r)^b, an S-curve whose steep part sits at the threshold.
 */
export interface LshParams {
  bands: number;
  rows: number;
}

export interface LshWeights {
  falsePositive: number;
  falseNegative: number;
}

/** datasketch's default: false positives and false negatives weigh the same. */
export const EQUAL_WEIGHTS: LshWeights = { falsePositive: 0.5, falseNegative: 0.5 };

/** P(candidate pair | Jaccard s). */
export function candidateProbability(s: number, { bands, rows }: LshParams): number {
  return 1 - (1 - s ** rows) ** bands;
}

/** The similarity at which a pair becomes a candidate with probability 1/2 (exactly: (1 − 2^(−1/b))^(1/r)). */
export function sCurveMidpoint({ bands, rows }: LshParams): number {
  return (1 - 0.5 ** (1 / bands)) ** (1 / rows);
}

/** The usual approximation of the S-curve's steepest point, (1/b)^(1/r). */
export function sCurveThreshold({ bands, rows }: LshParams): number {
  return (1 / bands) ** (1 / rows);
}

// 64-point Gauss–Legendre on 16 panels: the integrands are smooth polynomials in s, so this is exact to ~1e-12,
// well past what separates neighbouring (b, r) choices.
const GAUSS_NODES = [-0.8611363115940526, -0.3399810435848563, 0.3399810435848563, 0.8611363115940526];
const GAUSS_WEIGHTS = [0.3478548451374538, 0.6521451548625461, 0.6521451548625461, 0.3478548451374538];

function integrate(f: (s: number) => number, from: number, to: number, panels = 16): number {
  let total = 0;
  const width = (to - from) / panels;
  for (let p = 0; p < panels; p++) {
    const mid = from + (p + 0.5) * width;
    for (let i = 0; i < GAUSS_NODES.length; i++) total += GAUSS_WEIGHTS[i] * f(mid + (GAUSS_NODES[i] * width) / 2);
  }
  return (total * width) / 2;
}

/** Area under the S-curve below the threshold: how many dissimilar pairs become candidates. */
export function falsePositiveArea(threshold: number, p: LshParams): number {
  return integrate((s) => candidateProbability(s, p), 0, threshold);
}

/** Area above the S-curve beyond the threshold: how many similar pairs are missed. */
export function falseNegativeArea(threshold: number, p: LshParams): number {
  return integrate((s) => 1 - candidateProbability(s, p), threshold, 1);
}

/**
 * The (b, r) with b·r ≤ numPerm that minimizes w_fp·FP area + w_fn·FN area (datasketch's `optimal_param`,
 * same search order and tie-breaking): t = 0.8 with 128 permutations gives b = 9, r = 13.
 */
const chosen = new Map<string, LshParams>();

export function optimalParams(threshold: number, numPerm: number, weights: LshWeights = EQUAL_WEIGHTS): LshParams {
  const key = `${threshold}/${numPerm}/${weights.falsePositive}/${weights.falseNegative}`;
  const known = chosen.get(key);
  if (known) return { ...known };
  if (!(threshold > 0 && threshold < 1)) throw new RangeError(`threshold must be between 0 and 1 (exclusive)`);
  if (!Number.isInteger(numPerm) || numPerm < 1) throw new RangeError(`numPerm must be a whole number ≥ 1`);
  let best: LshParams = { bands: 1, rows: 1 };
  let bestError = Infinity;
  for (let bands = 1; bands <= numPerm; bands++) {
    for (let rows = 1; rows <= Math.floor(numPerm / bands); rows++) {
      const p = { bands, rows };
      const error =
        weights.falsePositive * falsePositiveArea(threshold, p) +
        weights.falseNegative * falseNegativeArea(threshold, p);
      if (error < bestError) {
        bestError = error;
        best = p;
      }
    }
  }
  chosen.set(key, best);
  return { ...best };
}
