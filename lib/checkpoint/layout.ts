import { z } from 'zod';
import { pad } from '../common';
import { ArtifactRef, InvalidObjectKey, tierUri, validateKey, validatePrefix, type Tier } from '../storage';

/** Steps are zero-padded so a lexicographic listing is also a numeric one. */
const STEP_DIGITS = 12;
const STEP_DIR = /^step-(\d+)$/;

export const CHECKPOINT_MANIFEST_KIND = 'checkpoint';

/** Where one run's checkpoints live, the same keys in every tier. */
export class CheckpointLayout {
  readonly runPrefix: string;

  constructor(runPrefix: string) {
    const trimmed = runPrefix.replace(/\/+$/, '');
    validatePrefix(trimmed);
    if (trimmed === '') throw new InvalidObjectKey(runPrefix, 'the checkpoint prefix is empty');
    this.runPrefix = trimmed;
  }

  prefixUri(tier: Tier): string {
    return tierUri(tier, `${this.runPrefix}/`);
  }

  stepKey(step: number): string {
    return `${this.runPrefix}/step-${pad(step, STEP_DIGITS)}`;
  }

  stepPrefixUri(tier: Tier, step: number): string {
    return tierUri(tier, `${this.stepKey(step)}/`);
  }

  manifestUri(tier: Tier, step: number): string {
    return tierUri(tier, `${this.stepKey(step)}/manifest.json`);
  }

  /** Files sit under files/ so a caller's file may be called anything, manifest.json included. */
  fileUri(tier: Tier, step: number, name: string): string {
    return tierUri(tier, `${this.stepKey(step)}/files/${name}`);
  }

  latestUri(): string {
    return tierUri('warm', `${this.runPrefix}/latest.json`);
  }

  /** The step any key under a step folder belongs to (committed or not), or undefined. */
  stepOfKey(key: string): number | undefined {
    if (!key.startsWith(`${this.runPrefix}/`)) return undefined;
    const match = STEP_DIR.exec(key.slice(this.runPrefix.length + 1).split('/')[0]);
    return match ? Number(match[1]) : undefined;
  }

  /** The step a manifest key belongs to, or undefined for any other key. */
  stepOfManifestKey(key: string): number | undefined {
    if (!key.startsWith(`${this.runPrefix}/`) || !key.endsWith('/manifest.json')) return undefined;
    const dir = key.slice(this.runPrefix.length + 1, -'/manifest.json'.length);
    const match = STEP_DIR.exec(dir);
    return match ? Number(match[1]) : undefined;
  }
}

export function validateStep(step: number): number {
  if (!Number.isSafeInteger(step) || step < 0)
    throw new RangeError(`checkpoint step must be an integer ≥ 0, got ${step}`);
  return step;
}

export function validateFileName(name: string): string {
  return validateKey(name);
}

export const CheckpointMeta = z.object({
  runId: z.string().min(1),
  step: z.number().int().nonnegative(),
  epoch: z.number().int().nonnegative(),
  specDigest: z.string().min(1),
  metrics: z.record(z.string(), z.number()),
  /** File names in the same order as the manifest's objects. */
  files: z.array(z.string().min(1)),
  savedAt: z.iso.datetime(),
});
export type CheckpointMeta = z.infer<typeof CheckpointMeta>;

/** warm://<run>/latest.json: the newest checkpoint committed to warm, moved only after that commit. */
export const LatestPointer = z.object({
  version: z.literal(1),
  runId: z.string().min(1),
  step: z.number().int().nonnegative(),
  manifest: ArtifactRef,
  committedAt: z.iso.datetime(),
});
export type LatestPointer = z.infer<typeof LatestPointer>;
