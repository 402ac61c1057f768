import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { z } from 'zod';
import { DatasetMetaSchema } from '../lib/pipeline/commit-dataset';
import { decodeJsonlGz } from '../lib/document';
import {
  ArtifactRef,
  ChecksumMismatch,
  commitManifest,
  CorruptManifest,
  FsStore,
  Manifest,
  ObjectNotFound,
  openVerified,
  readAll,
  readManifest,
  TieredStore,
  verifyManifest,
  type ObjectStore,
} from '../lib/storage';

const root = mkdtempSync(join(tmpdir(), 'flywheel-manifest-'));
after(() => rmSync(root, { recursive: true, force: true }));

let count = 0;
function freshTiered(): { tiered: TieredStore; warm: FsStore } {
  const base = join(root, `t${++count}`);
  const warm = new FsStore(join(base, 'warm'));
  return {
    tiered: new TieredStore({ hot: new FsStore(join(base, 'hot')), warm, cold: new FsStore(join(base, 'cold')) }),
    warm,
  };
}

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');
const CREATED_AT = '2024-05-01T12:00:00.000Z';

async function writeShards(tiered: TieredStore, n: number) {
  const objects = [];
  for (let i = 0; i < n; i++) objects.push(await tiered.put(`warm://ds/shard-${i}.bin`, `shard ${i} `.repeat(100 + i)));
  return objects;
}

describe('commitManifest', () => {
  it('writes a manifest listing every object and returns its ref', async () => {
    const { tiered, warm } = freshTiered();
    const objects = await writeShards(tiered, 3);
    const ref = await commitManifest(tiered, 'warm://ds/manifest.json', {
      kind: 'dataset',
      name: 'web-sample',
      objects,
      meta: { documents: 42 },
      createdAt: CREATED_AT,
    });
    const text = await warm.getBytes('ds/manifest.json');
    assert.deepEqual(ref, { uri: 'warm://ds/manifest.json', sha256: sha256(text), bytes: text.length });
    assert.deepEqual(ArtifactRef.parse(ref), ref);
    const manifest = await readManifest(tiered, ref);
    assert.deepEqual(manifest, {
      version: 1,
      kind: 'dataset',
      name: 'web-sample',
      createdAt: CREATED_AT,
      objects,
      meta: { documents: 42 },
    });
  });

  it('is deterministic for the same input, so a retried commit rewrites the same bytes', async () => {
    const { tiered } = freshTiered();
    const objects = await writeShards(tiered, 2);
    const input = { kind: 'dataset', name: 'same', objects, createdAt: new Date(CREATED_AT) };
    const first = await commitManifest(tiered, 'warm://ds/manifest.json', input);
    const second = await commitManifest(tiered, 'warm://ds/manifest.json', input);
    assert.deepEqual(first, second);
  });

  it('checks every object before it writes the manifest, and writes the manifest last', async () => {
    const { tiered, warm } = freshTiered();
    const objects = await writeShards(tiered, 3);
    const calls: string[] = [];
    const recording: ObjectStore = Object.assign(Object.create(warm) as ObjectStore, {
      head: async (key: string) => {
        calls.push(`head ${key}`);
        return warm.head(key);
      },
      put: async (key: string, body: string) => {
        calls.push(`put ${key}`);
        return warm.put(key, body);
      },
    });
    const spied = new TieredStore({ hot: recording, warm: recording, cold: recording });
    await commitManifest(spied, 'warm://ds/manifest.json', { kind: 'dataset', name: 'order', objects });
    assert.deepEqual(calls.slice(0, 3).sort(), ['head ds/shard-0.bin', 'head ds/shard-1.bin', 'head ds/shard-2.bin']);
    assert.deepEqual(calls.slice(3), ['put ds/manifest.json']);
  });

  it('fails with ObjectNotFound for a listed object that was never written, leaving no manifest', async () => {
    const { tiered } = freshTiered();
    const objects = await writeShards(tiered, 2);
    const ghost = { uri: 'warm://ds/shard-ghost.bin', sha256: sha256('never written'), bytes: 13 };
    await assert.rejects(
      commitManifest(tiered, 'warm://ds/manifest.json', {
        kind: 'dataset',
        name: 'ghost',
        objects: [...objects, ghost],
      }),
      (err: unknown) => {
        assert.ok(err instanceof ObjectNotFound, String(err));
        assert.equal(err.uri, 'warm://ds/shard-ghost.bin');
        assert.match(err.message, /listed in manifest warm:\/\/ds\/manifest\.json/);
        return true;
      },
    );
    assert.equal(await tiered.exists('warm://ds/manifest.json'), false);
  });

  it('fails with ChecksumMismatch when an object has another size than listed, leaving no manifest', async () => {
    const { tiered } = freshTiered();
    const [shard] = await writeShards(tiered, 1);
    await assert.rejects(
      commitManifest(tiered, 'warm://ds/manifest.json', {
        kind: 'dataset',
        name: 'short',
        objects: [{ ...shard, bytes: shard.bytes + 1 }],
      }),
      (err: unknown) => err instanceof ChecksumMismatch && err.uri === shard.uri && err.actualBytes === shard.bytes,
    );
    assert.equal(await tiered.exists('warm://ds/manifest.json'), false);
  });

  it('refuses malformed entries before touching the store', async () => {
    const { tiered } = freshTiered();
    await assert.rejects(
      commitManifest(tiered, 'warm://ds/manifest.json', {
        kind: 'dataset',
        name: 'bad',
        objects: [{ uri: 's3://bucket/x', sha256: 'not-a-hash', bytes: -1 }],
      }),
      (err: unknown) => {
        assert.ok(err instanceof CorruptManifest, String(err));
        assert.match(err.message, /objects\[0\]\.uri/);
        assert.match(err.message, /objects\[0\]\.sha256/);
        assert.match(err.message, /objects\[0\]\.bytes/);
        return true;
      },
    );
    assert.equal(await tiered.exists('warm://ds/manifest.json'), false);
  });
});

