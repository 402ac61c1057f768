import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { FsStore, TieredStore, commitManifest, readManifest, verifyManifest } from '../lib/storage';
import type { Benchmark } from './harness';

const MiB = 1024 * 1024;
const OBJECT_BYTES = 64 * MiB;
const CHUNK = 1 * MiB;

/** Incompressible bytes generated once; both sides write the same buffers. */
const data = Array.from({ length: OBJECT_BYTES / CHUNK }, (_, i) => {
  const chunk = Buffer.allocUnsafe(CHUNK);
  for (let at = 0; at < CHUNK; at += 32) createHash('sha256').update(`${i}:${at}`).digest().copy(chunk, at);
  return chunk;
});

const mbps = (bytes: number, ms: number) => ({ value: bytes / MiB / (ms / 1000) });

export function storageBenchmarks(): Benchmark[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-'));
  const store = new FsStore(path.join(dir, 'store'));
  const tiered = new TieredStore({ hot: store, warm: store, cold: store });
  let round = 0;
  const fsPut = () => ({
    label: 'FsStore.put',
    async run() {
      const t = performance.now();
      await store.put(`bench/put-${round++ % 2}.bin`, Readable.from(data));
      return mbps(OBJECT_BYTES, performance.now() - t);
    },
  });
  return [
    {
      // The same work done by hand (write + hash in one pass): what the store's abstraction costs.
      name: 'storage put, filesystem tier (64 MiB stream, sha256 while writing)',
      unit: 'MB/s',
      target: 0.85,
      candidate: fsPut(),
      baseline: {
        label: 'raw write stream + sha256',
        async run() {
          const t = performance.now();
          const hash = createHash('sha256');
          const tap = new Transform({
            transform(chunk: Buffer, _enc, done) {
              hash.update(chunk);
              done(null, chunk);
            },
          });
          await pipeline(Readable.from(data), tap, fs.createWriteStream(path.join(dir, `raw-${round++ % 2}.bin`)));
          hash.digest('hex');
          return mbps(OBJECT_BYTES, performance.now() - t);
        },
      },
    },
    {
      // Informational: what checksumming every write costs against a bare write (no target).
      name: 'storage put vs a bare write without checksum (64 MiB stream)',
      unit: 'MB/s',
      candidate: fsPut(),
      baseline: {
        label: 'raw fs write stream',
        async run() {
          const t = performance.now();
          await pipeline(Readable.from(data), fs.createWriteStream(path.join(dir, `raw-${round++ % 2}.bin`)));
          return mbps(OBJECT_BYTES, performance.now() - t);
        },
      },
    },
    {
      name: 'manifest verify, filesystem tier (64 MiB object)',
      unit: 'MB/s',
      target: 0.8,
      async setup() {
        const put = await tiered.put('warm://bench/verify.bin', Readable.from(data));
        await commitManifest(tiered, 'warm://bench/verify.manifest.json', {
          kind: 'bench',
          name: 'verify',
          objects: [{ uri: 'warm://bench/verify.bin', sha256: put.sha256, bytes: put.bytes }],
          meta: {},
        });
      },
      candidate: {
        label: 'verifyManifest',
        async run() {
          const t = performance.now();
          const manifest = await readManifest(tiered, 'warm://bench/verify.manifest.json');
          const { bytes } = await verifyManifest(tiered, manifest);
          return mbps(bytes, performance.now() - t);
        },
      },
      baseline: {
        label: 'read + sha256',
        async run() {
          const t = performance.now();
          const hash = createHash('sha256');
          await pipeline(fs.createReadStream(path.join(dir, 'store', 'bench', 'verify.bin')), hash);
          hash.digest('hex');
          return mbps(OBJECT_BYTES, performance.now() - t);
        },
      },
      async teardown() {
        fs.rmSync(dir, { recursive: true, force: true });
      },
    },
  ];
}
