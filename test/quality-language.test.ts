import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { Document } from '../lib/document';
import { sampleCorpus } from '../lib/collect';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import { QualitySpec, filterDocument, type FilterResult, type QualitySpecInput } from '../lib/quality';
import { identifyLanguage, languageModel } from '../lib/quality/language';
import { Lid176 } from '../lib/quality/lid176';
import { QualitySpec as ParsedQualitySpec } from '../lib/quality/spec';
import { packageReadmes } from '../lib/dedup/evaluation';
import fc from 'fast-check';
import { LID_176_LABELS } from '../lib/quality/lid-labels';

const doc = (text: string): Document => ({
  id: 'test',
  text,
  source: 'test',
  added: '2025-01-02T03:04:05.000Z',
  metadata: { origin: 'fixture' },
});

/** Only language identification. */
const LANGUAGE_ONLY = { gopherRepetition: false, gopherQuality: false, c4: false, fineweb: false } as const;
const only = (language: QualitySpecInput['language']): QualitySpecInput => ({ ...LANGUAGE_ONLY, language });

const rule = (result: FilterResult) => (result.kept ? 'kept' : result.rule);

const ENGLISH = sampleCorpus('moby-dick')
  .documents.find((d) => d.id === 'moby-dick/chapter-001')!
  .text.split('\n\n')[1];
const FRENCH =
  "Le vieux port de Marseille s'anime dès l'aube : les pêcheurs déchargent leurs filets, les marchands installent " +
  'leurs étals et les touristes flânent le long des quais en attendant l’ouverture des cafés.';
const GERMAN =
  'Am frühen Morgen zieht Nebel über den See, und die Fischer rudern langsam hinaus, während im Dorf die ersten ' +
  'Bäckereien ihre Türen öffnen und der Duft von frischem Brot durch die Gassen zieht.';
const CHINESE =
  '清晨的湖面上笼罩着一层薄雾，渔民们划着小船慢慢出发，村子里的面包店陆续开门，新鲜面包的香味飘满了街巷。';
/** Mostly German by the model (about 0.52), English second (about 0.32). */
const MIXED = 'The harbour wakes at dawn. Der Hafen erwacht.';

/** The model's probability of its best language, unrounded, as the filter compares it. */
async function bestScore(text: string): Promise<number> {
  const vector = (await languageModel()).predict(text.replace(/\n/g, ' '), 1, 0);
  const [score] = vector.get(0);
  vector.delete();
  return score;
}