describe('readManifest', () => {
  async function committed() {
    const { tiered, warm } = freshTiered();
    const objects = await writeShards(tiered, 2);
    const ref = await commitManifest(tiered, 'warm://ds/manifest.json', { kind: 'dataset', name: 'read', objects });
    return { tiered, warm, ref, objects };
  }

  it('rejects a manifest changed after its ref was issued, naming the manifest', async () => {
    const { tiered, warm, ref } = await committed();
    const text = (await warm.getBytes('ds/manifest.json')).toString();
    await warm.put('ds/manifest.json', text.replace('"read"', '"evil"'));
    await assert.rejects(readManifest(tiered, ref), (err: unknown) => {
      assert.ok(err instanceof ChecksumMismatch, String(err));
      assert.equal(err.uri, 'warm://ds/manifest.json');
      assert.equal(err.retryable, false);
      assert.ok(err.message.includes('warm://ds/manifest.json'), err.message);
      return true;
    });
    // By URI alone there is nothing to check it against: that is why workflows pass refs.
    assert.equal((await readManifest(tiered, 'warm://ds/manifest.json')).name, 'evil');
  });

  it('raises a non-retryable CorruptManifest for bytes that are not JSON', async () => {
    const { tiered } = freshTiered();
    await tiered.put('warm://ds/manifest.json', '{"version": 1, "kind": "dat');
    await assert.rejects(readManifest(tiered, 'warm://ds/manifest.json'), (err: unknown) => {
      assert.ok(err instanceof CorruptManifest, String(err));
      assert.equal(err.retryable, false);
      assert.equal(err.code, 'CorruptManifest');
      assert.match(err.message, /not valid JSON/);
      return true;
    });
  });

  it('raises CorruptManifest naming every bad field for JSON of the wrong shape', async () => {
    const { tiered } = freshTiered();
    const put = await tiered.put(
      'warm://ds/manifest.json',
      JSON.stringify({ version: 2, kind: 'dataset', createdAt: 'yesterday', objects: [{ uri: 'warm://x' }], meta: {} }),
    );
    await assert.rejects(readManifest(tiered, put), (err: unknown) => {
      assert.ok(err instanceof CorruptManifest, String(err));
      for (const field of ['version', 'name', 'createdAt', 'objects[0].sha256', 'objects[0].bytes']) {
        assert.ok(err.message.includes(field), `${field} missing from: ${err.message}`);
      }
      return true;
    });
  });

  it('reports a missing manifest as ObjectNotFound naming its tier URI', async () => {
    const { tiered } = freshTiered();
    await assert.rejects(
      readManifest(tiered, 'warm://nowhere/manifest.json'),
      (err: unknown) => err instanceof ObjectNotFound && err.uri === 'warm://nowhere/manifest.json',
    );
  });

  it('parses meta with a schema, keeping the fields the schema does not name', async () => {
    const { tiered } = freshTiered();
    const meta = { documents: 3, params: { seed: 1 }, note: 'kept' };
    const ref = await commitManifest(tiered, 'warm://ds/manifest.json', {
      kind: 'index',
      name: 'meta',
      objects: [],
      meta,
    });
    const manifest = await readManifest(tiered, ref, z.looseObject({ documents: z.number() }));
    const documents: number = manifest.meta.documents;
    assert.equal(documents, 3);
    assert.deepEqual(manifest.meta, meta);
  });

  it('raises CorruptManifest naming the manifest and every bad meta field', async () => {
    const { tiered } = freshTiered();
    const meta = { documents: 'three', splits: { train: { tokens: 1 } } };
    const ref = await commitManifest(tiered, 'warm://ds/manifest.json', {
      kind: 'index',
      name: 'meta',
      objects: [],
      meta,
    });
    const schema = z.object({
      documents: z.number(),
      splits: z.object({ train: z.object({ tokens: z.number(), shards: z.array(z.string()) }) }),
    });
    await assert.rejects(readManifest(tiered, ref, schema), (err: unknown) => {
      assert.ok(err instanceof CorruptManifest, String(err));
      assert.equal(err.uri, 'warm://ds/manifest.json');
      assert.equal(err.retryable, false);
      assert.match(
        err.message,
        /^Corrupt manifest warm:\/\/ds\/manifest\.json: its index meta is invalid \(2 problems\)/,
      );
      for (const field of ['meta.documents:', 'meta.splits.train.shards:'])
        assert.ok(err.message.includes(field), `${field} missing from: ${err.message}`);
      return true;
    });
  });

  it('reads every dataset meta written today back through DatasetMetaSchema unchanged', async () => {
    const { tiered } = freshTiered();
    const objects = await writeShards(tiered, 2);
    const stats = { input: 3, kept: 2, dropped: { duplicate: 1 }, keptBytes: 40 };
    // A ref as commitManifest returns it.
    const rejected = { uri: objects[1].uri, sha256: objects[1].sha256, bytes: objects[1].bytes };
    const written = {
      dataset: 'web',
      version: 'v2',
      specDigest: 'abc',
      spec: { dataset: 'web', composedOf: ['warm://a', 'warm://b'] },
      tokenizer: { encoding: 'gpt2', dtype: 'uint16', eot: 50256, vocabSize: 50257 },
      documents: 2,
      tokens: 8,
      textBytes: 40,
      splits: {
        train: { documents: 2, tokens: 8, shards: [{ uri: objects[0].uri, samples: 2, tokens: 8 }] },
        validation: { documents: 0, tokens: 0, shards: [] },
      },
      stages: { collect: stats, dedup: stats },
      rejected: [rejected],
      // What a composed dataset adds.
      composedOf: ['warm://a', 'warm://b'],
      nearIndex: rejected,
    };
    const ref = await commitManifest(tiered, 'warm://ds/manifest.json', {
      kind: 'dataset',
      name: 'web/v2',
      objects,
      meta: written,
    });
    const { meta } = await readManifest(tiered, ref, DatasetMetaSchema);
    // Same fields in the same order: a dataset composed from this one writes the same bytes as before.
    assert.equal(JSON.stringify(meta), JSON.stringify(written));
  });
});

