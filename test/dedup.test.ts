import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { Command } from 'commander';
import * as fc from 'fast-check';
import { registerDedupCommand } from '../app/commands/dedup';
import {
  candidateProbability,
  CorruptDedupFile,
  decodeBandRun,
  decodeSignatures,
  dedupJsonl,
  DedupInputError,
  encodeBandRun,
  encodeSignatures,
  EdgeList,
  estimateJaccard,
  exactDuplicates,
  exactJaccard,
  InvalidDedupOptions,
  joinBand,
  MinHasher,
  readOwnedLines,
  normalizedUtf8,
  normalizedWords,
  normalizeText,
  optimalParams,
  partitionBandRuns,
  permutationCoefficients,
  resolveClusters,
  resolveDedupOptions,
  sCurveThreshold,
  shingles,
  signTexts,
  SignatureStore,
  sortByKey64,
  UnionFind,
  unionEdges,
  verifyGroups,
} from '../lib/dedup';
import { permutationInput, referenceBandKey, referenceSignature, shingleHash, wordHash } from '../lib/dedup/reference';
import { DedupPool } from '../lib/dedup/dedup-pool';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-dedup-'));
after(async () => {
  fs.rmSync(tmp, { recursive: true, force: true });
  await DedupPool.closeShared();
});

const PROSE =
  'The quick brown fox jumps over the lazy dog while the farmer sleeps under the old oak tree near the river bank ' +
  'and the children play with a red ball in the green meadow behind the little white house on the hill';

/** Text built from fragments that stress normalization: case, punctuation, digits, accents, scripts, odd spaces. */
const trickyText = fc
  .array(
    fc.constantFrom(
      'word',
      'Word',
      'WORD',
      'don’t',
      "it's",
      'e-mail',
      '3.14',
      '1,000',
      '42',
      '٣',
      '½',
      '²',
      'Café',
      'CAFÉ',
      'naïve',
      'e\u0301',
      'ﬁne',
      'İstanbul',
      'ǅ',
      'Straße',
      '東京',
      'Москва',
      '😀',
      '👍🏽',
      '©',
      '—',
      '…',
      '¿',
      '\u00a0',
      '\u3000',
      '\u200b',
      '\u00ad',
      '\t',
      '\n',
      ' ',
      '  ',
      '.',
      '!!',
      '$',
      '\x7f',
      '\x01',
      '\ud800',
      '\udc00',
      'a',
      'b',
      'c',
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''));

describe('normalization and shingles', () => {
  it('lowercases, drops punctuation and collapses whitespace', () => {
    assert.equal(normalizeText("  Don't STOP,\tbelieving!\n\n  Hold-on  "), 'dont stop believing holdon');
  });

  it("normalizes as normalizedWords' rules say, byte for byte, on arbitrary text, mostly ASCII or not", () => {
    const text = fc.oneof(
      trickyText,
      fc.string({ unit: 'binary', maxLength: 80 }),
      fc.string({ unit: 'grapheme', maxLength: 80 }),
      // A few non-ASCII characters in ASCII text: prepareNonAscii's other path.
      fc
        .tuple(trickyText, fc.string({ unit: fc.constantFrom('a', 'Z', '1', ' ', '.', '\n'), minLength: 200 }))
        .map(([t, ascii]) => ascii + t + ascii),
    );
    fc.assert(
      fc.property(text, (t) => {
        const expected = Buffer.from(normalizedWords(t).join(' '));
        assert.deepEqual(normalizedUtf8(t), expected);
        assert.equal(normalizeText(t), expected.toString());
      }),
      { numRuns: 2000, seed: 18 },
    );
    // Longer than the reused buffer at first.
    const long = 'Ünïcode — “text”, 𝐀𝐁 and more! '.repeat(5000);
    assert.deepEqual(normalizedUtf8(long), Buffer.from(normalizedWords(long).join(' ')));
  });

  it('optionally folds numbers and diacritics', () => {
    assert.equal(normalizeText('Café 2024 costs 3.50', { normalizeNumbers: true }), 'café 0 costs 00');
    assert.equal(normalizeText('Café ﬁne naïve', { normalizeDiacritics: true }), 'cafe fine naive');
  });

  it('makes word 5-grams; a text shorter than n words is one shingle, an empty text has none', () => {
    assert.deepEqual([...shingles('a b c d e f', 5)], ['a b c d e', 'b c d e f']);
    assert.deepEqual([...shingles('Only three words', 5)], ['only three words']);
    assert.deepEqual([...shingles(' !!! ', 5)], []);
  });
});

