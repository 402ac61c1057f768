import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { sampleCorpus } from '../lib/collect';
import { FsStore, TieredStore } from '../lib/storage';
import { DocumentTokenizer, TokenizerPool } from '../lib/tokenize';
import { ShardWriter } from '../lib/webdataset';
import type { Benchmark } from './harness';

const MB = 1024 * 1024;

/** The bundled corpus's text, split in documents as the pipeline sees them. */
function corpusTexts(): string[] {
  return sampleCorpus('moby-dick').documents.map((d) => d.text);
}

const mbps = (bytes: number, ms: number) => ({ value: bytes / MB / (ms / 1000) });

export function pipelineBenchmarks(): Benchmark[] {
  // Four passes over the corpus per round (4.8 MB, 36 batches): long enough that a round is not mostly the pool's
  // fixed cost of waking its threads, as a partition of a real dataset is not.
  const texts = Array.from({ length: 4 }, () => corpusTexts()).flat();
  const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
  const batches: string[][] = [];
  for (let i = 0; i < texts.length; i += 16) batches.push(texts.slice(i, i + 16));
  let pool1: TokenizerPool | undefined;
  let pool2: TokenizerPool | undefined;
  const tokenizer = new DocumentTokenizer('cl100k_base');
  const tokensOnce = corpusTexts().map((t) => tokenizer.encodeDocument(t));

  const viaPool = (pool: () => TokenizerPool) => async () => {
    const t = performance.now();
    await Promise.all(batches.map((b) => pool().encode('cl100k_base', b)));
    return mbps(bytes, performance.now() - t);
  };

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-shards-'));
  const store = new FsStore(dir);
  const tiered = new TieredStore({ hot: store, warm: store, cold: store });
  let round = 0;
  // Shards hold the tokens of the corpus several times over, so the write is long enough to time.
  const copies = 32;

  return [
    {
      name: 'tokenize, 1 pool thread vs the tokenizer library alone (cl100k_base, sample corpus)',
      unit: 'MB/s',
      target: 0.85,
      async setup() {
        pool1 = new TokenizerPool({ threads: 1 });
        await pool1.encode('cl100k_base', ['warm up']);
      },
      candidate: { label: 'TokenizerPool(1)', run: viaPool(() => pool1!) },
      baseline: {
        label: 'DocumentTokenizer in-process',
        async run() {
          const t = performance.now();
          for (const text of texts) tokenizer.encodeDocument(text);
          return mbps(bytes, performance.now() - t);
        },
      },
      async teardown() {
        await pool1?.close();
      },
    },
    {
      name: 'tokenize, 2 pool threads vs 1',
      unit: 'MB/s',
      target: 1.7,
      async setup() {
        pool1 = new TokenizerPool({ threads: 1 });
        pool2 = new TokenizerPool({ threads: 2 });
        await Promise.all([
          pool1.encode('cl100k_base', ['warm up']),
          pool2.encode('cl100k_base', ['a']),
          pool2.encode('cl100k_base', ['b']),
        ]);
      },
      candidate: { label: 'TokenizerPool(2)', run: viaPool(() => pool2!) },
      baseline: { label: 'TokenizerPool(1)', run: viaPool(() => pool1!) },
      async teardown() {
        await pool1?.close();
        await pool2?.close();
      },
    },
    {
      name: 'shard writing vs a raw sequential write of the same bytes',
      unit: 'MB/s',
      target: 0.5,
      candidate: {
        label: 'ShardWriter (tar + NPY + sha256)',
        async run() {
          const writer = new ShardWriter(tiered, `warm://bench/r${round++ % 2}/shard`, 'uint32', 64 * MB);
          const t = performance.now();
          let i = 0;
          for (let c = 0; c < copies; c++) {
            for (const tokens of tokensOnce)
              await writer.add({ key: `s${String(i++).padStart(8, '0')}`, json: { n: tokens.length }, tokens });
          }
          const shards = await writer.finish();
          return mbps(
            shards.reduce((n, s) => n + s.bytes, 0),
            performance.now() - t,
          );
        },
      },
      baseline: {
        // Durable like the store's write (fsync before close): a page-cache-only write is not the same work.
        label: 'fs write stream + fsync',
        async run() {
          const total = tokensOnce.reduce((n, t) => n + t.byteLength, 0) * copies;
          const chunk = Buffer.alloc(MB, 7);
          const chunks = Math.ceil(total / MB);
          const t = performance.now();
          await pipeline(
            Readable.from(
              (function* () {
                for (let i = 0; i < chunks; i++) yield chunk;
              })(),
            ),
            fs.createWriteStream(path.join(dir, `raw-${round++ % 2}.bin`), { flush: true }),
          );
          return mbps(chunks * MB, performance.now() - t);
        },
      },
      async teardown() {
        fs.rmSync(dir, { recursive: true, force: true });
        tokenizer.free();
      },
    },
  ];
}
