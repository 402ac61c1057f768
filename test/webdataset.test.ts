import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { encodeJsonlGz, type Document } from '../lib/document';
import { tokenizeAndShard } from '../lib/pipeline/shard-stages';
import { FsStore, TieredStore, type ArtifactRef } from '../lib/storage';
import { DocumentTokenizer, TokenizerPool } from '../lib/tokenize';
import { decodeNpy, encodeNpy, splitFor, tokenDtypeFor } from '../lib/webdataset';
import { readShards } from './support/read-shards';

const licenseText = fs.readFileSync(require.resolve('typescript/LICENSE.txt'), 'utf8');

function documents(n: number): Document[] {
  const paragraphs = licenseText.split(/\n\s*\n/).filter((p) => p.trim().length > 40);
  return Array.from({ length: n }, (_, i) => ({
    id: `doc-${i}`,
    text: paragraphs[i % paragraphs.length] + (i % 7 === 0 ? ' and a literal <|endoftext|> in the text' : ''),
    source: 'typescript/LICENSE.txt',
    added: '2026-01-01T00:00:00.000Z',
    metadata: { paragraph: i % paragraphs.length },
  }));
}

async function writePartitions(store: TieredStore, docs: Document[], perPartition: number): Promise<ArtifactRef[]> {
  const refs: ArtifactRef[] = [];
  for (let i = 0; i * perPartition < docs.length; i++) {
    const uri = `warm://parts/part-${i}.jsonl.gz`;
    const put = await store.put(uri, encodeJsonlGz(docs.slice(i * perPartition, (i + 1) * perPartition)));
    refs.push({ uri, sha256: put.sha256, bytes: put.bytes });
  }
  return refs;
}

describe('NPY arrays', () => {
  it('round-trip with a 64-byte aligned v1.0 header', () => {
    const values = new Uint32Array([0, 1, 65535, 100257]);
    const bytes = encodeNpy(values, 'uint32');
    assert.equal(bytes.toString('latin1', 0, 6), '\x93NUMPY');
    assert.equal((10 + bytes.readUInt16LE(8)) % 64, 0);
    assert.deepEqual(decodeNpy(bytes).values, values);
    assert.equal(decodeNpy(encodeNpy([1, 2, 3], 'uint16')).dtype, 'uint16');
    assert.throws(() => encodeNpy([70000], 'uint16'), /does not fit uint16/);
  });

  it('pick uint16 for vocabularies that fit, uint32 otherwise', () => {
    assert.equal(tokenDtypeFor(50257), 'uint16');
    assert.equal(tokenDtypeFor(100277), 'uint32');
  });
});

describe('tokenize and shard into WebDataset', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-wds-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const pool = new TokenizerPool({ threads: 2 });
  after(() => pool.close());

  async function build(name: string, encoding: 'cl100k_base' | 'gpt2') {
    const store = new FsStore(path.join(dir, name));
    const tiered = new TieredStore({ hot: store, warm: store, cold: store });
    const partitions = await writePartitions(tiered, documents(300), 70);
    const result = await tokenizeAndShard({
      store: tiered,
      partitions,
      encoding,
      targetShardBytes: 64 * 1024,
      validationFraction: 0.1,
      outPrefix: 'warm://datasets/demo/v1',
      folder: 'warm://runs/demo',
      pool,
      batchDocuments: 16,
    });
    return { result, root: path.join(dir, name) };
  }

  it('writes shards an independent reader accepts, with every sample and token count as reported', async () => {
    const { result, root } = await build('a', 'cl100k_base');
    assert.equal(result.documents, 300);
    assert.equal(result.dtype, 'uint32');
    assert.ok(result.splits.train.shards.length > 1, 'rolls over to several shards at the target size');
    assert.ok(result.splits.validation.documents > 0);
    assert.equal(result.splits.train.documents + result.splits.validation.documents, 300);
    const files = result.splits.train.shards.map((s) => path.join(root, s.uri.slice('warm://'.length)));
    assert.match(path.basename(files[0]), /^shard-000000\.tar$/);
    const samples = await readShards(files);
    console.error(`[flywheel test] shards read back with ${samples[0].reader}`);
    assert.equal(samples.length, result.splits.train.documents);
    assert.equal(
      samples.reduce((n: number, s: { count: number }) => n + s.count, 0),
      result.splits.train.tokens,
    );
    const tokenizer = new DocumentTokenizer('cl100k_base');
    for (const s of samples) {
      assert.equal(s.count, s.meta.tokens);
      assert.equal(s.last, tokenizer.eot, 'every document ends with end-of-text');
      assert.equal(s.dtype, '<u4');
      assert.equal(splitFor(s.meta.id, 0.1), 'train');
    }
    const perShard = result.splits.train.shards.reduce((n, s) => n + s.samples, 0);
    assert.equal(perShard, result.splits.train.documents);
    tokenizer.free();
  });

  it('encodes special-token text as plain text: one end-of-text per document', async () => {
    const tokenizer = new DocumentTokenizer('cl100k_base');
    const ids = tokenizer.encodeDocument('before <|endoftext|> after');
    assert.equal(ids.filter((id) => id === tokenizer.eot).length, 1);
    assert.equal(ids[ids.length - 1], tokenizer.eot);
    assert.equal(tokenizer.decode(ids.subarray(0, -1)), 'before <|endoftext|> after');
    tokenizer.free();
  });

  it('gives byte-identical shards for the same input, and uint16 for a small vocabulary', async () => {
    const first = await build('b', 'gpt2');
    const second = await build('c', 'gpt2');
    assert.equal(first.result.dtype, 'uint16');
    assert.deepEqual(
      first.result.splits.train.shards.map((s) => s.sha256),
      second.result.splits.train.shards.map((s) => s.sha256),
    );
    assert.deepEqual(
      first.result.splits.validation.shards.map((s) => s.sha256),
      second.result.splits.validation.shards.map((s) => s.sha256),
    );
  });
});
