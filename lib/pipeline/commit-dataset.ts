import { z } from 'zod';
import { FlywheelError } from '../common';
import { ArtifactRef, commitManifest, findCommittedManifest, parseManifestMeta } from '../storage/manifest';
import type { TieredStore } from '../storage/tiered-store';
import type { DatasetSummary, PipelineProgress } from '../contracts/pipeline-results';
import type { TokenDtype } from '../webdataset/npy';
import type { WrittenShard } from '../webdataset/shard-writer';
import type { Split } from '../webdataset/split';
import { STAGE_EPOCH } from './stage-output';

/** Everything the tokenize and shard steps produced, as the commit needs it. */
export interface ShardedDataset {
  dtype: TokenDtype;
  eot: number;
  vocabSize: number;
  documents: number;
  tokens: number;
  textBytes: number;
  splits: Record<Split, { shards: WrittenShard[]; documents: number; tokens: number }>;
}

export class DatasetVersionExists extends FlywheelError {
  constructor(uri: string, existing: string, wanted: string) {
    super(
      'DatasetVersionExists',
      `${uri} already holds this dataset version built from another spec (digest ${existing}, this spec ${wanted}). ` +
        'Datasets are immutable: give the spec a new version.',
      { retryable: false },
    );
  }
}

export function datasetFolder(dataset: string, version: string): string {
  return `warm://datasets/${dataset}/${version}`;
}

/**
 * Where a run writes its shards: beside the manifest, in a folder named by the spec digest, so two specs started
 * under the same version (one is refused at commit) can never overwrite each other's shards.
 */
export function shardFolder(dataset: string, version: string, digest: string): string {
  return `${datasetFolder(dataset, version)}/shards-${digest}`;
}

export function datasetManifestUri(dataset: string, version: string): string {
  return `${datasetFolder(dataset, version)}/manifest.json`;
}

/** What the dataset manifest's `meta` holds besides the shard list: everything a reader or a report needs. */
export interface DatasetMeta {
  dataset: string;
  version: string;
  specDigest: string;
  spec: unknown;
  tokenizer: DatasetSummary['tokenizer'];
  documents: number;
  tokens: number;
  textBytes: number;
  splits: Record<'train' | 'validation', { documents: number; tokens: number; shards: ShardEntry[] }>;
  stages: PipelineProgress['stages'];
  rejected: ArtifactRef[];
}

export interface ShardEntry {
  uri: string;
  samples: number;
  tokens: number;
}

const ShardEntrySchema = z.looseObject({ uri: z.string(), samples: z.number(), tokens: z.number() });
const SplitMetaSchema = z.looseObject({ documents: z.number(), tokens: z.number(), shards: z.array(ShardEntrySchema) });
const StageStatsSchema = z.looseObject({
  input: z.number(),
  kept: z.number(),
  dropped: z.record(z.string(), z.number()),
  keptBytes: z.number(),
  skipped: z.record(z.string(), z.number()).optional(),
});

/**
 * A dataset manifest's `meta`, as readers parse it. Loose at every level, so what a writer adds (a composed
 * dataset's `composedOf` and `nearIndex`) passes through; fields are listed in the order `commitDataset` writes them.
 */
export const DatasetMetaSchema = z.looseObject({
  dataset: z.string(),
  version: z.string(),
  specDigest: z.string(),
  spec: z.unknown(),
  tokenizer: z.looseObject({
    encoding: z.string(),
    dtype: z.enum(['uint16', 'uint32']),
    eot: z.number(),
    vocabSize: z.number(),
  }),
  documents: z.number(),
  tokens: z.number(),
  textBytes: z.number(),
  splits: z.looseObject({ train: SplitMetaSchema, validation: SplitMetaSchema }),
  stages: z.looseObject({
    collect: StageStatsSchema.optional(),
    filter: StageStatsSchema.optional(),
    dedup: StageStatsSchema.optional(),
    nearDedup: StageStatsSchema.optional(),
  }),
  rejected: z.array(ArtifactRef.loose()),
}) satisfies z.ZodType<DatasetMeta>;

/** The committed dataset of this name and version if it was built from the same spec; a different spec is refused. */
export async function findCommittedDataset(
  store: TieredStore,
  key: { dataset: string; version: string; digest: string },
): Promise<DatasetSummary | undefined> {
  const uri = datasetManifestUri(key.dataset, key.version);
  const found = await findCommittedManifest(store, uri);
  if (!found) return undefined;
  const { meta } = parseManifestMeta(uri, found.manifest, DatasetMetaSchema);
  if (meta.specDigest !== key.digest) throw new DatasetVersionExists(uri, meta.specDigest, key.digest);
  return summaryOf(found.ref, meta, true);
}

/** Writes the dataset manifest, last: every shard with its sha256 and size, splits, tokenizer, spec and stage stats. */
export async function commitDataset(
  store: TieredStore,
  input: Omit<DatasetMeta, 'splits' | 'tokenizer' | 'documents' | 'tokens' | 'textBytes'> & {
    sharded: ShardedDataset;
    encoding: string;
  },
): Promise<DatasetSummary> {
  const { sharded } = input;
  const split = (name: 'train' | 'validation') => ({
    documents: sharded.splits[name].documents,
    tokens: sharded.splits[name].tokens,
    shards: sharded.splits[name].shards.map((s) => ({ uri: s.uri, samples: s.samples, tokens: s.tokens })),
  });
  const meta: DatasetMeta = {
    dataset: input.dataset,
    version: input.version,
    specDigest: input.specDigest,
    spec: input.spec,
    tokenizer: { encoding: input.encoding, dtype: sharded.dtype, eot: sharded.eot, vocabSize: sharded.vocabSize },
    documents: sharded.documents,
    tokens: sharded.tokens,
    textBytes: sharded.textBytes,
    splits: { train: split('train'), validation: split('validation') },
    stages: input.stages,
    rejected: input.rejected,
  };
  const shards = [...sharded.splits.train.shards, ...sharded.splits.validation.shards];
  const ref = await commitManifest(store, datasetManifestUri(input.dataset, input.version), {
    kind: 'dataset',
    name: `${input.dataset}/${input.version}`,
    objects: shards.map(({ uri, sha256, bytes }) => ({ uri, sha256, bytes })),
    meta,
    createdAt: STAGE_EPOCH,
  });
  return summaryOf(ref, meta, false);
}

function summaryOf(manifest: ArtifactRef, meta: DatasetMeta, reused: boolean): DatasetSummary {
  const split = (s: DatasetMeta['splits']['train']) => ({
    shards: s.shards.length,
    documents: s.documents,
    tokens: s.tokens,
  });
  return {
    manifest,
    dataset: meta.dataset,
    version: meta.version,
    specDigest: meta.specDigest,
    tokenizer: meta.tokenizer,
    documents: meta.documents,
    tokens: meta.tokens,
    textBytes: meta.textBytes,
    splits: { train: split(meta.splits.train), validation: split(meta.splits.validation) },
    stages: meta.stages,
    rejected: meta.rejected,
    reused,
  };
}