describe('language identification', () => {
  it('keeps English prose by default and records the language and its score on the document', async () => {
    const result = await filterDocument(doc(ENGLISH), only({}));
    assert.ok(result.kept);
    assert.equal(result.doc.metadata.language, 'en');
    const score = result.doc.metadata.languageScore as number;
    assert.ok(score > 0.65 && score <= 1, `score ${score}`);
    assert.equal(score, Math.round((await bestScore(ENGLISH)) * 1e4) / 1e4, 'rounded to 4 places');
    assert.equal(result.doc.metadata.origin, 'fixture', 'the metadata it had is kept');
  });

  for (const [name, text, label] of [
    ['French', FRENCH, 'fr'],
    ['German', GERMAN, 'de'],
    ['Chinese', CHINESE, 'zh'],
  ] as const) {
    it(`drops ${name} under the default (English) and keeps it when ${label} is listed`, async () => {
      const dropped = await filterDocument(doc(text), only({}));
      assert.ok(!dropped.kept);
      assert.equal(dropped.rule, 'language.score');
      assert.match(dropped.detail, new RegExp(`^${label} at 0\\.\\d{4}; no language of en above 0.65$`));
      const kept = await filterDocument(doc(text), only({ languages: ['en', label] }));
      assert.ok(kept.kept);
      assert.equal(kept.doc.metadata.language, label);
      assert.ok((kept.doc.metadata.languageScore as number) > 0.9);
    });
  }

  it('drops empty, blank and symbol-only text as language.unknown', async () => {
    for (const text of ['', ' \n\t ', '!!! ??? ### ...', '12345 678 — 42%', '🐋🐋🐋']) {
      const result = await filterDocument(doc(text), only({}));
      assert.equal(rule(result), 'language.unknown', JSON.stringify(text));
    }
  });

  it('keeps a score just above minScore and drops one at it (datatrove compares with >)', async () => {
    const score = await bestScore(ENGLISH);
    assert.equal(rule(await filterDocument(doc(ENGLISH), only({ minScore: score - 1e-6 }))), 'kept');
    const at = await filterDocument(doc(ENGLISH), only({ minScore: score }));
    assert.ok(!at.kept);
    assert.equal(at.rule, 'language.score');
    assert.match(at.detail, /^en at 0\.\d{4}, not above 0\.\d+$/);
  });

  it('below 0.5, keeps a document whose listed language is above minScore though another is best', async () => {
    const result = await filterDocument(doc(MIXED), only({ minScore: 0.3 }));
    assert.ok(result.kept);
    assert.equal(result.doc.metadata.language, 'de', 'the best language is recorded, as datatrove does');
    assert.equal(rule(await filterDocument(doc(MIXED), only({ minScore: 0.33 }))), 'language.score');
  });

  it('reads the text with newlines as spaces', async () => {
    const lines = ENGLISH.replace(/\. /g, '.\n');
    assert.notEqual(lines, ENGLISH);
    const [a, b] = await Promise.all([filterDocument(doc(lines), only({})), filterDocument(doc(ENGLISH), only({}))]);
    assert.ok(a.kept && b.kept);
    assert.equal(a.doc.metadata.languageScore, b.doc.metadata.languageScore);
  });

  it('runs before the other families and leaves no metadata on a document it did not judge', async () => {
    const short = await filterDocument(doc(FRENCH), { gopherRepetition: false });
    assert.equal(rule(short), 'language.score', 'language first: French fails it before Gopher quality');
    const off = await filterDocument(doc(ENGLISH), { ...LANGUAGE_ONLY, language: false });
    assert.ok(off.kept);
    assert.equal(off.doc.metadata.language, undefined);
  });

  it('knows the same 176 labels as the model', async () => {
    const [labels, counts] = (await languageModel()).getLabels();
    const model = Array.from({ length: labels.size() }, (_, i) => labels.get(i).replace('__label__', ''));
    labels.delete();
    counts.delete();
    assert.deepEqual([...model].sort(), [...LID_176_LABELS].sort());
  });

  it('loads and predicts in a worker thread, as the filter pools run it', async () => {
    const source = `
      require('tsx/cjs');
      const { parentPort, workerData } = require('node:worker_threads');
      const { filterDocument } = require(workerData.module);
      filterDocument(workerData.doc, workerData.spec).then((r) => parentPort.postMessage(r), (e) => parentPort.postMessage(String(e)));
    `;
    const result = await new Promise<FilterResult>((resolve, reject) => {
      const worker = new Worker(source, {
        eval: true,
        workerData: {
          module: path.join(__dirname, '..', 'lib', 'quality'),
          doc: doc(GERMAN),
          spec: only({ languages: ['de'] }),
        },
      });
      worker.once('message', (message: FilterResult) => {
        resolve(message);
        void worker.terminate();
      });
      worker.once('error', reject);
    });
    assert.ok(result.kept, JSON.stringify(result));
    assert.equal(result.doc.metadata.language, 'de');
  });
});

/** The WebAssembly model's best label and probability for a line, as the filter asked it before lid176.ts. */
async function wasmBest(line: string): Promise<[string, number] | undefined> {
  const vector = (await languageModel()).predict(line, 1, 0);
  try {
    if (vector.size() === 0) return undefined;
    const [p, label] = vector.get(0);
    return [label.replace('__label__', ''), p];
  } finally {
    vector.delete();
  }
}

