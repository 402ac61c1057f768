import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import fc from 'fast-check';
import { decodeJsonlGz, type Document } from '../lib/document';
import {
  commitExactDedup,
  exactDedupFilter,
  exactDedupJoin,
  exactDedupKeys,
  exactDedupOnePass,
} from '../lib/pipeline/exact-dedup-stage';
import { commitStage } from '../lib/pipeline/stage-output';
import { stageWriters } from '../lib/pipeline/stage-io';
import { FsStore, readAll, readManifest, TieredStore, type ArtifactRef } from '../lib/storage';
import { DedupPool } from '../lib/dedup/dedup-pool';
import { exactDedupKey } from '../lib/dedup/exact';

const LIMITS = { maxDocuments: 2, maxBytes: 1 << 20 };

/** The dedup pool's worker threads, as a worker lends them to the step, and the same jobs on the calling thread. */
const threads = DedupPool.shared(2);
const inThread = new DedupPool(0);

function tempStore(): TieredStore {
  const fsStore = new FsStore(fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-exact-')));
  return new TieredStore({ hot: fsStore, warm: fsStore, cold: fsStore });
}

const doc = (id: string, text: string): Document => ({
  id,
  text,
  source: 'test',
  added: '2026-01-01T00:00:00.000Z',
  metadata: {},
});

/** A batch as the filter stage leaves it: its documents in partitions, under a committed stage manifest. */
async function batch(store: TieredStore, name: string, docs: Document[], limits = LIMITS): Promise<ArtifactRef> {
  const folder = `warm://t/filter/${name}`;
  const writers = stageWriters(store, folder, limits);
  for (const d of docs) await writers.keep(d);
  const stats = { input: docs.length, kept: docs.length, dropped: {}, keptBytes: 0 };
  return (await commitStage(store, folder, 'pipeline-filter', { ...(await writers.finish()), stats })).partitions;
}

async function records(store: TieredStore, ref: ArtifactRef | undefined): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const part of ref ? (await readManifest(store, ref)).objects : []) {
    for await (const r of decodeJsonlGz<Record<string, unknown>>(await store.get(part.uri))) out.push(r);
  }
  return out;
}

describe('exact dedup, fanned out per batch', () => {
  it('keeps the first of each normalized text in input order across batches, and names it in every repeat', async () => {
    const store = tempStore();
    const inputs = [
      await batch(store, 'b0', [
        doc('a', 'The whale, the whale!'),
        doc('b', 'Call me Ishmael.'),
        doc('c', 'the WHALE the whale'),
      ]),
      await batch(store, 'b1', []),
      await batch(store, 'b2', [doc('d', 'call me ishmael'), doc('e', 'Something new.'), doc('f', 'Something   new')]),
    ];
    const keys = [];
    for (let i = 0; i < inputs.length; i++) {
      keys.push(
        await exactDedupKeys({ store, uri: `warm://t/dedup/keys/batch-${i}`, input: inputs[i], pool: threads }),
      );
    }
    assert.deepEqual(
      keys.map((k) => k?.documents ?? 0),
      [3, 0, 3],
    );
    assert.equal(keys[1], null, 'a batch without documents writes no keys');
    const drops = await exactDedupJoin({ store, folder: 'warm://t/dedup/drops', keys });
    assert.equal(drops[1], null, 'a batch without repeats has no drop list');
    const batches = [];
    for (let i = 0; i < inputs.length; i++) {
      batches.push(
        await exactDedupFilter({
          store,
          folder: `warm://t/dedup/batch-${i}`,
          input: inputs[i],
          drops: drops[i],
          limits: LIMITS,
        }),
      );
    }
    const stage = await commitExactDedup({ store, folder: 'warm://t/dedup', batches });
    assert.deepEqual(
      (await records(store, stage.partitions)).map((r) => r.id),
      ['a', 'b', 'e'],
    );
    assert.deepEqual(
      (await records(store, stage.rejected)).map((r) => [(r.doc as Document).id, r.duplicateOf, r.rule]),
      [
        ['c', 'a', 'dedup.exact'],
        ['d', 'b', 'dedup.exact'],
        ['f', 'e', 'dedup.exact'],
      ],
    );
    assert.deepEqual(stage.stats.dropped, { 'dedup.exact': 3 });
    assert.equal(stage.stats.input, 6);
    assert.equal(stage.stats.kept, 3);
    assert.equal(stage.partitionCount, (await readManifest(store, stage.partitions)).objects.length);
  });
});

