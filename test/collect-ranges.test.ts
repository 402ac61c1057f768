import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import {
  SourceSpec,
  SourceUnreadable,
  planSource,
  readUnit,
  splitUnitAt,
  splitUnits,
  type CollectContext,
  type CollectEvent,
  type SourceSpecInput,
  type SourceUnit,
} from '../lib/collect';
import { ownedLineBytes, rangeReadOffset } from '../lib/collect/line-ranges';
import { decodeJsonlGz } from '../lib/document';
import { collectBatch, planBatches, planCollection } from '../lib/pipeline/collect-stage';
import type { StageCursor } from '../lib/pipeline/stage-io';
import { createS3Client, FsStore, readManifest, S3Store, TieredStore, type ArtifactRef } from '../lib/storage';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';

const NOW = new Date('2025-01-02T03:04:05.000Z');
const ctx: CollectContext = { now: () => NOW };

let root: string;
before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'flywheel-ranges-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let files = 0;
async function file(name: string, body: string | Buffer): Promise<string> {
  const dir = path.join(root, `case-${++files}`);
  await mkdir(dir, { recursive: true });
  const at = path.join(dir, name);
  await writeFile(at, body);
  return at;
}

async function unitOf(at: string, options: Partial<SourceSpecInput> = {}): Promise<SourceUnit> {
  const [unit] = await planSource(SourceSpec.parse({ type: 'path', path: at, ...options }), ctx);
  return unit;
}

async function eventsOf(units: SourceUnit[]): Promise<CollectEvent[]> {
  const events: CollectEvent[] = [];
  for (const unit of units) for await (const event of readUnit(unit, ctx)) events.push(event);
  return events;
}

/** What a read yields, without the ordinal (it counts within a unit). */
function records(events: CollectEvent[]): unknown[] {
  return events.map((e) => (e.kind === 'document' ? { doc: e.doc } : { quarantined: e.record }));
}

async function* chunked(bytes: Buffer, sizes: number[]): AsyncGenerator<Buffer> {
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const size = sizes.length === 0 ? bytes.length : Math.max(1, sizes[i % sizes.length]);
    yield bytes.subarray(at, at + size);
    at += size;
  }
}

/** Ascending distinct cuts inside `1..size-1` from arbitrary fractions. */
function cutsOf(size: number, fractions: number[]): number[] {
  if (size < 2) return [];
  const cuts = fractions.map((f) => 1 + Math.floor(f * (size - 1)));
  return [...new Set(cuts.filter((c) => c >= 1 && c < size))].sort((a, b) => a - b);
}

/** Lines of text a JSON lines file can hold: records, blanks, broken JSON, multi-byte characters, long lines. */
const lineArb = fc.oneof(
  fc.constant(''),
  fc.constant('   '),
  fc.constant('{"id": broken'),
  fc.constant('[1, 2]'),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((text) => JSON.stringify({ text })),
  fc.string({ unit: 'binary', maxLength: 20 }).map((text) => JSON.stringify({ text, id: `k${text.length}` })),
  fc.nat({ max: 2000 }).map((n) => JSON.stringify({ text: `é€😀 ${'long '.repeat(n)}` })),
);

const fileArb = fc.record({
  lines: fc.array(lineArb, { minLength: 0, maxLength: 30 }),
  crlf: fc.array(fc.boolean(), { minLength: 1, maxLength: 30 }),
  trailingNewline: fc.boolean(),
});

function fileText(f: { lines: string[]; crlf: boolean[]; trailingNewline: boolean }): string {
  const endings = f.lines.map((_, i) => (f.crlf[i % f.crlf.length] ? '\r\n' : '\n'));
  const body = f.lines
    .map((line, i) => line + (i < f.lines.length - 1 || f.trailingNewline ? endings[i] : ''))
    .join('');
  return body;
}