describe('MinHash signatures', () => {
  const n = 3;
  const numPerm = 12;
  const { a, b } = permutationCoefficients(numPerm, 1);

  for (const opts of [{}, { normalizeNumbers: true, normalizeDiacritics: true }]) {
    it(`the WebAssembly kernel equals the BigInt reference bit for bit (${JSON.stringify(opts)})`, () => {
      const hasher = new MinHasher({ numPerm, ngram: n, ...opts });
      const out = new Uint32Array(numPerm);
      const keys = new Uint32Array(8);
      fc.assert(
        fc.property(fc.oneof(trickyText, fc.string({ unit: 'binary', maxLength: 60 })), (text) => {
          const words = hasher.sign(text, out, 0);
          const ref = referenceSignature(text, n, a.subarray(0, numPerm), b.subarray(0, numPerm), opts);
          assert.deepEqual([...out], [...ref.signature]);
          assert.equal(words, ref.words);
          assert.equal((BigInt(hasher.exactHi) << 32n) | BigInt(hasher.exactLo), ref.exact);
          hasher.bandKeys(out, 0, 4, 3, keys, 0);
          for (let band = 0; band < 4; band++)
            assert.equal((BigInt(keys[band * 2 + 1]) << 32n) | BigInt(keys[band * 2]), referenceBandKey(out, band, 3));
        }),
        { numRuns: 400 },
      );
    });
  }

  for (const opts of [{}, { normalizeNumbers: true, normalizeDiacritics: true }]) {
    it(`the kernel's shingle sets are the reference's permutation inputs, sorted and distinct (${JSON.stringify(opts)})`, () => {
      const hasher = new MinHasher({ numPerm, ngram: n, ...opts });
      fc.assert(
        fc.property(fc.oneof(trickyText, fc.string({ unit: 'binary', maxLength: 60 })), (text) => {
          const words = normalizedWords(text, opts).map(wordHash);
          const width = Math.min(words.length, n);
          const expected = new Set<number>();
          for (let j = 0; words.length > 0 && j <= words.length - width; j++)
            expected.add(permutationInput(shingleHash(words.slice(j, j + width))));
          assert.deepEqual(
            [...hasher.shingleSet(text)],
            [...expected].sort((x, y) => x - y),
          );
        }),
        { numRuns: 400 },
      );
    });
  }

  it('exact Jaccard counts the shared shingles of two sets, and the signature estimates it', () => {
    const hasher = new MinHasher({ ngram: 1 });
    const words = Array.from({ length: 400 }, (_, i) => `w${i}`);
    const a = hasher.shingleSet(words.slice(0, 300).join(' '));
    const b = hasher.shingleSet(words.slice(100, 400).join(' '));
    assert.equal(a.length, 300);
    assert.equal(exactJaccard(a, b), 200 / 400);
    assert.equal(exactJaccard(a, a), 1);
    assert.equal(exactJaccard(a, new Uint32Array(0)), 0);
    assert.equal(exactJaccard(new Uint32Array(0), new Uint32Array(0)), 1);
  });

  it('signs long documents (memory grows) and equal normalized texts equally', () => {
    const hasher = new MinHasher();
    const long = `${PROSE} `.repeat(5000);
    const x = new Uint32Array(128);
    const y = new Uint32Array(128);
    assert.ok(hasher.sign(long, x, 0) > 100_000);
    hasher.sign(long.toUpperCase().replace(/ /g, ' ,  '), y, 0);
    assert.deepEqual(x, y);
  });

  it('gives an empty document the all-maximum signature and zero words', () => {
    const out = new Uint32Array(128);
    assert.equal(new MinHasher().sign('?! ...', out, 0), 0);
    assert.ok(out.every((v) => v === 0xffffffff));
  });

  it('estimates Jaccard without bias and with the binomial variance J(1−J)/k', () => {
    // Two sets of 300 distinct shingles sharing `shared`: J = shared / (600 − shared).
    const words = Array.from({ length: 2000 }, (_, i) => `w${i}`);
    const k = 128;
    for (const shared of [100, 200, 280]) {
      const j = shared / (600 - shared);
      const estimates: number[] = [];
      for (let seed = 1; seed <= 60; seed++) {
        const hasher = new MinHasher({ numPerm: k, ngram: 1, seed });
        const sigs = new Uint32Array(2 * k);
        const offset = seed * 7;
        hasher.sign(words.slice(offset, offset + 300).join(' '), sigs, 0);
        hasher.sign(words.slice(offset + 300 - shared, offset + 600 - shared).join(' '), sigs, 1);
        estimates.push(estimateJaccard(sigs, 0, sigs, 1, k));
      }
      const mean = estimates.reduce((s, e) => s + e, 0) / estimates.length;
      const variance = estimates.reduce((s, e) => s + (e - mean) ** 2, 0) / (estimates.length - 1);
      const expected = (j * (1 - j)) / k;
      assert.ok(Math.abs(mean - j) < 4 * Math.sqrt(expected / estimates.length), `J=${j}: mean ${mean}`);
      assert.ok(variance > expected * 0.5 && variance < expected * 1.6, `J=${j}: variance ${variance} vs ${expected}`);
    }
  });
});

