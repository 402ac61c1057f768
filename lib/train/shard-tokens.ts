import { DatasetMetaSchema } from '../pipeline/commit-dataset';
import { openVerified, readManifest } from '../storage/manifest';
import { readAll } from '../storage/object-store';
import type { TieredStore } from '../storage/tiered-store';
import { decodeNpy } from '../webdataset/npy';
import type { Split } from '../webdataset/split';
import { tarEntries } from '../webdataset/tar';
import { MalformedShard } from './errors';

/** The token stream of one split of a dataset, each shard verified against the manifest as it streams in. */
export async function readSplitTokens(store: TieredStore, manifestUri: string, split: Split): Promise<Uint32Array> {
  const manifest = await readManifest(store, manifestUri, DatasetMetaSchema.pick({ splits: true }));
  const buffers: Buffer[] = [];
  for (const shard of manifest.meta.splits[split].shards) {
    const entry = manifest.objects.find((o) => o.uri === shard.uri)!;
    buffers.push(await readAll(await openVerified(store, entry)));
  }
  return tokensFromShards(buffers);
}

/**
 * The token stream of WebDataset shards: every `<key>.tokens.npy` entry, in tar order, shard after shard (the
 * order the shard plan fixed), concatenated. Each document already ends with its end-of-text id.
 */
export function tokensFromShards(shards: readonly Buffer[]): Uint32Array {
  const parts: Uint32Array[] = [];
  for (const [index, tar] of shards.entries()) {
    try {
      for (const entry of tarEntries(tar)) {
        if (entry.name.endsWith('.tokens.npy')) parts.push(decodeNpy(entry.data).values);
      }
    } catch (err) {
      throw new MalformedShard(`shard ${index}: ${(err as Error).message}`);
    }
  }
  const out = new Uint32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