describe('byte ranges of a line-based file', () => {
  it('together own every byte of the file once, in order, wherever the cuts fall and however it is read', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fileArb.map((f) => Buffer.from(fileText(f))),
          fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
          fc
            .array(fc.constantFrom('\n', 'a', '\r', 'é', '\n\n'), { maxLength: 200 })
            .map((a) => Buffer.from(a.join(''))),
        ),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 5 }),
        async (bytes, fractions, chunkSizes) => {
          const cuts = cutsOf(bytes.length, fractions);
          const starts = [0, ...cuts];
          const pieces: Buffer[] = [];
          for (let i = 0; i < starts.length; i++) {
            const range = { start: starts[i], end: cuts[i] ?? bytes.length };
            const from = bytes.subarray(rangeReadOffset(range));
            const owned: Buffer[] = [];
            for await (const piece of ownedLineBytes(chunked(from, chunkSizes), range)) owned.push(piece);
            const text = Buffer.concat(owned);
            // A range's bytes are whole lines, the first of which starts inside it: they follow the previous range's.
            const at = pieces.reduce((n, p) => n + p.length, 0);
            if (text.length > 0) {
              assert.ok(at === 0 || bytes[at - 1] === 0x0a, `range ${range.start}-${range.end} starts mid-line`);
              assert.ok(at >= range.start && at < range.end, `range ${range.start}-${range.end} starts at ${at}`);
              const last = at + text.length;
              assert.ok(last === bytes.length || bytes[last - 1] === 0x0a, 'ends mid-line');
            }
            pieces.push(text);
          }
          assert.deepEqual(Buffer.concat(pieces), bytes);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('read as units give the documents, ids, line numbers and quarantine records of the whole file', async () => {
    await fc.assert(
      fc.asyncProperty(
        fileArb,
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 8 }),
        async (f, fr) => {
          const at = await file('corpus.jsonl', fileText(f));
          const whole = await unitOf(at);
          const ranged = await splitUnitAt(whole, cutsOf(whole.bytes, fr), ctx);
          assert.ok(ranged !== undefined);
          assert.deepEqual(records(await eventsOf(ranged)), records(await eventsOf([whole])));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('keep each line number of the file, and a line longer than its range belongs to the range it starts in', async () => {
    const long = JSON.stringify({ text: `😀${'x'.repeat(5000)}` });
    const lines = ['{"text": "one"}', '', long, '{"text": "four"}', 'not json', '{"id": "own", "text": "six"}'];
    const at = await file('lines.jsonl', lines.join('\r\n'));
    const whole = await unitOf(at);
    const [first, inLong, last] = (await splitUnitAt(whole, [20, 2000], ctx))!;
    assert.equal(inLong.range?.linesBefore, 3);
    assert.deepEqual(await eventsOf([inLong]), [], 'the range inside the long line owns no line');
    const sources = (await eventsOf([first])).flatMap((e) => (e.kind === 'document' ? [e.doc.source] : []));
    assert.deepEqual(sources, [`${at}#1`, `${at}#3`]);
    const tail = await eventsOf([last]);
    assert.deepEqual(
      tail.map((e) => (e.kind === 'document' ? [e.doc.source, e.doc.metadata.line] : e.record.location)),
      [[`${at}#4`, 4], 'line 5', [`${at}#6`, 6]],
    );
    assert.deepEqual(records(tail), records((await eventsOf([whole])).slice(2)));
  });

  it('resume inside a range from an ordinal, like a whole file', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => (i % 7 === 3 ? '{bad' : JSON.stringify({ text: `doc ${i}` })));
    const at = await file('resume.jsonl', lines.join('\n') + '\n');
    const ranges = (await splitUnitAt(await unitOf(at), [100, 300], ctx))!;
    for (const unit of ranges) {
      const all = await eventsOf([unit]);
      assert.ok(all.length > 3);
      for (const startAt of [1, 3, all.length - 1]) {
        const resumed: CollectEvent[] = [];
        for await (const event of readUnit(unit, ctx, { startAt })) resumed.push(event);
        assert.deepEqual(resumed, all.slice(startAt));
      }
    }
  });

  it('a file changed after planning is not read with stale ranges', async () => {
    const at = await file('changing.jsonl', '{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n');
    const ranges = (await splitUnitAt(await unitOf(at), [20], ctx))!;
    await writeFile(at, '{"text": "a"}\n{"text": "bb"}\n{"text": "c"}\n');
    await assert.rejects(
      eventsOf([ranges[1]]),
      (err) => err instanceof SourceUnreadable && /changed since/.test(err.message),
    );
    const skipped = await eventsOf([{ ...ranges[1], source: { ...ranges[1].source, onSourceError: 'skip' } }]);
    assert.equal(skipped.length, 1);
    assert.equal(skipped[0].kind === 'quarantine' && skipped[0].record.reason, 'unreadable');
    await writeFile(at, '{"text": "a"}\n{"text": "b"}\n{"text": "c"}\n');
    await utimes(at, new Date(2020, 1, 1), new Date(2020, 1, 1));
    await assert.rejects(eventsOf([ranges[0]]), SourceUnreadable, 'same size, another modification time');
  });
});