describe('LSH parameters', () => {
  it('minimizes weighted FP + FN areas like datasketch: t = 0.8, 128 permutations → 9 bands × 13 rows', () => {
    assert.deepEqual(optimalParams(0.8, 128), { bands: 9, rows: 13 });
  });

  it('matches datasketch optimal_param across thresholds, sizes and weights', () => {
    // Computed with datasketch 2.0 (`_optimal_param`).
    const expected: [number, number, number, number, number][] = [
      [0.5, 64, 0.5, 14, 4],
      [0.5, 256, 0.5, 42, 6],
      [0.6, 128, 0.5, 18, 7],
      [0.7, 128, 0.5, 14, 9],
      [0.75, 128, 0.5, 11, 11],
      [0.85, 128, 0.5, 8, 16],
      [0.9, 256, 0.5, 9, 28],
      [0.95, 128, 0.5, 3, 42],
      [0.8, 128, 0.3, 11, 11],
      [0.8, 128, 0.1, 14, 9],
      [0.8, 128, 0.05, 16, 8],
    ];
    for (const [t, numPerm, fp, bands, rows] of expected)
      assert.deepEqual(
        optimalParams(t, numPerm, { falsePositive: fp, falseNegative: 1 - fp }),
        { bands, rows },
        `t=${t} k=${numPerm} fp=${fp}`,
      );
  });

  it('reports the S-curve midpoint (1/b)^(1/r)', () => {
    assert.ok(Math.abs(sCurveThreshold({ bands: 9, rows: 13 }) - 0.8444) < 1e-4);
    assert.ok(Math.abs(candidateProbability(0.8, { bands: 14, rows: 8 }) - 0.924) < 1e-3);
  });

  it('rejects a threshold outside (0, 1) and bands that do not divide num_perm, listing every problem', () => {
    assert.throws(
      () => resolveDedupOptions({ threshold: 1 }),
      /threshold = 1: expected a number strictly between 0 and 1/,
    );
    assert.throws(
      () => resolveDedupOptions({ threshold: 0, numPerm: 100, bands: 7 }),
      (err: unknown) =>
        err instanceof InvalidDedupOptions &&
        err.problems.length === 2 &&
        /num_perm = 100 is not divisible into 7 bands/.test(err.message) &&
        err.exitCode === 2,
    );
    assert.deepEqual(resolveDedupOptions({ numPerm: 120, bands: 12 }).lsh, { bands: 12, rows: 10 });
  });
});

