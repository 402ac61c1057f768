import { InvalidRetentionPolicy } from './errors';

/** Keep the newest `n` checkpoints (n ≥ 2: with one, a crash while writing its successor leaves nothing). */
export interface KeepLastN {
  kind: 'keepLastN';
  n: number;
}

/** Keep every checkpoint whose step is a multiple of `n` as a milestone, moved to cold://. */
export interface KeepEveryNSteps {
  kind: 'keepEveryNSteps';
  n: number;
}

/** Keep the `n` best checkpoints by `metric` (lower is better for 'min'); ones without the metric never qualify. */
export interface KeepBestN {
  kind: 'keepBestN';
  n: number;
  metric: string;
  mode: 'min' | 'max';
}

/** Retention is the union of these: a checkpoint survives if any policy keeps it. */
export type RetentionPolicy = KeepLastN | KeepEveryNSteps | KeepBestN;

function positiveInteger(policy: string, n: number, min: number): void {
  if (!Number.isSafeInteger(n) || n < min) {
    throw new InvalidRetentionPolicy(policy, `n must be an integer ≥ ${min}, got ${n}`);
  }
}

export function keepLastN(n: number): KeepLastN {
  const policy = { kind: 'keepLastN', n } as const;
  validateRetentionPolicy(policy);
  return policy;
}

export function keepEveryNSteps(n: number): KeepEveryNSteps {
  const policy = { kind: 'keepEveryNSteps', n } as const;
  validateRetentionPolicy(policy);
  return policy;
}

export function keepBestN(n: number, metric: string, mode: 'min' | 'max' = 'min'): KeepBestN {
  const policy = { kind: 'keepBestN', n, metric, mode } as const;
  validateRetentionPolicy(policy);
  return policy;
}

/** Policies are data (they may arrive as JSON from a spec), so they are checked where they are used, too. */
export function validateRetentionPolicy(policy: RetentionPolicy): void {
  const label = JSON.stringify(policy);
  switch (policy.kind) {
    case 'keepLastN':
      if (Number.isSafeInteger(policy.n) && policy.n === 1) {
        throw new InvalidRetentionPolicy(
          label,
          'keepLastN(1) is refused: keep at least 2 so a crash while writing the next checkpoint still leaves one',
        );
      }
      positiveInteger(label, policy.n, 2);
      return;
    case 'keepEveryNSteps':
      positiveInteger(label, policy.n, 1);
      return;
    case 'keepBestN':
      positiveInteger(label, policy.n, 1);
      if (typeof policy.metric !== 'string' || policy.metric.length === 0) {
        throw new InvalidRetentionPolicy(label, 'metric must name a metric such as valLoss');
      }
      if (policy.mode !== 'min' && policy.mode !== 'max') {
        throw new InvalidRetentionPolicy(label, `mode must be 'min' or 'max'`);
      }
      return;
    default:
      throw new InvalidRetentionPolicy(label, `unknown kind ${(policy as { kind: unknown }).kind as string}`);
  }
}

/** What retention needs to know about one committed checkpoint. */
export interface RetentionCandidate {
  step: number;
  metrics?: Readonly<Record<string, number>>;
}

export interface RetentionPlan {
  /** Steps kept where they are (hot/warm): kept by keepLastN or keepBestN, or named by `latest`. */
  keep: number[];
  /** Milestone steps that must be in cold://; those not also in `keep` leave hot and warm once copied. */
  milestonesToCold: number[];
  /** Steps no policy keeps: deleted from every tier. */
  delete: number[];
}

/**
 * The pure retention decision. Every candidate lands in `keep`, `milestonesToCold` (the two may overlap) or
 * `delete`; the step `latestStep` names (or, with no pointer, the newest) is always kept.
 */
export function retain(
  checkpoints: readonly RetentionCandidate[],
  policies: readonly RetentionPolicy[],
  latestStep?: number,
): RetentionPlan {
  if (policies.length === 0) {
    throw new InvalidRetentionPolicy('[]', 'give at least one policy; an empty list would delete every checkpoint');
  }
  policies.forEach(validateRetentionPolicy);
  const steps = [...new Set(checkpoints.map((c) => c.step))].sort((a, b) => a - b);
  const newestFirst = [...steps].reverse();
  const keep = new Set<number>();
  const milestones = new Set<number>();
  const protectedStep = latestStep ?? newestFirst[0];
  if (protectedStep !== undefined && steps.includes(protectedStep)) keep.add(protectedStep);

  for (const policy of policies) {
    switch (policy.kind) {
      case 'keepLastN':
        newestFirst.slice(0, policy.n).forEach((s) => keep.add(s));
        break;
      case 'keepEveryNSteps':
        steps.filter((s) => s % policy.n === 0).forEach((s) => milestones.add(s));
        break;
      case 'keepBestN': {
        const scored = checkpoints
          .map((c) => ({ step: c.step, value: c.metrics?.[policy.metric] }))
          .filter((c): c is { step: number; value: number } => typeof c.value === 'number' && !Number.isNaN(c.value));
        const sign = policy.mode === 'min' ? 1 : -1;
        // Ties go to the newer checkpoint, so the choice does not depend on input order.
        scored.sort((a, b) => sign * (a.value - b.value) || b.step - a.step);
        const chosen: number[] = [];
        for (const c of scored) {
          if (chosen.length >= policy.n) break;
          if (!chosen.includes(c.step)) chosen.push(c.step);
        }
        chosen.forEach((s) => keep.add(s));
        break;
      }
    }
  }
  return {
    keep: steps.filter((s) => keep.has(s)),
    milestonesToCold: steps.filter((s) => milestones.has(s)),
    delete: steps.filter((s) => !keep.has(s) && !milestones.has(s)),
  };
}

/** A training spec's retention as policies: keep the last K, every Nth as a milestone, the best N by val loss. */
export function retentionPolicies(retention: {
  keepLast: number;
  milestoneEvery?: number;
  keepBestByValLoss?: number;
}): RetentionPolicy[] {
  const policies: RetentionPolicy[] = [keepLastN(retention.keepLast)];
  if (retention.milestoneEvery) policies.push(keepEveryNSteps(retention.milestoneEvery));
  if (retention.keepBestByValLoss) policies.push(keepBestN(retention.keepBestByValLoss, 'valLoss', 'min'));
  return policies;
}
