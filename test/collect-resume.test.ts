import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createPipelineActivities } from '../activities/pipeline';
import { sampleCorpus } from '../lib/collect';
import { SourceSpec } from '../lib/collect/source-spec';
import { collectBatch, planCollection, ResumeMismatch } from '../lib/pipeline/collect-stage';
import { filterStage } from '../lib/pipeline/filter-stage';
import { FilterPool } from '../lib/quality/filter-pool';
import { QualitySpec } from '../lib/quality/spec';
import type { StageCursor } from '../lib/pipeline/stage-io';
import type { StageOutput } from '../lib/pipeline/stage-output';
import { decodeJsonlGz } from '../lib/document';
import { FsStore, readManifest, TieredStore, type ArtifactRef } from '../lib/storage';

const FOLDER = 'warm://pipelines/resume/v1/abc/collect/batch-000000';
const LIMITS = { maxDocuments: 10, maxBytes: 64 * 1024 * 1024 };

function tempStore(): { store: TieredStore; dir: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-resume-'));
  const fsStore = new FsStore(dir);
  return { store: new TieredStore({ hot: fsStore, warm: fsStore, cold: fsStore }), dir };
}

/** Real prose, so most documents pass the quality filters and the filter stage cuts partitions too. */
const chapters = sampleCorpus('moby-dick').documents.map((d) => d.text.slice(0, 4000));

/** Two files in one batch: 97 documents and a few unparseable lines, so both kinds of partition are cut. */
function writeInputs(dir: string): string {
  const input = path.join(dir, 'input');
  fs.mkdirSync(input);
  const lines = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) =>
      i % 13 === 7
        ? '{"id": broken'
        : JSON.stringify({ id: `d${from + i}`, text: chapters[(from + i) % chapters.length] }),
    ).join('\n');
  fs.writeFileSync(path.join(input, 'a.jsonl'), lines(0, 60) + '\n');
  fs.writeFileSync(path.join(input, 'b.jsonl'), lines(100, 45) + '\n');
  return input;
}

async function collect(store: TieredStore, input: string, extra: Partial<Parameters<typeof collectBatch>[0]> = {}) {
  const plan = await planCollection({
    store,
    folder: 'warm://pipelines/resume/v1/abc/collect',
    sources: [SourceSpec.parse({ type: 'path', path: input })],
    unitsPerBatch: 2,
  });
  return collectBatch({ store, folder: FOLDER, plan: plan.plan, batch: 0, limits: LIMITS, ...extra });
}

/**
 * A collect batch killed at its k-th boundary (its partitions so far left in a fresh store), then run again from the
 * cursor it saved there: the store, the cursor and the resumed run's output.
 */
async function killedAndResumed(input: string, k: number) {
  const run = tempStore();
  let seen = 0;
  let resumeFrom: StageCursor | undefined;
  await assert.rejects(
    collect(run.store, input, {
      onCheckpoint: (c) => {
        if (++seen < k) return;
        resumeFrom = structuredClone(c);
        throw new Error('killed');
      },
    }),
    /killed/,
  );
  assert.ok(resumeFrom, `a boundary ${k}`);
  return { run, resumeFrom, out: await collect(run.store, input, { resumeFrom }) };
}

/**
 * What a stage output stored, comparable across runs: every kept and rejected record in partition order, without
 * `added` (the wall-clock time a document entered the pipeline), and the stats.
 */
async function stored(store: TieredStore, out: StageOutput) {
  const records = async (ref: ArtifactRef | undefined) => {
    const parts: string[][] = [];
    for (const part of ref ? (await readManifest(store, ref)).objects : []) {
      const lines: string[] = [];
      for await (const rec of decodeJsonlGz<Record<string, unknown>>(await store.get(part.uri))) {
        lines.push(JSON.stringify({ ...rec, added: undefined }));
      }
      parts.push(lines);
    }
    return parts;
  };
  return { kept: await records(out.partitions), rejected: await records(out.rejected), stats: out.stats };
}