describe('planning units by bytes', () => {
  const jsonlOf = (n: number, from = 0) =>
    Array.from({ length: n }, (_, i) => JSON.stringify({ text: `record ${from + i} ${'w '.repeat(20)}` })).join('\n') +
    '\n';

  it('cuts large uncompressed JSON lines files into ranges and keeps every other unit whole', async () => {
    const dir = path.dirname(await file('big.jsonl', jsonlOf(200)));
    const big = jsonlOf(200);
    await writeFile(path.join(dir, 'big.ndjson'), big);
    await writeFile(path.join(dir, 'big.jsonl.gz'), gzipSync(big));
    await writeFile(path.join(dir, 'gzip-inside.jsonl'), Buffer.concat([gzipSync(big), Buffer.alloc(big.length)]));
    await writeFile(path.join(dir, 'binary.jsonl'), Buffer.concat([Buffer.alloc(64), Buffer.from(big)]));
    await writeFile(path.join(dir, 'book.txt'), big);
    await writeFile(path.join(dir, 'array.json'), `[${big.trim().split('\n').join(',')}]`);
    await writeFile(path.join(dir, 'small.jsonl'), jsonlOf(3));
    const units = await planSource(SourceSpec.parse({ type: 'path', path: dir }), ctx);
    const unitBytes = Math.ceil(Buffer.byteLength(big) / 4);
    const split = await splitUnits(units, { unitBytes, ctx });
    const rangesOf = (ref: string) => split.filter((u) => u.ref.split('@')[0] === ref);
    assert.equal(rangesOf('big.jsonl').length, 4);
    assert.equal(rangesOf('big.ndjson').length, 4);
    for (const ref of ['big.jsonl.gz', 'gzip-inside.jsonl', 'binary.jsonl', 'book.txt', 'array.json', 'small.jsonl']) {
      assert.deepEqual(
        rangesOf(ref),
        units.filter((u) => u.ref === ref),
        `${ref} stays whole`,
      );
    }
    // Ranges tile the file, carry distinct ids, and together read as the whole file.
    const ranges = rangesOf('big.jsonl');
    assert.deepEqual(ranges.map((u) => [u.range!.start, u.range!.end]).flat(), [
      0,
      ...ranges.flatMap((u) => [u.range!.end, u.range!.end]).slice(0, -1),
    ]);
    assert.equal(new Set(split.map((u) => u.id)).size, split.length);
    assert.equal(
      ranges.reduce((n, u) => n + u.bytes, 0),
      Buffer.byteLength(big),
    );
    const whole = units.find((u) => u.ref === 'big.jsonl')!;
    assert.deepEqual(records(await eventsOf(ranges)), records(await eventsOf([whole])));
    // The same input gives the same plan.
    assert.deepEqual(await splitUnits(units, { unitBytes, ctx }), split);
  });

  it('a .txt file is one document and never cut, unless the source reads it as JSON lines', async () => {
    const at = await file('lines.txt', jsonlOf(100));
    const asText = await splitUnits([await unitOf(at)], { unitBytes: 1024, ctx });
    assert.equal(asText.length, 1);
    const asLines = await splitUnits([await unitOf(at, { format: 'jsonl' })], { unitBytes: 1024, ctx });
    assert.ok(asLines.length > 1);
    assert.deepEqual(
      records(await eventsOf(asLines)),
      records(await eventsOf([await unitOf(at, { format: 'jsonl' })])),
    );
  });

  it('batches group small units up to the budget, give a larger unit a batch of its own, and cap the count', () => {
    const MiB = 1024 * 1024;
    const units = [1, 1, 1, 60, 64, 64, 3, 100, 2, 2].map((m) => ({ bytes: m * MiB }));
    assert.deepEqual(planBatches(units, { unitBytes: 64 * MiB, unitsPerBatch: 16 }), [0, 4, 5, 6, 7, 8]);
    assert.deepEqual(planBatches(units, { unitBytes: 64 * MiB, unitsPerBatch: 2 }), [0, 2, 4, 5, 6, 7, 8]);
    // Six files of 50 MB, 300 MB: six batches at 64 MiB (two workers take three each), one at 1 GiB.
    const six = Array.from({ length: 6 }, () => ({ bytes: 50_000_000 }));
    assert.equal(planBatches(six, { unitBytes: 64 * MiB, unitsPerBatch: 16 }).length, 6);
    assert.equal(planBatches(six, { unitBytes: 1024 * MiB, unitsPerBatch: 16 }).length, 1);
    // Eight files of 12.6 MB: two batches of four (50 + 50 MB), not the budget filled first (63 + 38 MB).
    const eight = Array.from({ length: 8 }, () => ({ bytes: 12_600_000 }));
    assert.deepEqual(planBatches(eight, { unitBytes: 64 * MiB, unitsPerBatch: 16 }), [0, 4]);
    // Uneven units: as many batches as the budget needs, the largest as small as consecutive groups allow.
    const uneven = [30, 5, 5, 5, 30, 20, 10].map((m) => ({ bytes: m * MiB }));
    assert.deepEqual(planBatches(uneven, { unitBytes: 64 * MiB, unitsPerBatch: 16 }), [0, 4]);
    const tens = Array.from({ length: 10 }, () => ({ bytes: 10 * MiB }));
    assert.deepEqual(planBatches(tens, { unitBytes: 64 * MiB, unitsPerBatch: 16 }), [0, 5]);
    // Never more than the batch limit: budgets grow until the plan fits.
    const many = Array.from({ length: 1000 }, () => ({ bytes: 10 * MiB }));
    const capped = planBatches(many, { unitBytes: 1 * MiB, unitsPerBatch: 1, maxBatches: 256 });
    assert.ok(capped.length <= 256 && capped.length >= 128, `${capped.length} batches`);
    assert.deepEqual(planBatches([], { unitBytes: MiB, unitsPerBatch: 1 }), []);
  });
});

