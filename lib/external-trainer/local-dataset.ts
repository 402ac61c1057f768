import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import { DatasetMetaSchema, type DatasetMeta } from '../pipeline/commit-dataset';
import {
  ChecksumMismatch,
  CorruptManifest,
  openVerified,
  readManifest,
  type ArtifactRef,
  type TieredStore,
} from '../storage';

/** What FLYWHEEL_DATASET_FILE holds: the dataset manifest, its tokenizer, and each split's shards as local paths. */
export interface LocalDataset {
  manifest: string;
  tokenizer: DatasetMeta['tokenizer'];
  splits: Record<'train' | 'validation', { shards: string[]; tokens: number; documents: number }>;
}

/**
 * The dataset's shards as local files a trainer can open: shards in a folder tier are used where they lie (their
 * size checked against the manifest); others (S3) are downloaded once into `cacheDir`, verified against their
 * sha256, and named by it, so every run on this machine shares them. Writes the description to `datasetFile`.
 */
export async function localizeDataset(
  store: TieredStore,
  manifestUri: string,
  cacheDir: string,
  datasetFile: string,
): Promise<LocalDataset> {
  const manifest = await readManifest(store, manifestUri, DatasetMetaSchema.pick({ tokenizer: true, splits: true }));
  const meta = manifest.meta;
  const local = async (split: 'train' | 'validation') => {
    const shards: string[] = [];
    for (const shard of meta.splits[split].shards) {
      const entry = manifest.objects.find((o) => o.uri === shard.uri);
      if (entry === undefined) {
        throw new CorruptManifest(manifestUri, `its ${split} split names ${shard.uri}, which it does not list`);
      }
      shards.push(await localShard(store, entry, cacheDir));
    }
    return { shards, tokens: meta.splits[split].tokens, documents: meta.splits[split].documents };
  };
  const dataset: LocalDataset = {
    manifest: manifestUri,
    tokenizer: meta.tokenizer,
    splits: { train: await local('train'), validation: await local('validation') },
  };
  await writeFile(datasetFile, `${JSON.stringify(dataset, null, 2)}\n`);
  return dataset;
}

async function localShard(store: TieredStore, entry: ArtifactRef, cacheDir: string): Promise<string> {
  const backend = store.backendUri(entry.uri);
  if (backend.startsWith('file://')) {
    const path = fileURLToPath(backend);
    const bytes = (await stat(path).catch(() => undefined))?.size;
    if (bytes !== entry.bytes) {
      throw new ChecksumMismatch(
        entry.uri,
        { expectedSha256: entry.sha256, expectedBytes: entry.bytes, actualBytes: bytes ?? 0 },
        `stored at ${path}`,
      );
    }
    return path;
  }
  const path = join(cacheDir, `${entry.sha256}.tar`);
  if ((await stat(path).catch(() => undefined))?.size === entry.bytes) return path;
  await mkdir(cacheDir, { recursive: true });
  // Written under a temporary name and renamed once verified: a cached shard is always whole.
  const partial = `${path}.${process.pid}.${Date.now()}.partial`;
  try {
    await pipeline(await openVerified(store, entry), createWriteStream(partial));
    await rename(partial, path);
  } finally {
    await rm(partial, { force: true });
  }
  return path;
}
