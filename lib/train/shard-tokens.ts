import { decodeNpy } from '../webdataset/npy';
import { tarEntries } from '../webdataset/tar';
import { MalformedShard } from './errors';

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