describe('exact dedup of a single batch, in one pass', () => {
  it('keeps, rejects and counts exactly what the fanned-out steps do', async () => {
    const store = tempStore();
    const docs = [
      doc('a', 'The whale, the whale!'),
      doc('b', 'Call me Ishmael.'),
      doc('c', 'the WHALE the whale'),
      doc('d', 'call me ishmael'),
      doc('e', 'Something new.'),
      doc('f', 'Something   new'),
      doc('g', 'And the last one.'),
    ];
    const input = await batch(store, 'only', docs);
    const keys = await exactDedupKeys({ store, uri: 'warm://t/fan/keys/batch-0', input, pool: inThread });
    const [drops] = await exactDedupJoin({ store, folder: 'warm://t/fan/drops', keys: [keys] });
    const filtered = await exactDedupFilter({ store, folder: 'warm://t/fan/batch-0', input, drops, limits: LIMITS });
    const fannedOut = await commitExactDedup({ store, folder: 'warm://t/fan', batches: [filtered] });
    const onePass = await exactDedupOnePass({ store, folder: 'warm://t/one', input, limits: LIMITS });

    assert.deepEqual(await records(store, onePass.partitions), await records(store, fannedOut.partitions));
    assert.deepEqual(await records(store, onePass.rejected), await records(store, fannedOut.rejected));
    assert.deepEqual(onePass.stats, fannedOut.stats);
    assert.equal(onePass.partitionCount, fannedOut.partitionCount);
    assert.deepEqual(
      (await records(store, onePass.partitions)).map((r) => r.id),
      ['a', 'b', 'e', 'g'],
    );
  });

  it('writes the kept documents back as the lines it read, the bytes encoding them again would give', async () => {
    // Kept documents are written as their input lines, not encoded again: the same bytes, whatever the text and
    // metadata hold (escapes, lone surrogates, numbers).
    const text = fc.string({ unit: 'binary', minLength: 1, maxLength: 40 });
    const metadata = fc.dictionary(fc.string({ maxLength: 6 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 });
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(text, metadata), { minLength: 1, maxLength: 6 }), async (items) => {
        const store = tempStore();
        const docs = items.map(([t, m], i) => ({ ...doc(`d${i}`, i % 3 === 2 ? items[0][0] : t), metadata: m }));
        const input = await batch(store, 'lines', docs);
        const out = await exactDedupOnePass({ store, folder: 'warm://t/lines', input, limits: LIMITS });
        const kept = new Set((await records(store, out.partitions)).map((r) => r.id));
        const expected = docs.filter((d) => kept.has(d.id)).map((d) => JSON.stringify(d) + '\n');
        const written: string[] = [];
        for (const part of (await readManifest(store, out.partitions)).objects)
          written.push(gunzipSync(await readAll(await store.get(part.uri))).toString());
        assert.equal(written.join(''), expected.join(''));
      }),
      { numRuns: 40, seed: 18 },
    );
  });

  it('keys partitions larger than one job on the threads, in document order, as exactDedupKey keys them', async () => {
    const store = tempStore();
    // About 3 MB in one partition: three byte ranges for three jobs, with multi-byte characters near the cuts.
    const docs = Array.from({ length: 4000 }, (_, i) =>
      doc(`d${i}`, `Dokument ${i % 1500}: ${'Größe über Maß, '.repeat(1 + (i % 90))}ende.`),
    );
    const input = await batch(store, 'large', docs, { maxDocuments: 100_000, maxBytes: 64 << 20 });
    const keys = await exactDedupKeys({ store, uri: 'warm://t/large/keys/batch-0', input, pool: threads });
    assert.equal(keys?.documents, docs.length);
    const written = [];
    for await (const r of decodeJsonlGz<[string, string]>(await store.get(keys!.uri))) written.push(r);
    assert.deepEqual(
      written,
      docs.map((d) => [exactDedupKey(d.text), d.id]),
    );
  });
});