describe('collect and filter batches resume from their cursor', () => {
  it('after a crash, keeps the stored partitions, skips their records and writes the same records as a clean run', async () => {
    const clean = tempStore();
    const input = writeInputs(clean.dir);
    let boundaries = 0;
    const cleanOut = await collect(clean.store, input, { onCheckpoint: () => (boundaries += 1) });
    const expected = await stored(clean.store, cleanOut);
    assert.ok(expected.kept.length >= 9, `${expected.kept.length} partitions`);
    assert.ok(expected.rejected.length >= 2);

    // An attempt that dies after its third partition boundary (the throw stands for the worker's SIGKILL).
    const crashed = tempStore();
    const cursors: StageCursor[] = [];
    await assert.rejects(
      collect(crashed.store, input, {
        onCheckpoint: (c) => {
          cursors.push(structuredClone(c));
          if (cursors.length === 3) throw new Error('killed');
        },
      }),
      /killed/,
    );
    const resumeFrom = cursors[2];
    assert.equal(resumeFrom.kept.length, 3);
    const firstPartition = path.join(crashed.dir, 'pipelines/resume/v1/abc/collect/batch-000000/part-000000.jsonl.gz');
    const before = fs.statSync(firstPartition).mtimeMs;

    const later: StageCursor[] = [];
    const resumedOut = await collect(crashed.store, input, { resumeFrom, onCheckpoint: (c) => later.push(c) });
    assert.deepEqual(await stored(crashed.store, resumedOut), expected);
    assert.equal(later.length, boundaries - 3, 'the resumed attempt goes on from the third boundary');
    assert.equal(fs.statSync(firstPartition).mtimeMs, before, 'a partition stored before the crash is not rewritten');
  });

  it("resuming from any boundary gives the clean run's records and stats", async () => {
    const clean = tempStore();
    const input = writeInputs(clean.dir);
    const cursors: StageCursor[] = [];
    const expected = await stored(
      clean.store,
      await collect(clean.store, input, { onCheckpoint: (c) => cursors.push(c) }),
    );
    assert.ok(
      cursors.some((c) => c.unit === 1 && c.record > 0),
      'some boundary falls inside the second file',
    );
    for (let k = 1; k <= cursors.length; k++) {
      const { run, resumeFrom, out } = await killedAndResumed(input, k);
      assert.deepEqual(
        await stored(run.store, out),
        expected,
        `from unit ${resumeFrom.unit}, record ${resumeFrom.record}`,
      );
    }
  });
  it('counts the WARC records it passes over once, from whichever boundary it resumes', async () => {
    const clean = tempStore();
    const input = path.join(clean.dir, 'warc');
    fs.mkdirSync(input);
    // 35 text/plain pages, each after its request record, with a redirect after every fifth: 10 documents per
    // partition puts boundaries between pages whose neighbours are passed over.
    const record = (type: string, uri: string, n: number, block: string) => {
      const head = [
        'WARC/1.0',
        `WARC-Type: ${type}`,
        `WARC-Target-URI: ${uri}`,
        'WARC-Date: 2024-03-01T10:00:00Z',
        `WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-${String(n).padStart(12, '0')}>`,
        `Content-Type: application/http; msgtype=${type}`,
        `Content-Length: ${Buffer.byteLength(block)}`,
      ].join('\r\n');
      return `${head}\r\n\r\n${block}\r\n\r\n`;
    };
    const http = (status: string, body: string) =>
      `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
    let warc = '';
    for (let i = 0; i < 35; i++) {
      const uri = `https://example.com/page-${i}`;
      warc += record('request', uri, 3 * i, `GET /page-${i} HTTP/1.1\r\nHost: example.com\r\n\r\n`);
      warc += record(
        'response',
        uri,
        3 * i + 1,
        http('200 OK', `Page ${i}. ${chapters[i % chapters.length].slice(0, 300)}`),
      );
      if (i % 5 === 4) warc += record('response', `${uri}/old`, 3 * i + 2, http('301 Moved Permanently', ''));
    }
    fs.writeFileSync(path.join(input, 'crawl.warc'), warc);
    const cursors: StageCursor[] = [];
    const expected = await stored(
      clean.store,
      await collect(clean.store, input, { onCheckpoint: (c) => cursors.push(structuredClone(c)) }),
    );
    assert.equal(expected.stats.kept, 35);
    assert.deepEqual(expected.stats.skipped, { 'warc.request': 35, 'warc.response_3xx': 7 });
    assert.ok(cursors.length >= 3, `${cursors.length} boundaries`);
    for (let k = 1; k <= cursors.length; k++) {
      const { run, resumeFrom, out } = await killedAndResumed(input, k);
      assert.deepEqual(await stored(run.store, out), expected, `from record ${resumeFrom.record}`);
    }
  });

  it("filterBatch resumes the same way: any boundary gives the clean run's records and stats", async () => {
    const base = tempStore();
    const input = writeInputs(base.dir);
    const collected = await collect(base.store, input);
    const quality = QualitySpec.parse({});
    const filter = (extra: Partial<Parameters<typeof filterStage>[0]>) =>
      filterStage({
        store: base.store,
        folder: 'warm://pipelines/resume/v1/abc/filter/batch-000000',
        input: collected.partitions,
        quality,
        limits: { maxDocuments: 7, maxBytes: 64 * 1024 * 1024 },
        ...extra,
      });
    const cursors: StageCursor[] = [];
    const expected = await stored(base.store, await filter({ onCheckpoint: (c) => cursors.push(structuredClone(c)) }));
    assert.ok(cursors.length >= 3);
    for (const resumeFrom of cursors) {
      // Each resume rewrites only what comes after its cursor; the partitions before it are the clean run's.
      assert.deepEqual(
        await stored(base.store, await filter({ resumeFrom })),
        expected,
        `from record ${resumeFrom.record}`,
      );
    }
  });
  it('filterBatch on a pool of threads writes what it writes on one thread, with the same cursors', async () => {
    const base = tempStore();
    const input = writeInputs(base.dir);
    const collected = await collect(base.store, input);
    const pool = new FilterPool({ threads: 2 });
    try {
      const filter = (extra: Partial<Parameters<typeof filterStage>[0]>) =>
        filterStage({
          store: base.store,
          folder: 'warm://pipelines/resume/v1/abc/filter/batch-000000',
          input: collected.partitions,
          quality: QualitySpec.parse({}),
          limits: { maxDocuments: 7, maxBytes: 64 * 1024 * 1024 },
          ...extra,
        });
      const alone: StageCursor[] = [];
      const threaded: StageCursor[] = [];
      const expected = await stored(base.store, await filter({ onCheckpoint: (c) => alone.push(structuredClone(c)) }));
      const out = await filter({ pool, onCheckpoint: (c) => threaded.push(structuredClone(c)) });
      assert.deepEqual(await stored(base.store, out), expected);
      assert.deepEqual(threaded, alone);
      assert.deepEqual(await stored(base.store, await filter({ pool, resumeFrom: alone[1] })), expected);
    } finally {
      await pool.close();
    }
  });
  it('the collectBatch activity resumes from the cursor its last attempt heartbeated', async () => {
    const { store, dir } = tempStore();
    const input = writeInputs(dir);
    const activities = createPipelineActivities({ store });
    const key = { dataset: 'resume', version: 'v1', digest: 'f00d' };
    const plan = await activities.planCollection({
      ...key,
      sources: [SourceSpec.parse({ type: 'path', path: input })],
      unitsPerBatch: 2,
    });
    const args = { ...key, plan: plan.plan, batch: 0, limits: LIMITS };

    const first = new MockActivityEnvironment();
    const beats: { stage: string; batch: number; cursor?: StageCursor }[] = [];
    first.on('heartbeat', (d) => beats.push(d));
    const clean: StageOutput = await first.run(activities.collectBatch, args);
    const cursors = beats.filter((b) => b.cursor).map((b) => b.cursor!);
    assert.ok(cursors.length >= 5, `${cursors.length} cursors heartbeated`);
    const expected = await stored(store, clean);

    // A retry after a crash at the fifth boundary: the stage manifest was never committed, the cursor was heartbeated.
    fs.rmSync(path.join(dir, 'pipelines/resume/v1/f00d/collect/batch-000000/manifest.json'));
    const logged: string[] = [];
    const retry = new MockActivityEnvironment(
      { attempt: 2, heartbeatDetails: { stage: 'collect', batch: 0, cursor: cursors[4] } },
      {
        logger: {
          log: () => undefined,
          trace: () => undefined,
          debug: () => undefined,
          warn: () => undefined,
          error: () => undefined,
          info: (m: string) => logged.push(m),
        },
      },
    );
    const resumedBeats: unknown[] = [];
    retry.on('heartbeat', (d) => resumedBeats.push(d));
    const resumed: StageOutput = await retry.run(activities.collectBatch, args);
    assert.ok(
      logged.some((m) => m.includes(`resuming at unit ${cursors[4].unit}, record ${cursors[4].record}`)),
      logged.join('\n'),
    );
    assert.equal(resumedBeats.filter((b) => (b as { cursor?: unknown }).cursor).length >= cursors.length - 5, true);
    assert.deepEqual(await stored(store, resumed), expected);
  });
  it('a file that got shorter since the interrupted attempt is collected over from the start, not silently cut', async () => {
    const { store, dir } = tempStore();
    const input = writeInputs(dir);
    const cursors: StageCursor[] = [];
    await collect(store, input, { onCheckpoint: (c) => cursors.push(structuredClone(c)) });
    const late = cursors.filter((c) => c.unit === 1).at(-1)!;
    fs.writeFileSync(path.join(input, 'b.jsonl'), '{"id": "only", "text": "one line left"}\n');
    await assert.rejects(collect(store, input, { resumeFrom: late }), (err: unknown) => {
      assert.ok(err instanceof ResumeMismatch);
      assert.match(err.message, /source changed or failed/);
      return true;
    });
  });
});
