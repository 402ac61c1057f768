import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pad } from '../common';

const BLOCK = 64 * 1024;

/**
 * Deterministic, incompressible bytes for object `index` of a check seeded with `seed`: SHA-256 in counter mode.
 * The same spec writes the same bytes, so a retried write is idempotent and a rerun's checksums match.
 */
export function sampleObjectStream(seed: number, index: number, bytes: number): Readable {
  let offset = 0;
  let counter = 0;
  return new Readable({
    read() {
      if (offset >= bytes) {
        this.push(null);
        return;
      }
      const size = Math.min(BLOCK, bytes - offset);
      const block = Buffer.allocUnsafe(size);
      for (let at = 0; at < size; at += 32) {
        const digest = createHash('sha256').update(`${seed}:${index}:${counter++}`).digest();
        digest.copy(block, at, 0, Math.min(32, size - at));
      }
      offset += size;
      this.push(block);
    },
  });
}

export function sampleObjectKey(name: string, digest: string, index: number): string {
  return `checks/${name}/${digest}/object-${pad(index)}.bin`;
}

export function sampleManifestKey(name: string, digest: string): string {
  return `checks/${name}/${digest}/manifest.json`;
}