describe('collect batches planned by bytes', () => {
  const LIMITS = { maxDocuments: 7, maxBytes: 64 * 1024 * 1024 };
  const line = (i: number) =>
    i % 11 === 5 ? '{"broken' : JSON.stringify({ text: `document ${i} ${'ü'.repeat(i % 50)}` });

  async function corpus(): Promise<string> {
    const dir = path.dirname(await file('a.jsonl', Array.from({ length: 120 }, (_, i) => line(i)).join('\n') + '\n'));
    await writeFile(path.join(dir, 'b.jsonl'), Array.from({ length: 80 }, (_, i) => line(1000 + i)).join('\n'));
    await writeFile(
      path.join(dir, 'c.jsonl.gz'),
      gzipSync(Array.from({ length: 30 }, (_, i) => line(2000 + i)).join('\n')),
    );
    await writeFile(path.join(dir, 'd.jsonl'), line(3000) + '\n');
    return dir;
  }

  function tempStore(): TieredStore {
    const fsStore = new FsStore(path.join(root, `store-${++files}`));
    return new TieredStore({ hot: fsStore, warm: fsStore, cold: fsStore });
  }

  /** Every kept and rejected record the batches stored, in batch and partition order, without `added`. */
  async function stored(store: TieredStore, refs: (ArtifactRef | undefined)[]): Promise<string[]> {
    const out: string[] = [];
    for (const ref of refs) {
      for (const part of ref ? (await readManifest(store, ref)).objects : []) {
        for await (const rec of decodeJsonlGz<Record<string, unknown>>(await store.get(part.uri))) {
          out.push(JSON.stringify({ ...rec, added: undefined }));
        }
      }
    }
    return out;
  }

  async function collectAll(store: TieredStore, dir: string, unitBytes: number) {
    const folder = `warm://pipelines/ranges/v1/u${unitBytes}/collect`;
    const sources = [SourceSpec.parse({ type: 'path', path: dir })];
    const plan = await planCollection({ store, folder, sources, unitsPerBatch: 16, unitBytes });
    const outs = [];
    for (let batch = 0; batch < plan.batches; batch++) {
      outs.push(
        await collectBatch({ store, folder: `${folder}/batch-${batch}`, plan: plan.plan, batch, limits: LIMITS }),
      );
    }
    return { plan, outs };
  }

  it('several batches of ranges store the records one batch of whole files stores, in the same order', async () => {
    const dir = await corpus();
    const store = tempStore();
    const one = await collectAll(store, dir, 1024 * 1024);
    assert.equal(one.plan.batches, 1);
    assert.equal(one.plan.units, 4);
    const many = await collectAll(store, dir, 1024);
    assert.ok(many.plan.units > 8, `${many.plan.units} units`);
    assert.ok(many.plan.batches >= Math.ceil(many.plan.bytes / 1024), `${many.plan.batches} batches`);
    assert.equal(many.plan.bytes, one.plan.bytes);
    assert.deepEqual(
      await stored(
        store,
        many.outs.map((o) => o.partitions),
      ),
      await stored(
        store,
        one.outs.map((o) => o.partitions),
      ),
    );
    assert.deepEqual(
      await stored(
        store,
        many.outs.map((o) => o.rejected),
      ),
      await stored(
        store,
        one.outs.map((o) => o.rejected),
      ),
    );
  });

  it('a plan stored before batches by bytes (units per batch) still stands for its run', async () => {
    const dir = await corpus();
    const store = tempStore();
    const folder = 'warm://pipelines/ranges/v1/legacy/collect';
    const sources = [SourceSpec.parse({ type: 'path', path: dir })];
    const units = await planSource(sources[0], ctx);
    await store.put(`${folder}/plan.json`, JSON.stringify({ units, unitsPerBatch: 3 }));
    const plan = await planCollection({ store, folder, sources, unitsPerBatch: 16, unitBytes: 1024 });
    assert.deepEqual([plan.units, plan.batches], [4, 2]);
    const second = await collectBatch({
      store,
      folder: `${folder}/batch-1`,
      plan: plan.plan,
      batch: 1,
      limits: LIMITS,
    });
    const alone = await eventsOf([units[3]]);
    assert.equal(second.stats.input, alone.length, 'the second batch is the fourth file alone');
  });

  it('a batch of ranges resumes from a cursor inside a range', async () => {
    const dir = await corpus();
    const store = tempStore();
    const folder = 'warm://pipelines/ranges/v1/resume/collect';
    const sources = [SourceSpec.parse({ type: 'path', path: dir })];
    // The second batch is the second range of a.jsonl: it starts mid-file, past line 1.
    const plan = await planCollection({ store, folder, sources, unitsPerBatch: 16, unitBytes: 3 * 1024 });
    const batch = { store, plan: plan.plan, batch: 1, limits: LIMITS };
    const cursors: StageCursor[] = [];
    const clean = await collectBatch({
      ...batch,
      folder: `${folder}/clean`,
      onCheckpoint: (c) => cursors.push(structuredClone(c)),
    });
    const expected = await stored(store, [clean.partitions, clean.rejected]);
    assert.ok(expected.length > 0 && !expected[0].includes('#1"'), expected[0]);
    const inside = cursors.filter((c) => c.record > 0);
    assert.ok(inside.length >= 2, JSON.stringify(cursors.map((c) => [c.unit, c.record])));
    for (const boundary of inside) {
      // An attempt killed at this boundary (the throw stands for SIGKILL), then its retry from the cursor it saved.
      const attempt = { ...batch, folder: `${folder}/from-${boundary.record}` };
      let resumeFrom: StageCursor | undefined;
      const killAt = (c: StageCursor) => {
        if (c.record !== boundary.record) return;
        resumeFrom = structuredClone(c);
        throw new Error('killed');
      };
      await assert.rejects(collectBatch({ ...attempt, onCheckpoint: killAt }), /killed/);
      const out = await collectBatch({ ...attempt, resumeFrom });
      assert.deepEqual(await stored(store, [out.partitions, out.rejected]), expected);
    }
  });
});

