import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Worker } from 'node:worker_threads';
import type { Document } from '../lib/document';
import { sampleCorpus } from '../lib/collect';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import { QualitySpec, filterDocument, type FilterResult, type QualitySpecInput } from '../lib/quality';
import { languageModel } from '../lib/quality/language';
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
