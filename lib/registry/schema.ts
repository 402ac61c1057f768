import { z } from 'zod';
import { validateKey } from '../storage';

/** Model names are one path segment, safe in every store: letters, digits, '.', '_', '-'. */
export const ModelName = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
    "1–128 letters, digits, '.', '_' or '-', starting with a letter or digit",
  );
/** Versions are allocated as v1, v2, … per model. */
export const VersionName = z.string().regex(/^v[1-9][0-9]{0,15}$/, "a version such as 'v1'");

const ModelRef = z.object({ model: ModelName, version: VersionName }).strict();
const Metrics = z.record(z.string(), z.number());
const Sha256 = z.string().regex(/^[0-9a-f]{64}$/);
const IsoTime = z.iso.datetime({ offset: true });
const FileName = z.string().refine(
  (name) => {
    try {
      validateKey(name);
      return true;
    } catch {
      return false;
    }
  },
  { message: "a relative '/'-separated file name without '.', '..' or empty segments" },
);

export interface ModelFileRef {
  name: string;
  uri: string;
  sha256: string;
  bytes: number;
}

export interface ModelVersion {
  model: string;
  /** 'v1', 'v2', … allocated in order per model. */
  version: string;
  /** ISO time. */
  createdAt: string;
  /** Training run name. */
  run: string;
  /** Dataset manifest URI. */
  dataset: string;
  /** Set when fine-tuned from a registered model. */
  parent?: { model: string; version: string };
  step: number;
  specDigest: string;
  spec: unknown;
  codeVersion: string;
  /** e.g. valLoss, perplexity, loss. */
  metrics: Record<string, number>;
  weightsSha256: string;
  /** URI of this version's file manifest (sha256 of each file), written last. */
  manifest: string;
  files: ModelFileRef[];
}

export interface RegisterInput {
  model: string;
  run: string;
  dataset: string;
  parent?: { model: string; version: string };
  step: number;
  specDigest: string;
  spec: unknown;
  metrics: Record<string, number>;
  /**
   * File name → bytes, copied into the registry. `weights.f32`, when present, is what `weightsSha256` hashes;
   * otherwise it hashes every file (names and hashes).
   */
  files: Record<string, Buffer>;
  /** Defaults to {@link codeVersion} of the running code. */
  codeVersion?: string;
}

export const RegisterInputSchema = z
  .object({
    model: ModelName,
    run: z.string().min(1),
    dataset: z.string().min(1),
    parent: ModelRef.optional(),
    step: z.number().int().min(0),
    specDigest: z.string().min(1),
    spec: z.unknown(),
    metrics: Metrics,
    files: z
      .record(FileName, z.instanceof(Buffer, { message: 'file contents must be a Buffer' }))
      .refine((files) => Object.keys(files).length > 0, { message: 'a model version needs at least one file' }),
    codeVersion: z.string().min(1).optional(),
  })
  .strict();

/** What a version's manifest carries in `meta`: the version minus what the manifest itself lists. */
export interface ModelVersionMeta extends Omit<ModelVersion, 'manifest' | 'files'> {
  /** Identifies one registration (run, step, weights): a retried registration finds its own version by it. */
  registration: string;
  /** File names, in the order of the manifest's objects. */
  fileNames: string[];
}

export const ModelVersionMetaSchema: z.ZodType<ModelVersionMeta> = z.object({
  model: ModelName,
  version: VersionName,
  createdAt: IsoTime,
  run: z.string(),
  dataset: z.string(),
  parent: ModelRef.optional(),
  step: z.number().int().min(0),
  specDigest: z.string(),
  spec: z.unknown(),
  codeVersion: z.string(),
  metrics: Metrics,
  weightsSha256: Sha256,
  registration: z.string().min(1),
  fileNames: z.array(z.string()),
});

export interface AliasEvent {
  at: string;
  alias: 'champion';
  version: string;
  previous?: string;
  action: 'promote' | 'rollback';
  reason: string;
}

export interface AliasState {
  model: string;
  champion?: string;
  history: AliasEvent[];
}

export const AliasStateSchema: z.ZodType<AliasState> = z.object({
  model: ModelName,
  champion: VersionName.optional(),
  history: z.array(
    z.object({
      at: IsoTime,
      alias: z.literal('champion'),
      version: VersionName,
      previous: VersionName.optional(),
      action: z.enum(['promote', 'rollback']),
      reason: z.string(),
    }),
  ),
});

export interface PromotionDecision {
  id: string;
  at: string;
  model: string;
  champion?: string;
  challenger: string;
  decision: 'promote' | 'reject' | 'no-data' | 'failed';
  reason: string;
  metrics: Record<string, unknown>;
}

export const PromotionDecisionSchema: z.ZodType<PromotionDecision> = z
  .object({
    id: z.string().min(1),
    at: IsoTime,
    model: ModelName,
    champion: z.string().optional(),
    challenger: z.string(),
    decision: z.enum(['promote', 'reject', 'no-data', 'failed']),
    reason: z.string(),
    metrics: z.record(z.string(), z.unknown()),
  })
  .strict();