describe('byte ranges of S3 objects', () => {
  let server: TestS3Server;
  let client: S3Client;
  let store: S3Store;
  let s3ctx: CollectContext;
  before(async () => {
    server = await startS3Server();
    client = createS3Client(s3ClientOptions(server));
    const bucket = `flywheel-ranges-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
    store = new S3Store({ bucket, client });
    await store.ensureBucket();
    s3ctx = { now: () => NOW, s3: client };
  });
  after(async () => {
    client?.destroy();
    await server?.stop();
  });

  it('are read with ranged GETs and give what the whole object gives', async () => {
    const lines = Array.from({ length: 300 }, (_, i) =>
      i % 17 === 4 ? '{"broken' : JSON.stringify({ text: `object line ${i} ${'ß€'.repeat(i % 30)}` }),
    );
    await store.put('corpus/lines.jsonl', lines.join('\r\n'));
    await store.put('corpus/packed.jsonl.gz', gzipSync(lines.join('\n')));
    const uri = `s3://${store.bucket}/corpus`;
    const units = await planSource(SourceSpec.parse({ type: 's3', uri }), s3ctx);
    const split = await splitUnits(units, { unitBytes: 2048, ctx: s3ctx });
    const ranges = split.filter((u) => u.range !== undefined);
    assert.ok(ranges.length >= 5, `${ranges.length} ranges`);
    assert.ok(
      ranges.every((u) => u.ref.startsWith('lines.jsonl@')),
      'the gzipped object stays whole',
    );
    const read = async (us: SourceUnit[]) => {
      const events: CollectEvent[] = [];
      for (const unit of us) for await (const event of readUnit(unit, s3ctx)) events.push(event);
      return records(events);
    };
    const whole = units.find((u) => u.ref === 'lines.jsonl')!;
    assert.deepEqual(await read(ranges), await read([whole]));

    await store.put('corpus/lines.jsonl', lines.join('\n'));
    await assert.rejects(
      read([ranges[1]]),
      (err) => err instanceof SourceUnreadable && /changed since/.test(err.message),
    );
  });
});
