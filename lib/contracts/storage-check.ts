import { z } from 'zod';

const MiB = 1024 * 1024;

/**
 * The embedded default's job until the data pipeline replaces it: write objects to a tier, commit them under a
 * manifest (objects first, manifest last), then read every object back and verify its sha256.
 */
export const StorageCheckSpec = z
  .object({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes, at most 63')
      .default('storage-check')
      .describe('names the run and its output folder'),
    tier: z.enum(['hot', 'warm', 'cold']).default('warm').describe('tier the objects are written to'),
    objects: z.number().int().min(1).max(1000).default(8).describe('how many objects to write'),
    objectBytes: z
      .number()
      .int()
      .min(1)
      .max(256 * MiB)
      .default(MiB)
      .describe('size of each object in bytes'),
    seed: z.number().int().min(0).default(42).describe('seeds the object contents'),
  })
  .strict();

export type StorageCheckSpec = z.infer<typeof StorageCheckSpec>;
export type StorageCheckInput = z.input<typeof StorageCheckSpec>;

export interface StorageCheckResult {
  manifest: { uri: string; sha256: string; bytes: number };
  objects: number;
  bytes: number;
  verified: boolean;
}
