import { z } from 'zod';

const days = z.number().min(0).describe('age in days (0: everything already written)');
const tierPrefix = z
  .string()
  .regex(/^(hot|warm|cold):\/\/([^/\s]+\/)+$/, "a tier folder ending in '/', such as hot://runs/ or warm://feedback/");

/**
 * What the storage lifecycle keeps, moves and deletes: a policy as data, each rule optional. Nothing a manifest still
 * needs is ever touched (a registered model's dataset and files, the champion's lineage, a run's `latest` checkpoint,
 * anything a committed manifest lists); an `expire` rule that would delete such an object refuses the whole policy.
 */
export const LifecyclePolicy = z
  .object({
    intermediates: z
      .object({ deleteAfterDays: days })
      .strict()
      .optional()
      .describe("delete a committed dataset's pipeline intermediates (warm://pipelines/...) this old"),
    datasets: z
      .object({ coldAfterDays: days })
      .strict()
      .optional()
      .describe('move dataset versions no registered model or newer dataset references to cold at this age'),
    expire: z
      .array(z.object({ prefix: tierPrefix, afterDays: days }).strict())
      .default([])
      .describe('delete every object under a folder at this age (refused if a manifest still needs one)'),
  })
  .strict();
export type LifecyclePolicy = z.infer<typeof LifecyclePolicy>;

/** The storageLifecycle workflow's one argument. `{ "policy": { "intermediates": { "deleteAfterDays": 7 } } }` */
export const StorageLifecycleSpec = z
  .object({
    policy: LifecyclePolicy,
    apply: z.boolean().default(false).describe('false: only plan (a dry run); true: move and delete'),
    schedule: z
      .object({
        cron: z.string().min(9).default('0 3 * * *').describe('when the lifecycle runs (cron, 5 fields)'),
        timezone: z.string().default('UTC').describe('IANA time zone of the cron'),
      })
      .strict()
      .prefault({}),
  })
  .strict();
export type StorageLifecycleSpec = z.infer<typeof StorageLifecycleSpec>;
export type StorageLifecycleInput = z.input<typeof StorageLifecycleSpec>;

/** One thing the policy moves or deletes, as a person checks it: what, why, how many objects and bytes. */
export interface LifecycleAction {
  action: 'delete' | 'cold';
  /** `intermediates`, `dataset` or `expire`. */
  rule: 'intermediates' | 'dataset' | 'expire';
  /** The folder (a pipeline run, a dataset version, an expired prefix) the objects are in. */
  target: string;
  objects: number;
  bytes: number;
  /** Objects in the folder left where they are because a manifest lists them. */
  kept?: number;
  reason: string;
}

/** What a run of the policy would do (dry run) or did (applied). */
export interface LifecyclePlan {
  /** The time ages were measured from (workflow time). */
  now: string;
  actions: LifecycleAction[];
  /** Dataset versions old enough to move but kept in warm, with what needs them. */
  retained: { target: string; reason: string }[];
  deleteObjects: number;
  deleteBytes: number;
  coldObjects: number;
  coldBytes: number;
}

export interface StorageLifecycleResult {
  applied: boolean;
  plan: LifecyclePlan;
}

export interface StorageLifecycleProgress {
  stage: 'validate' | 'plan' | 'apply' | 'done';
  actions?: number;
  done?: number;
}

/** The Temporal Schedule that runs the lifecycle. */
export const STORAGE_LIFECYCLE_SCHEDULE_ID = 'storage-lifecycle';