describe('stages', () => {
  it('radix-sorts 64-bit keys stably', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.nat({ max: 70000 })), { maxLength: 300 }),
        (pairs) => {
          const hi = Uint32Array.from(pairs, ([h]) => h * 0x40000000);
          const lo = Uint32Array.from(pairs, ([, l]) => l);
          const values = Uint32Array.from(pairs, (_, i) => i);
          sortByKey64(hi, lo, values);
          const expected = pairs
            .map(([h, l], i) => ({ h: h * 0x40000000, l, i }))
            .sort((x, y) => x.h - y.h || x.l - y.l || x.i - y.i);
          assert.deepEqual(
            [...values],
            expected.map((e) => e.i),
          );
        },
      ),
      { numRuns: 100 },
    );
  });

  it('union-find keeps the earliest document as the root', () => {
    const uf = new UnionFind(6);
    uf.union(5, 3);
    uf.union(3, 4);
    uf.union(4, 1);
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5].map((d) => uf.find(d)),
      [0, 1, 2, 1, 1, 1],
    );
  });

  it('fans out over partitions: per-partition band runs joined by band give the same clusters as one partition', () => {
    const texts = [
      PROSE,
      'something else entirely different words here now',
      `${PROSE} again`,
      PROSE.replace('hill', 'ridge'),
      '',
    ];
    const hasher = new MinHasher();
    const lsh = { bands: 16, rows: 8 };
    const whole = signTexts(hasher, texts, 0);
    const parts = [signTexts(hasher, texts.slice(0, 2), 0), signTexts(hasher, texts.slice(2), 2)];
    const cluster = (runsPerPart: ReturnType<typeof partitionBandRuns>[], store: SignatureStore) => {
      const uf = new UnionFind(texts.length);
      const edges = new EdgeList();
      for (let band = 0; band < lsh.bands; band++)
        verifyGroups(joinBand(runsPerPart.map((runs) => runs[band])), store, edges, { minSimilarity: 0.7 });
      unionEdges(uf, edges);
      return resolveClusters(uf, texts.length, store);
    };
    const storeWhole = new SignatureStore(128);
    storeWhole.add(whole);
    const storeParts = new SignatureStore(128);
    for (const p of [...parts].reverse()) storeParts.add(decodeSignatures(encodeSignatures(p)));
    const a = cluster([partitionBandRuns(hasher, whole, lsh)], storeWhole);
    const b = cluster(
      parts.map((p) => partitionBandRuns(hasher, p, lsh).map((run) => decodeBandRun(encodeBandRun(run)))),
      storeParts,
    );
    assert.deepEqual([...a.keptOf], [0, 1, 0, 0, 4]);
    assert.deepEqual(b, a);
  });

  it('exact dedup keeps the first of equal hashes', () => {
    const uf = new UnionFind(4);
    const seen: [number, number][] = [];
    const repeats = exactDuplicates(
      Uint32Array.of(1, 2, 1, 1),
      Uint32Array.of(5, 5, 5, 6),
      Uint32Array.of(0, 1, 2, 3),
      uf,
      (first, doc) => seen.push([first, doc]),
    );
    assert.equal(repeats, 1);
    assert.deepEqual(seen, [[0, 2]]);
  });

  it('byte-range chunks own each line exactly once, whatever the chunk size', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(''), fc.string({ maxLength: 3 }), fc.string({ maxLength: 40 })), {
          maxLength: 30,
        }),
        fc.boolean(),
        fc.integer({ min: 1, max: 50 }),
        (lines, finalNewline, chunk) => {
          const content = lines.map((l) => l.replace(/\n/g, ' ')).join('\n') + (finalNewline ? '\n' : '');
          const file = path.join(tmp, 'ranges.txt');
          fs.writeFileSync(file, content);
          const size = fs.statSync(file).size;
          const fd = fs.openSync(file, 'r');
          const parts: Buffer[] = [];
          let expectedStart = 0;
          try {
            for (let start = 0; start < size; start += chunk) {
              const owned = readOwnedLines(fd, start, Math.min(start + chunk, size), size);
              if (owned.bytes.length === 0) continue;
              assert.equal(owned.start, expectedStart);
              expectedStart += owned.bytes.length;
              parts.push(Buffer.from(owned.bytes));
            }
          } finally {
            fs.closeSync(fd);
          }
          assert.equal(Buffer.concat(parts).toString(), content);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('file formats refuse truncated or foreign bytes', () => {
    const part = signTexts(new MinHasher({ numPerm: 8 }), ['a b c'], 0);
    const bytes = encodeSignatures(part);
    assert.throws(() => decodeSignatures(bytes.subarray(0, bytes.length - 1)), CorruptDedupFile);
    assert.throws(() => decodeBandRun(bytes), CorruptDedupFile);
  });
});

