import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { Command } from 'commander';
import { registerDedupCommand } from '../app/commands/dedup';
import { sampleCorpus } from '../lib/collect';
import {
  CorruptDedupFile,
  decodeSignatureIndex,
  dedupJsonl,
  DedupInputError,
  encodeSignatureIndex,
  InvalidDedupOptions,
  MinHasher,
  signTexts,
} from '../lib/dedup';
import { DedupPool } from '../lib/dedup/dedup-pool';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-dedup-index-'));
after(async () => {
  fs.rmSync(tmp, { recursive: true, force: true });
  await DedupPool.closeShared();
});

/** Real prose: chapters of the bundled Moby-Dick. */
const chapters = sampleCorpus('moby-dick')
  .documents.slice(20, 40)
  .map((d) => d.text);

/** A near duplicate: every `every`-th word replaced (1 in 60 words changed: Jaccard of 5-grams about 0.9). */
const edited = (text: string, every = 60) =>
  text
    .split(' ')
    .map((w, i) => (i % every === every - 1 ? 'harpoon' : w))
    .join(' ');

const jsonl = (records: object[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
const readLines = (file: string) =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/** Today's dataset: chapters 0-9 and a near copy of chapter 0 (removed within the run). */
const today = [
  ...chapters.slice(0, 10).map((text, i) => ({ id: `day1-${i}`, text })),
  { id: 'day1-copy', text: edited(chapters[0]) },
];
/** Tomorrow's feedback: repeats of today's documents (near and exact), a repeat within itself, and new text. */
const tomorrow = [
  { id: 'day2-new-a', text: chapters[10] },
  { id: 'day2-near-3', text: edited(chapters[3], 45) },
  { id: 'day2-exact-5', text: `  ${chapters[5].toUpperCase()}  ` },
  { id: 'day2-new-b', text: chapters[11] },
  { id: 'day2-near-new-a', text: edited(chapters[10]) },
  { id: 'day2-near-copy', text: edited(chapters[0], 70) },
];

function write(name: string, records: object[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, jsonl(records));
  return file;
}

function snapshot(dir: string): Record<string, string> {
  return Object.fromEntries(fs.readdirSync(dir).map((f) => [f, fs.readFileSync(path.join(dir, f)).toString('base64')]));
}

describe('dedup against the signature index of an earlier run', () => {
  const day1 = path.join(tmp, 'day1');
  const day2 = path.join(tmp, 'day2');

  it('every run writes index.bin: the signatures, exact hashes and ids of its kept documents, in kept order', async () => {
    const stats = await dedupJsonl(write('day1.jsonl', today), day1, { workers: 0 });
    assert.equal(stats.removed, 1);
    assert.equal(stats.indexed, 0);
    const index = decodeSignatureIndex(fs.readFileSync(path.join(day1, 'index.bin')));
    const keptIds = readLines(path.join(day1, 'kept.jsonl')).map((r) => JSON.stringify(r.id));
    assert.deepEqual(index.ids, keptIds);
    assert.equal(index.meta.documents, 10);
    assert.deepEqual(
      { numPerm: index.meta.params.numPerm, ngram: index.meta.params.ngram, exactField: index.meta.exactField },
      { numPerm: 128, ngram: 5, exactField: null },
    );
    // The stored signature is the one a fresh hasher computes for that document.
    const fresh = signTexts(new MinHasher(), [chapters[4]], 0);
    assert.deepEqual(index.signatures.sigs.subarray(4 * 128, 5 * 128), fresh.sigs);
    assert.equal(index.signatures.exactHi[4], fresh.exactHi[0]);
  });

  it('removes new documents that repeat indexed ones, naming the indexed id, and leaves the index run untouched', async () => {
    const before = snapshot(day1);
    const stats = await dedupJsonl(write('day2.jsonl', tomorrow), day2, { workers: 0, index: [day1] });
    assert.deepEqual(snapshot(day1), before, 'the indexed run is only read');

    const dups = readLines(path.join(day2, 'duplicates.jsonl'));
    assert.deepEqual(
      dups.map((d) => [d.id, d.duplicate_of]),
      [
        ['day2-near-3', 'day1-3'],
        ['day2-exact-5', 'day1-5'],
        ['day2-near-new-a', 'day2-new-a'],
        // day1-copy was removed yesterday: its cluster's kept document is day1-0.
        ['day2-near-copy', 'day1-0'],
      ],
    );
    for (const d of dups) assert.ok((d.similarity as number) >= 0.75 && (d.similarity as number) <= 1, String(d.id));
    assert.equal(dups[1].similarity, 1);
    assert.deepEqual(
      readLines(path.join(day2, 'kept.jsonl')).map((r) => r.id),
      ['day2-new-a', 'day2-new-b'],
    );
    assert.deepEqual(
      {
        docs: stats.docs,
        kept: stats.kept,
        removed: stats.removed,
        indexed: stats.indexed,
        indexDuplicates: stats.indexDuplicates,
        exact: stats.exactDuplicates,
        near: stats.nearDuplicates,
      },
      { docs: 6, kept: 2, removed: 4, indexed: 10, indexDuplicates: 3, exact: 1, near: 3 },
    );
    // Day 2's own index holds only what day 2 kept.
    assert.deepEqual(decodeSignatureIndex(fs.readFileSync(path.join(day2, 'index.bin'))).ids, [
      '"day2-new-a"',
      '"day2-new-b"',
    ]);
  });

  it('takes several indexes (each day against every earlier day) and gives the same result on worker threads', async () => {
    const day3 = [
      { id: 'day3-near-new-b', text: edited(chapters[11]) },
      { id: 'day3-near-2', text: edited(chapters[2]) },
      { id: 'day3-new', text: chapters[12] },
    ];
    const input = write('day3.jsonl', day3);
    const local = path.join(tmp, 'day3-local');
    const threads = path.join(tmp, 'day3-threads');
    await dedupJsonl(input, local, { workers: 0, index: [day1, path.join(day2, 'index.bin')] });
    const stats = await dedupJsonl(input, threads, { workers: 2, chunkBytes: 4096, index: [day1, day2] });
    for (const file of ['kept.jsonl', 'duplicates.jsonl', 'index.bin'])
      assert.equal(fs.readFileSync(path.join(threads, file), 'utf8'), fs.readFileSync(path.join(local, file), 'utf8'));
    assert.deepEqual(
      readLines(path.join(threads, 'duplicates.jsonl')).map((d) => [d.id, d.duplicate_of]),
      [
        ['day3-near-new-b', 'day2-new-b'],
        ['day3-near-2', 'day1-2'],
      ],
    );
    assert.equal(stats.indexed, 12);
  });

  it('refuses an index signed another way, naming each setting, and a missing or damaged index', async () => {
    const input = write('day2-again.jsonl', tomorrow);
    await assert.rejects(
      dedupJsonl(input, path.join(tmp, 'x'), { workers: 0, numPerm: 64, normalizeNumbers: true, index: [day1] }),
      (err: unknown) => {
        assert.ok(err instanceof InvalidDedupOptions);
        assert.equal(err.problems.length, 2);
        assert.match(err.message, /--num-perm: the index was built with 128, this run uses 64/);
        assert.match(err.message, /--normalize-numbers: the index was built with false, this run uses true/);
        return true;
      },
    );
    await assert.rejects(
      dedupJsonl(input, path.join(tmp, 'x'), { workers: 0, index: [path.join(tmp, 'nowhere')] }),
      (err: unknown) => err instanceof DedupInputError && /index not found/.test(err.message),
    );
    const damaged = path.join(tmp, 'damaged.bin');
    const bytes = fs.readFileSync(path.join(day1, 'index.bin'));
    fs.writeFileSync(damaged, bytes.subarray(0, bytes.length - 4));
    await assert.rejects(
      dedupJsonl(input, path.join(tmp, 'x'), { workers: 0, index: [damaged] }),
      (err: unknown) => err instanceof DedupInputError && /damaged\.bin/.test(err.message),
    );
  });

  it('the index format round-trips and refuses foreign bytes', () => {
    const part = signTexts(new MinHasher({ numPerm: 8 }), ['a b c d e f', ''], 0);
    const meta = { params: { ...new MinHasher({ numPerm: 8 }).params }, exactField: 'url' };
    const decoded = decodeSignatureIndex(encodeSignatureIndex(meta, ['"x"', '7'], part));
    assert.deepEqual(decoded.ids, ['"x"', '7']);
    assert.deepEqual(decoded.signatures.sigs, part.sigs);
    assert.deepEqual(decoded.signatures.words, part.words);
    assert.equal(decoded.meta.exactField, 'url');
    assert.throws(
      () => decodeSignatureIndex(Buffer.from('FWMHSIG1 and more bytes than a header holds')),
      CorruptDedupFile,
    );
    assert.throws(() => encodeSignatureIndex(meta, ['"x"'], part), /1 ids for 2 signatures/);
  });

  it('the command takes --index (repeatable) and exits 2 on an incompatible index', async () => {
    const run = async (...args: string[]) => {
      const program = new Command('flywheel').exitOverride().configureOutput({ writeErr: () => undefined });
      registerDedupCommand(program);
      const log = console.log;
      const printed: string[] = [];
      console.log = (line: string) => printed.push(line);
      try {
        await program.parseAsync(['node', 'flywheel', 'dedup', ...args]);
        return { code: 0, printed };
      } catch (err) {
        const { code, exitCode } = err as { code?: string; exitCode?: number };
        return { code: code?.startsWith('commander.') ? 2 : (exitCode ?? 1), printed };
      } finally {
        console.log = log;
      }
    };
    const input = write('cmd-day2.jsonl', tomorrow);
    const out = path.join(tmp, 'cmd-day2');
    const ok = await run('--input', input, '--out', out, '--index', day1, '--workers', '1', '--no-progress');
    assert.equal(ok.code, 0);
    assert.match(ok.printed.join('\n'), /3 repeat one of the 10 indexed documents/);
    assert.equal(readLines(path.join(out, 'duplicates.jsonl'))[0].duplicate_of, 'day1-3');
    const twice = await run('--input', input, '--out', out, '--index', day1, '--index', day2, '--no-progress');
    assert.equal(twice.code, 0);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, 'stats.json'), 'utf8')).indexed, 12);
    const bad = await run('--input', input, '--out', out, '--index', day1, '--ngram', '3', '--no-progress');
    assert.equal(bad.code, 2);
  });
});
