import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Document } from '../lib/document';
import { filterDocument, type FilterResult, type FineWebSpec, type QualitySpecInput } from '../lib/quality';

const doc = (text: string): Document => ({
  id: 'test',
  text,
  source: 'test',
  added: '2025-01-02T03:04:05.000Z',
  metadata: {},
});

const NONE = { language: false, gopherRepetition: false, gopherQuality: false, c4: false, fineweb: false } as const;
const RULES_OFF = {
  minLineEndPunctuationRatio: null,
  maxShortLineRatio: null,
  maxDupLineCharRatio: null,
  maxNewLineRatio: null,
} as const;
/** FineWeb's rules alone: all of them, or one with the others off. */
const FINEWEB: QualitySpecInput = { ...NONE, fineweb: {} };
const only = (fineweb: Partial<FineWebSpec>): QualitySpecInput => ({ ...NONE, fineweb: { ...RULES_OFF, ...fineweb } });

const rule = (result: FilterResult) => (result.kept ? 'kept' : result.rule);

async function boundary(spec: QualitySpecInput, atLimit: string, pastLimit: string, expected: string): Promise<void> {
  const ok = await filterDocument(doc(atLimit), spec);
  assert.equal(rule(ok), 'kept', `at the threshold: ${ok.kept ? '' : `${ok.rule}: ${ok.detail}`}`);
  assert.equal(rule(await filterDocument(doc(pastLimit), spec)), expected);
}

/** A distinct line of eight words (about 60 characters), without final punctuation. */
const line = (i: number) => `line ${i} tells of the whale and the sea at dawn`;

describe('FineWeb quality', () => {
  it('needs 12% of non-blank lines to end in terminal punctuation', async () => {
    // 3 of 25 is 0.12; 3 of 26 is below it.
    const text = (lines: number) =>
      Array.from({ length: lines }, (_, i) => (i < 3 ? `${line(i)}.` : line(i))).join('\n');
    await boundary(only({ minLineEndPunctuationRatio: 0.12 }), text(25), text(26), 'fineweb.line_punct_ratio');
  });

  it('counts terminal punctuation of every script as datatrove lists it, on the unstripped line', async () => {
    const spec = only({ minLineEndPunctuationRatio: 1 });
    for (const end of ['.', '?', '!', '。', '！', '؟', '।', '።', '\u{11047}']) {
      assert.equal(rule(await filterDocument(doc(`${line(1)}${end}\n${line(2)}.`), spec)), 'kept', end);
    }
    for (const end of ['…', '"', "'", ':', ';', '. ', '.\r']) {
      const result = await filterDocument(doc(`${line(1)}${end}\n${line(2)}.`), spec);
      assert.equal(rule(result), 'fineweb.line_punct_ratio', JSON.stringify(end));
    }
  });

  it('lets a document with no punctuated line pass with ignoreZeroLineEndPunctuation', async () => {
    const text = [line(1), line(2), line(3)].join('\n');
    assert.equal(rule(await filterDocument(doc(text), FINEWEB)), 'fineweb.line_punct_ratio');
    const spec = only({ minLineEndPunctuationRatio: 0.12, ignoreZeroLineEndPunctuation: true });
    assert.equal(rule(await filterDocument(doc(text), spec)), 'kept');
    const some = Array.from({ length: 10 }, (_, i) => (i === 0 ? `${line(i)}.` : line(i))).join('\n');
    assert.equal(rule(await filterDocument(doc(some), spec)), 'fineweb.line_punct_ratio', '1 of 10 is not zero');
  });

  it('takes the line-ending characters from lineEndChars when given', async () => {
    const spec = only({ minLineEndPunctuationRatio: 0.5, lineEndChars: ['…', '𝄞'] });
    assert.equal(rule(await filterDocument(doc(`${line(1)}…\n${line(2)}𝄞`), spec)), 'kept');
    assert.equal(rule(await filterDocument(doc(`${line(1)}.\n${line(2)}!`), spec)), 'fineweb.line_punct_ratio');
  });

  it('allows at most 67% of lines with 30 characters or fewer', async () => {
    // A 30-character line is short, a 31-character one is not; 67 short lines of 100 pass, 68 do not.
    const short = (i: number) => `Short line ${i} here`.padEnd(29, '!') + '.';
    const long = (i: number) => `Long line ${i} here`.padEnd(30, '!') + '.';
    assert.deepEqual([short(1).length, long(1).length], [30, 31]);
    const text = (shorts: number) =>
      Array.from({ length: 100 }, (_, i) => (i < shorts ? short(i) : long(i))).join('\n');
    await boundary(only({ maxShortLineRatio: 0.67 }), text(67), text(68), 'fineweb.short_line_ratio');
  });

  it('allows at most 1% of characters (newlines not counted) in duplicate lines', async () => {
    // One repeat of a 40-character line: 40 of 4,000 characters is 0.01; of 3,999 it is past.
    const repeated = 'This very line appears exactly twice!!!.';
    assert.equal(repeated.length, 40);
    const text = (chars: number) => {
      const lines = [repeated, repeated];
      let length = 80;
      for (let i = 0; length + 60 < chars; i++) {
        lines.push(`${line(i)}`.padEnd(59, '~') + '.');
        length += 60;
      }
      lines.push('x'.repeat(chars - length));
      return lines.join('\n');
    };
    assert.equal(text(4000).replace(/\n/g, '').length, 4000);
    await boundary(only({ maxDupLineCharRatio: 0.01 }), text(4000), text(3999), 'fineweb.char_dup_ratio');
  });

  it('allows at most 0.3 newlines per word', async () => {
    // 3 newlines over 10 tokens is 0.3; over 9 tokens it is past. Punctuation tokens count, as spaCy's do.
    await boundary(
      only({ maxNewLineRatio: 0.3 }),
      'alpha, beta.\ngamma delta\nepsilon zeta\neta theta',
      'alpha beta.\ngamma delta\nepsilon zeta\neta theta',
      'fineweb.list_ratio',
    );
  });

  it('drops a document without a non-blank line as fineweb.empty', async () => {
    for (const text of ['', '\n\n', ' \n\u00a0\n\u3000']) {
      assert.equal(rule(await filterDocument(doc(text), FINEWEB)), 'fineweb.empty', JSON.stringify(text));
    }
    // U+FEFF is not whitespace to Python: the line counts (and ends without punctuation).
    assert.equal(rule(await filterDocument(doc('\uFEFF'), FINEWEB)), 'fineweb.line_punct_ratio');
  });

  it('judges the text C4 leaves, and runs last', async () => {
    const sentences = Array.from({ length: 6 }, (_, i) => `The tide came in for the ${i + 1}th time that day.`);
    const headings = Array.from({ length: 60 }, (_, i) => `A heading without punctuation number ${i}`);
    const text = [...sentences, ...headings].join('\n');
    assert.equal(rule(await filterDocument(doc(text), FINEWEB)), 'fineweb.line_punct_ratio');
    const result = await filterDocument(doc(text), { ...NONE, c4: {}, fineweb: {} });
    assert.ok(result.kept, result.kept ? '' : result.detail);
    assert.equal(result.doc.text, sentences.join('\n'));
  });

  it('is off with false, and one rule is off with null', async () => {
    const text = [line(1), line(2)].join('\n');
    assert.equal(rule(await filterDocument(doc(text), NONE)), 'kept');
    assert.equal(
      rule(await filterDocument(doc(text), { ...NONE, fineweb: { minLineEndPunctuationRatio: null } })),
      'kept',
    );
  });
});