describe('dedupJsonl and the dedup command', () => {
  const write = (name: string, content: string | Buffer) => {
    const file = path.join(tmp, name);
    fs.writeFileSync(file, content);
    return file;
  };
  const lines = (records: object[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const read = (dir: string, file: string) => fs.readFileSync(path.join(dir, file), 'utf8');

  const corpus = [
    { id: 'a', text: PROSE, url: 'https://a' },
    { id: 'b', text: 'A completely different document about databases, indexes and query planning in detail' },
    { id: 'c', text: PROSE.toUpperCase() + '!!!', lang: 'en' },
    { id: 'd', text: PROSE.replace('hill', 'ridge') },
    { id: 'e', text: '' },
    { id: 'f', text: 'short one' },
    { id: 'g', text: '  ' },
    { id: 7, text: 'Short One.' },
  ];

  it('writes kept lines unchanged in input order, duplicates with their kept document and similarity, and stats', async () => {
    const input = write('docs.jsonl', lines(corpus).replace('\n{"id":"b"', '\n\n{"id":"b"'));
    const out = path.join(tmp, 'out');
    const stats = await dedupJsonl(input, out, { workers: 0 });
    const inputLines = fs.readFileSync(input, 'utf8').split('\n').filter(Boolean);
    assert.equal(
      read(out, 'kept.jsonl'),
      [inputLines[0], inputLines[1], inputLines[4], inputLines[5]].join('\n') + '\n',
    );
    const dups = read(out, 'duplicates.jsonl')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.deepEqual(
      dups.map((d) => [d.id, d.duplicate_of]),
      [
        ['c', 'a'],
        ['d', 'a'],
        ['g', 'e'],
        [7, 'f'],
      ],
    );
    assert.equal(dups[0].similarity, 1);
    assert.ok(dups[1].similarity >= 0.7 && dups[1].similarity < 1);
    const onDisk = JSON.parse(read(out, 'stats.json'));
    assert.deepEqual(onDisk, stats);
    assert.equal(stats.docs, 8);
    assert.equal(stats.removed, 4);
    assert.equal(stats.exactDuplicates, 3);
    assert.equal(stats.nearDuplicates, 1);
    assert.equal(stats.clusters, 3);
    assert.equal(stats.emptyDocs, 2);
    assert.deepEqual([stats.bands, stats.rows, stats.threshold, stats.verification], [16, 8, 0.8, 'exact']);
    assert.ok(stats.sCurveMidpoint > 0.7 && stats.sCurveMidpoint < 0.8);
    for (const key of ['seconds', 'mbPerSecond', 'bytes'] as const) assert.ok(stats[key] > 0, key);
  });

  it('gives the same result on 2 worker threads as on the calling thread, across many chunks', async () => {
    const many = Array.from({ length: 600 }, (_, i) => ({
      id: `doc-${i}`,
      text:
        i % 3 === 0
          ? `${PROSE} ${i}`
          : `${PROSE.split(' ')
              .slice(i % 20)
              .join(' ')} unique ${i} words ${i * 7}`,
    }));
    const input = write('many.jsonl', lines(many));
    const a = await dedupJsonl(input, path.join(tmp, 'w0'), { workers: 0 });
    const b = await dedupJsonl(input, path.join(tmp, 'w2'), { workers: 2, chunkBytes: 333 });
    assert.equal(read(path.join(tmp, 'w2'), 'kept.jsonl'), read(path.join(tmp, 'w0'), 'kept.jsonl'));
    assert.equal(read(path.join(tmp, 'w2'), 'duplicates.jsonl'), read(path.join(tmp, 'w0'), 'duplicates.jsonl'));
    assert.equal(a.removed, b.removed);
    assert.ok(a.removed > 100);
  });

  it('exact dedup can compare a field such as the URL instead of the text', async () => {
    const input = write(
      'urls.jsonl',
      lines([
        { id: 1, text: 'first text here', url: 'https://x' },
        { id: 2, text: 'unrelated words entirely', url: 'https://x' },
      ]),
    );
    const stats = await dedupJsonl(input, path.join(tmp, 'urls'), { workers: 0, exactField: 'url' });
    assert.equal(stats.exactDuplicates, 1);
  });

  it('repairs invalid UTF-8 and passes a last line without newline through', async () => {
    const bad = Buffer.concat([
      Buffer.from('{"id":"x","text":"caf'),
      Buffer.from([0xc3, 0x28]),
      Buffer.from(' au lait"}\n{"id":"y","text":"other"}'),
    ]);
    const out = path.join(tmp, 'utf8');
    const stats = await dedupJsonl(write('bad-utf8.jsonl', bad), out, { workers: 0 });
    assert.equal(stats.repairedUtf8Lines, 1);
    assert.equal(read(out, 'kept.jsonl'), '{"id":"x","text":"caf\ufffd( au lait"}\n{"id":"y","text":"other"}\n');
  });

  it('rejects duplicate ids naming both lines, and a line without text naming it', async () => {
    const dupIds = write(
      'dup-ids.jsonl',
      lines([
        { id: 'a', text: 'x' },
        { id: 'b', text: 'y' },
        { id: 'a', text: 'z' },
      ]),
    );
    for (const workers of [0, 1])
      await assert.rejects(dedupJsonl(dupIds, path.join(tmp, 'x'), { workers }), (err: unknown) => {
        assert.ok(err instanceof DedupInputError);
        assert.match(err.message, /duplicate id "a" on lines 1 and 3/);
        assert.deepEqual(err.lines, [1, 3]);
        return true;
      });
    const noText = write(
      'no-text.jsonl',
      lines([
        { id: 'a', text: 'x' },
        { id: 'b', body: 'y' },
      ]),
    );
    await assert.rejects(dedupJsonl(noText, path.join(tmp, 'x'), { workers: 1 }), /line 2: missing "text" field/);
    const notJson = write('not-json.jsonl', '{"id": "a", "text": "x"}\n{oops\n');
    await assert.rejects(dedupJsonl(notJson, path.join(tmp, 'x'), { workers: 0 }), /line 2: not valid JSON/);
    await assert.rejects(dedupJsonl(path.join(tmp, 'missing.jsonl'), path.join(tmp, 'x')), /input not found/);
  });

  it('the command parses its flags, and bad input or options fail with exit code 2', async () => {
    const run = async (...args: string[]) => {
      const program = new Command('flywheel').exitOverride().configureOutput({ writeErr: () => undefined });
      registerDedupCommand(program);
      const log = console.log;
      console.log = () => undefined;
      try {
        await program.parseAsync(['node', 'flywheel', 'dedup', ...args]);
        return 0;
      } catch (err) {
        // As app/cli.ts main(): commander's own errors are usage errors.
        const { code, exitCode } = err as { code?: string; exitCode?: number };
        return code?.startsWith('commander.') ? 2 : (exitCode ?? 1);
      } finally {
        console.log = log;
      }
    };
    const input = write('cmd.jsonl', lines(corpus));
    const out = path.join(tmp, 'cmd');
    assert.equal(
      await run(
        '--input',
        input,
        '--out',
        out,
        '--threshold',
        '0.7',
        '--num-perm',
        '64',
        '--workers',
        '1',
        '--no-progress',
      ),
      0,
    );
    assert.equal(JSON.parse(read(out, 'stats.json')).numPerm, 64);
    assert.equal(await run('--input', input, '--out', out, '--threshold', '1.2'), 2);
    assert.equal(await run('--input', input, '--out', out, '--bands', '7', '--no-progress'), 2);
    assert.equal(await run('--input', write('cmd-bad.jsonl', '{"id":1}\n'), '--out', out, '--no-progress'), 2);
  });
});