describe('lid.176 in TypeScript (lid176.ts) against the WebAssembly model', () => {
  const ts = Lid176.fromPackage();
  const spec = ParsedQualitySpec.parse({}).language;
  assert.ok(spec !== false);
  const listed = new Set(spec.languages);
  /** Real text of many kinds: Moby-Dick's paragraphs and chapters, package READMEs (code, tables, links), the samples. */
  const texts = [
    ...sampleCorpus('moby-dick').documents.flatMap((d) => [d.text, ...d.text.split(/\n{2,}/)]),
    ...packageReadmes(path.join(__dirname, '..', 'node_modules')).flatMap((r) => r.split(/\n(?=#{1,6} )/)),
    FRENCH,
    GERMAN,
    CHINESE,
    MIXED,
  ];

  it('gives the same label and probability on real text, and the filter the same verdict and score', async () => {
    const model = await languageModel();
    let bitIdentical = 0;
    for (const text of texts) {
      const line = text.replace(/\n/g, ' ');
      const ours = ts.best(line);
      const theirs = await wasmBest(line);
      assert.equal(ours?.label, theirs?.[0], JSON.stringify(text.slice(0, 80)));
      assert.ok(Math.abs(ours!.probability - theirs![1]) < 2e-7, `${ours!.probability} vs ${theirs![1]}`);
      if (ours!.probability === theirs![1]) bitIdentical++;
      // The filter's answer (TypeScript unless a boundary is within reach of a last bit) is the WebAssembly one's.
      const verdict = identifyLanguage(model, text, spec, listed);
      const score = Math.round(theirs![1] * 1e4) / 1e4;
      if ('guess' in verdict) assert.deepEqual(verdict.guess, { language: theirs![0], score });
      else if (verdict.violation.rule === 'language.score')
        assert.ok(
          verdict.violation.detail.startsWith(`${theirs![0]} at ${theirs![1].toFixed(4)}`),
          verdict.violation.detail,
        );
    }
    // exp and log are JavaScript's, rounded to float32: a last bit may differ from the C library's, rarely.
    assert.ok(bitIdentical >= 0.99 * texts.length, `${bitIdentical} of ${texts.length} bit for bit`);
  });

  it('splits words as fastText does: its whitespace, a newline or its end-of-sentence token ending the line, long and non-ASCII words', async () => {
    const word = fc.oneof(
      fc.constantFrom(
        'the',
        'whale',
        'Ahab',
        'café',
        'über',
        'Привет',
        '清晨',
        '</s>',
        '__label__en',
        'ß',
        '🐋',
        "don't",
      ),
      fc.string({ minLength: 1, maxLength: 12 }),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 8 }),
      fc.constant('x'.repeat(300)),
    );
    const gap = fc.constantFrom(' ', '  ', '\t', '\v', '\f', '\r', '\0', ' \u00a0 ', '\n', ' \n\n');
    const line = fc.array(fc.tuple(word, gap), { minLength: 1, maxLength: 40 }).map((parts) => parts.flat().join(''));
    await fc.assert(
      fc.asyncProperty(line, async (text) => {
        if (/\p{Cs}/u.test(text)) return; // the filter sends text with a lone surrogate to the WebAssembly model
        const ours = ts.best(text);
        const theirs = await wasmBest(text);
        if (ours === undefined || theirs === undefined) return assert.equal(ours?.label, theirs?.[0]);
        assert.ok(Math.abs(ours.probability - theirs[1]) < 2e-7, `${ours.probability} vs ${theirs[1]}`);
        if (ours.margin > 1e-5) assert.equal(ours.label, theirs[0]);
      }),
      { numRuns: 2000, seed: 16 },
    );
  });

  it('forgets the words it has seen once its table is half full, and predicts the same after', async () => {
    const fresh = Lid176.fromPackage();
    const before = fresh.best(ENGLISH);
    // 200,000 distinct words, more than the table holds: it is emptied and filled again.
    const many = Array.from({ length: 200_000 }, (_, i) => `w${i.toString(36)}`).join(' ');
    const crowd = fresh.best(many);
    assert.deepEqual(crowd?.label, (await wasmBest(many))?.[0]);
    assert.deepEqual(fresh.best(ENGLISH), before);
    assert.equal(before?.probability, (await wasmBest(ENGLISH))?.[1]);
  });
});

describe('language and FineWeb specs', () => {
  it('default to FineWeb: English above 0.65, and FineWeb’s own thresholds', () => {
    const spec = QualitySpec.parse({});
    assert.deepEqual(spec.language, { languages: ['en'], minScore: 0.65 });
    assert.deepEqual(spec.fineweb, {
      minLineEndPunctuationRatio: 0.12,
      ignoreZeroLineEndPunctuation: false,
      maxShortLineRatio: 0.67,
      shortLineLength: 30,
      maxDupLineCharRatio: 0.01,
      maxNewLineRatio: 0.3,
    });
    const off = QualitySpec.parse({ language: false, fineweb: false });
    assert.deepEqual([off.language, off.fineweb], [false, false]);
  });

  it('rejects a bad spec naming every bad field', async () => {
    const bad = {
      language: { languages: ['english', 'de'], minScore: 1.5, script: 'Latn' },
      fineweb: {
        minLineEndPunctuationRatio: -0.1,
        shortLineLength: 2.5,
        lineEndChars: ['.', '?!'],
        maxNewLineRatio: 'many',
        maxDupLineCharRatio: 'none',
      },
    };
    await assert.rejects(
      () => filterDocument(doc(ENGLISH), bad as never),
      (err: unknown) => {
        assert.ok(err instanceof InvalidSpec);
        assert.deepEqual(err.problems.map((p) => p.field).sort(), [
          'fineweb.lineEndChars.1',
          'fineweb.maxDupLineCharRatio',
          'fineweb.maxNewLineRatio',
          'fineweb.minLineEndPunctuationRatio',
          'fineweb.shortLineLength',
          'language.languages.0',
          'language.minScore',
          'language.script',
        ]);
        return true;
      },
    );
    await assert.rejects(() => filterDocument(doc(ENGLISH), { language: { languages: [] } }), InvalidSpec);
  });
});