describe('openVerified and verifyManifest', () => {
  it('stream the listed bytes and count them', async () => {
    const { tiered } = freshTiered();
    const objects = await writeShards(tiered, 3);
    const ref = await commitManifest(tiered, 'warm://ds/manifest.json', { kind: 'dataset', name: 'ok', objects });
    const manifest: Manifest = await readManifest(tiered, ref);
    assert.deepEqual(await verifyManifest(tiered, manifest), {
      objects: 3,
      bytes: objects.reduce((sum, o) => sum + o.bytes, 0),
    });
    assert.deepEqual(await readAll(await openVerified(tiered, objects[1])), await tiered.getBytes(objects[1].uri));
  });

  it('fail with ChecksumMismatch for a truncated or extended object', async () => {
    const { tiered } = freshTiered();
    const put = await tiered.put('warm://ds/data.bin', 'exactly this content');
    await tiered.put('warm://ds/data.bin', 'exactly this');
    await assert.rejects(
      readAll(await openVerified(tiered, put)),
      (err: unknown) => err instanceof ChecksumMismatch && err.uri === 'warm://ds/data.bin' && err.actualBytes === 12,
    );
    await tiered.put('warm://ds/data.bin', 'exactly this content, and then some more');
    await assert.rejects(
      readAll(await openVerified(tiered, put)),
      (err: unknown) => err instanceof ChecksumMismatch && err.actualBytes > put.bytes,
    );
  });

  it('fail a partition reader with ChecksumMismatch when a whole, valid partition stands where another was', async () => {
    // Both are well-formed gzip JSON lines, so only the sha256 at the end tells them apart: the reader must fail then,
    // not wait for an end that never comes.
    const { tiered } = freshTiered();
    const listed = await tiered.put('warm://p/part-000000.jsonl.gz', gzipSync('{"id":"a"}\n{"id":"b"}\n'));
    await tiered.put('warm://p/part-000000.jsonl.gz', gzipSync('{"id":"c"}\n{"id":"d"}\n'));
    const read = async () => {
      const out: unknown[] = [];
      for await (const r of decodeJsonlGz(await openVerified(tiered, listed))) out.push(r);
      return out;
    };
    await assert.rejects(read(), (err: unknown) => err instanceof ChecksumMismatch);
  });

  it('fail with ObjectNotFound, naming the tier URI, when a listed object has gone', async () => {
    const { tiered } = freshTiered();
    const objects = await writeShards(tiered, 2);
    const ref = await commitManifest(tiered, 'warm://ds/manifest.json', { kind: 'dataset', name: 'gone', objects });
    await tiered.delete(objects[1].uri);
    const manifest = await readManifest(tiered, ref);
    await assert.rejects(
      verifyManifest(tiered, manifest),
      (err: unknown) => err instanceof ObjectNotFound && err.uri === objects[1].uri,
    );
  });
});

describe('ArtifactRef schema', () => {
  it('accepts a tier URI with a sha256 and a size, and nothing else', () => {
    const good = { uri: 'warm://ds/manifest.json', sha256: sha256('x'), bytes: 1 };
    assert.deepEqual(ArtifactRef.parse(good), good);
    assert.equal(ArtifactRef.safeParse({ ...good, uri: '/tmp/x' }).success, false);
    assert.equal(ArtifactRef.safeParse({ ...good, sha256: sha256('x').toUpperCase() }).success, false);
    assert.equal(ArtifactRef.safeParse({ ...good, bytes: 1.5 }).success, false);
  });
});
