import { decodeNpy } from '../webdataset/npy';
import { MalformedShard } from './errors';

const BLOCK = 512;

/**
 * The token stream of WebDataset shards: every `<key>.tokens.npy` entry, in tar order, shard after shard (the
 * order the shard plan fixed), concatenated. Each document already ends with its end-of-text id.
 */
export function tokensFromShards(shards: readonly Buffer[]): Uint32Array {
  const parts: Uint32Array[] = [];
  for (const [index, tar] of shards.entries()) {
    for (let at = 0; at + BLOCK <= tar.length;) {
      const header = tar.subarray(at, at + BLOCK);
      if (header.every((b) => b === 0)) break;
      const name = header.toString('latin1', 0, 100).replace(/\0.*$/s, '');
      const prefix = header.toString('latin1', 345, 500).replace(/\0.*$/s, '');
      const size = parseInt(header.toString('latin1', 124, 136).replace(/\0.*$/s, '').trim() || '0', 8);
      if (!Number.isFinite(size) || at + BLOCK + size > tar.length)
        throw new MalformedShard(`shard ${index}: tar entry ${name || '(unnamed)'} at byte ${at} is truncated`);
      const path = prefix ? `${prefix}/${name}` : name;
      if (path.endsWith('.tokens.npy')) parts.push(decodeNpy(tar.subarray(at + BLOCK, at + BLOCK + size)).values);
      at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
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
