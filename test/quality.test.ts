import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { Document } from '../lib/document';
import { sampleCorpus } from '../lib/collect';
import { QualitySpec, QualityStats, filterDocument, type FilterResult, type QualitySpecInput } from '../lib/quality';
import { duplicateNGramCharCount, topNGramCharCount } from '../lib/quality/gopher-repetition';
import { countSentences, wordTokens } from '../lib/quality/text-units';
import {
  SPACY_RULES,
  isPythonSpace,
  spacySentencesAndWords,
  spacyTokens,
  spacyWords,
} from '../lib/quality/spacy-tokenizer';
import english from '../lib/quality/spacy-en.json';
import { FNV_START, SubstringTable, fnvStep } from '../lib/common/substring-table';
import { InvalidSpec } from '../lib/contracts/invalid-spec';

const doc = (text: string): Document => ({
  id: 'test',
  text,
  source: 'test',
  added: '2025-01-02T03:04:05.000Z',
  metadata: {},
});

/** Every family off (each section turns its own on). */
const NONE = { language: false, gopherRepetition: false, gopherQuality: false, c4: false, fineweb: false } as const;
/** Only the Gopher quality rules. */
const QUALITY_ONLY: QualitySpecInput = { ...NONE, gopherQuality: {} };
/** Only C4. */
const C4_ONLY: QualitySpecInput = { ...NONE, c4: {} };
const NO_NGRAMS = {
  topNGramCharFrac: { '2': null, '3': null, '4': null },
  dupNGramCharFrac: { '5': null, '6': null, '7': null, '8': null, '9': null, '10': null },
};
/** Only Gopher repetition's line and paragraph rules. */
const LINES_ONLY: QualitySpecInput = { ...NONE, gopherRepetition: NO_NGRAMS };

function rule(result: FilterResult): string {
  return result.kept ? 'kept' : result.rule;
}

/** Asserts the text passes, and the text one step past the threshold breaks `expected`. */
async function boundary(spec: QualitySpecInput, atLimit: string, pastLimit: string, expected: string): Promise<void> {
  const ok = await filterDocument(doc(atLimit), spec);
  assert.equal(rule(ok), 'kept', `at the threshold: ${ok.kept ? '' : `${ok.rule}: ${ok.detail}`}`);
  assert.equal(rule(await filterDocument(doc(pastLimit), spec)), expected);
}

/** `n` characters of distinct 4-letter-ish words separated by spaces (no word repeats, no stop words). */
function filler(n: number, tag = 'k'): string {
  const words: string[] = [];
  let length = -1;
  for (let i = 0; length + 5 <= n; i++) {
    words.push(`${tag}${i.toString(36).padStart(3, 'q')}`);
    length += 5;
  }
  let text = words.join(' ');
  if (text.length < n) text += 'x'.repeat(n - text.length);
  return text;
}

const repeatWords = (word: string, n: number) => Array.from({ length: n }, () => word).join(' ');

describe('quality spec', () => {
  it("defaults to datatrove's published thresholds", () => {
    const spec = QualitySpec.parse({});
    assert.ok(spec.gopherQuality !== false && spec.gopherRepetition !== false && spec.c4 !== false);
    assert.deepEqual(
      [spec.gopherQuality.minWords, spec.gopherQuality.maxWords, spec.gopherQuality.minAvgWordLength],
      [50, 100_000, 3],
    );
    assert.deepEqual([spec.gopherQuality.maxSymbolWordRatio, spec.gopherQuality.maxBulletLinesRatio], [0.1, 0.9]);
    assert.deepEqual(
      [
        spec.gopherQuality.maxEllipsisLinesRatio,
        spec.gopherQuality.minAlphaWordsRatio,
        spec.gopherQuality.minStopWords,
      ],
      [0.3, 0.8, 2],
    );
    assert.deepEqual(spec.gopherQuality.stopWords, ['the', 'be', 'to', 'of', 'and', 'that', 'have', 'with']);
    assert.deepEqual([spec.gopherRepetition.dupLineFrac, spec.gopherRepetition.dupParaFrac], [0.3, 0.3]);
    assert.deepEqual([spec.gopherRepetition.dupLineCharFrac, spec.gopherRepetition.dupParaCharFrac], [0.2, 0.2]);
    assert.deepEqual(spec.gopherRepetition.topNGramCharFrac, { '2': 0.2, '3': 0.18, '4': 0.16 });
    assert.deepEqual(spec.gopherRepetition.dupNGramCharFrac, {
      '5': 0.15,
      '6': 0.14,
      '7': 0.13,
      '8': 0.12,
      '9': 0.11,
      '10': 0.1,
    });
    assert.deepEqual([spec.c4.minSentences, spec.c4.minWordsPerLine, spec.c4.maxWordLength], [5, 3, 1000]);
  });

  it('turns a filter family off with false and one rule off with null', async () => {
    const short = doc('Too short');
    assert.equal(rule(await filterDocument(short, QUALITY_ONLY)), 'gopher_quality.min_words');
    assert.equal(rule(await filterDocument(short, NONE)), 'kept');
    const spec = { ...NONE, gopherQuality: { minWords: null } } as const;
    assert.equal(rule(await filterDocument(short, spec)), 'gopher_quality.stop_words');
  });

  it('rejects a bad spec naming every bad field', async () => {
    await assert.rejects(
      () => filterDocument(doc('x'), { minChars: -1, gopherQuality: { minWords: 'many' } } as never),
      (err: unknown) =>
        err instanceof InvalidSpec &&
        err.problems.some((p) => p.field === 'minChars') &&
        err.problems.some((p) => p.field === 'gopherQuality.minWords'),
    );
  });
});

describe('good prose', () => {
  it('keeps the opening chapter of Moby-Dick under the default thresholds', async () => {
    const chapter = sampleCorpus('moby-dick').documents.find((d) => d.id === 'moby-dick/chapter-001')!;
    const result = await filterDocument(doc(chapter.text));
    assert.ok(result.kept, result.kept ? '' : `${result.rule}: ${result.detail}`);
    assert.match(result.doc.text, /^CHAPTER 1\. Loomings\.\nCall me Ishmael\./);
    assert.doesNotMatch(result.doc.text, /\n\n/, 'kept lines are rejoined with single newlines');
  });

  it('keeps most of the sample corpus; what it drops, it drops by name', async () => {
    const stats = new QualityStats();
    for (const d of sampleCorpus('moby-dick').documents) stats.add(await filterDocument(doc(d.text)));
    assert.equal(stats.documents, 139);
    assert.ok(stats.kept >= 110, `kept ${stats.kept}`);
    for (const name of Object.keys(stats.dropped))
      assert.match(name, /^(language|gopher_quality|gopher_repetition|c4|fineweb)\./);
  });
});

describe('length bounds', () => {
  it('drops documents over maxChars', async () => {
    await boundary({ ...C4_ONLY, c4: false, maxChars: 100 }, 'a'.repeat(100), 'a'.repeat(101), 'length.max_chars');
  });

  it('drops documents under minChars', async () => {
    await boundary({ ...C4_ONLY, c4: false, minChars: 10 }, 'a'.repeat(10), 'a'.repeat(9), 'length.min_chars');
  });
});

describe('Gopher quality', () => {
  const words = (n: number) => `the and ${repeatWords('river', n - 2)}`;

  it('needs at least 50 words', async () => {
    await boundary(QUALITY_ONLY, words(50), words(49), 'gopher_quality.min_words');
  });

  it('allows at most 100,000 words', async () => {
    await boundary(QUALITY_ONLY, words(100_000), words(100_001), 'gopher_quality.max_words');
  });

  it('needs a mean word length of at least 3', async () => {
    // 50 three-letter words average exactly 3; one two-letter word brings it to 2.98.
    await boundary(
      QUALITY_ONLY,
      `the and ${repeatWords('sea', 48)}`,
      `the and ${repeatWords('sea', 47)} an`,
      'gopher_quality.min_avg_word_length',
    );
  });

  it('allows a mean word length of at most 10', async () => {
    // 6 + 46×10 + 2×17 = 500 characters over 50 words: exactly 10.
    const at = `the and ${repeatWords('lighthouse', 46)} ${'a'.repeat(17)} ${'b'.repeat(17)}`;
    await boundary(QUALITY_ONLY, at, `${at}c`, 'gopher_quality.max_avg_word_length');
  });

  it("allows at most one '#' per 10 tokens", async () => {
    // 10 of 100 tokens is 0.1; 11 of 101 is past it.
    await boundary(
      QUALITY_ONLY,
      `${words(90)} ${repeatWords('#', 10)}`,
      `${words(90)} ${repeatWords('#', 11)}`,
      'gopher_quality.hash_ratio',
    );
  });

  it('allows at most one ellipsis per 10 tokens', async () => {
    await boundary(
      QUALITY_ONLY,
      `${repeatWords('…', 10)} ${words(90)}`,
      `${repeatWords('…', 11)} ${words(90)}`,
      'gopher_quality.ellipsis_ratio',
    );
  });

  it('allows at most 90% of lines to start with a bullet', async () => {
    const line = (bullet: boolean) => `${bullet ? '- ' : ''}the river and the sea flow on for ever more`;
    const lines = (bullets: number) => Array.from({ length: 10 }, (_, i) => line(i < bullets)).join('\n');
    await boundary(QUALITY_ONLY, lines(9), lines(10), 'gopher_quality.bullet_lines');
  });

  it('allows at most 30% of lines to end with an ellipsis', async () => {
    const line = (ellipsis: boolean) => `the river and the sea flow on for ever more${ellipsis ? ' …' : ''}`;
    const lines = (n: number) => Array.from({ length: 10 }, (_, i) => line(i < n)).join('\n');
    await boundary(QUALITY_ONLY, lines(3), lines(4), 'gopher_quality.ellipsis_lines');
  });

  it('needs 80% of tokens to contain a letter', async () => {
    // Numbers are words (not symbols) without letters: 80 of 100 passes, 79 of 100 does not.
    const mix = (alpha: number) => `${words(alpha)} ${repeatWords('4242', 100 - alpha)}`;
    await boundary(QUALITY_ONLY, mix(80), mix(79), 'gopher_quality.alpha_words');
  });

  it('needs two stop words, matched case-sensitively', async () => {
    const base = repeatWords('river', 60);
    await boundary(QUALITY_ONLY, `the ${base} of`, `The ${base} of`, 'gopher_quality.stop_words');
    assert.equal(
      rule(await filterDocument(doc(`the ${base} the`), QUALITY_ONLY)),
      'gopher_quality.stop_words',
      'distinct stop words count, as datatrove counts them',
    );
  });
});

describe('Gopher repetition', () => {
  it('drops empty text, as datatrove does', async () => {
    assert.equal(rule(await filterDocument(doc(''), LINES_ONLY)), 'gopher_repetition.empty');
  });

  it('allows at most 30% duplicate paragraphs', async () => {
    // 'again' once plus 3 repeats among 10 paragraphs: 3/10; with 4 repeats: 4/10.
    const build = (repeats: number) =>
      [...Array.from({ length: 9 - repeats }, (_, i) => filler(60, `p${i}`)), ...Array(repeats + 1).fill('again')].join(
        '\n\n',
      );
    await boundary(LINES_ONLY, build(3), build(4), 'gopher_repetition.dup_para_frac');
  });

  it('allows at most 20% of characters in duplicate paragraphs', async () => {
    // X X Y Z with |X| = 20: 20 duplicate characters of 100, then of 99.
    const x = filler(20, 'x');
    const text = (z: number) => [x, x, filler(27, 'y'), filler(z, 'z')].join('\n\n');
    assert.equal(text(27).length, 100);
    await boundary(LINES_ONLY, text(27), text(26), 'gopher_repetition.dup_para_char_frac');
  });

  it('allows at most 30% duplicate lines', async () => {
    const build = (repeats: number) =>
      [...Array.from({ length: 9 - repeats }, (_, i) => filler(60, `l${i}`)), ...Array(repeats + 1).fill('again')].join(
        '\n',
      );
    await boundary(LINES_ONLY, build(3), build(4), 'gopher_repetition.dup_line_frac');
  });

  it('allows at most 20% of characters in duplicate lines', async () => {
    const x = filler(20, 'x');
    const text = (z: number) => [x, x, filler(28, 'y'), filler(z, 'z')].join('\n');
    assert.equal(text(29).length, 100);
    await boundary(LINES_ONLY, text(29), text(28), 'gopher_repetition.dup_line_char_frac');
  });

  it('allows the top 2-gram to cover at most 20% of characters', async () => {
    // 'aa bb' (5 characters) 4 times in 100 characters is 0.2; in 99 it is past.
    const spec = { ...LINES_ONLY, gopherRepetition: { ...NO_NGRAMS, topNGramCharFrac: { '2': 0.2 } } };
    const text = (n: number) => `aa bb u01 aa bb u02 aa bb u03 aa bb u04 ${filler(n - 40)}`;
    assert.equal(text(100).length, 100);
    await boundary(spec, text(100), text(99), 'gopher_repetition.top_2_gram');
  });

  it('allows repeated 5-grams to cover at most 15% of characters', async () => {
    // The repeat of 'aaa bbb ccc ddd eee' counts its words without spaces: 15 characters of 100, then of 99.
    const spec = { ...LINES_ONLY, gopherRepetition: { ...NO_NGRAMS, dupNGramCharFrac: { '5': 0.15 } } };
    const five = 'aaa bbb ccc ddd eee';
    const text = (n: number) => `${five} ${five} ${filler(n - 40)}`;
    assert.equal(text(100).length, 100);
    await boundary(spec, text(100), text(99), 'gopher_repetition.dup_5_gram');
  });

  it('merges n-gram overrides over the defaults', async () => {
    const spec = QualitySpec.parse({ gopherRepetition: { topNGramCharFrac: { '2': 0.5 } } });
    assert.ok(spec.gopherRepetition !== false);
    const text = `aa bb u01 aa bb u02 aa bb u03 aa bb u04 ${filler(60)}`; // 2-gram at 0.2, 3-grams fine
    assert.equal(
      rule(await filterDocument(doc(text), { ...spec, ...NONE, gopherRepetition: spec.gopherRepetition })),
      'kept',
    );
  });

  it('counts n-grams exactly like joining the words (property, with word boundaries that collide)', async () => {
    // A two-letter alphabet makes 'ab'+'a' and 'a'+'ba' style coincidences common.
    const token = fc.stringMatching(/^[ab]{1,3}$/);
    fc.assert(
      fc.property(fc.array(token, { maxLength: 60 }), fc.integer({ min: 2, max: 10 }), (tokens, n) => {
        assert.equal(topNGramCharCount(tokens, n), naiveTop(tokens, n));
        assert.equal(duplicateNGramCharCount(tokens, n), naiveDuplicates(tokens, n));
      }),
      { numRuns: 300 },
    );
  });

  it('counts n-grams exactly like joining the words on real prose', async () => {
    for (const d of sampleCorpus('moby-dick').documents.slice(3, 13)) {
      const tokens = wordTokens(d.text);
      for (const n of [2, 3, 4]) assert.equal(topNGramCharCount(tokens, n), naiveTop(tokens, n));
      for (const n of [5, 6, 7, 8, 9, 10]) assert.equal(duplicateNGramCharCount(tokens, n), naiveDuplicates(tokens, n));
    }
  });
});

/** datatrove's definitions, written the slow and obvious way. */
function naiveTop(words: string[], n: number): number | undefined {
  if (words.length < n) return undefined;
  const counts = new Map<string, number>();
  for (let i = 0; i + n <= words.length; i++) {
    const gram = words.slice(i, i + n).join(' ');
    counts.set(gram, (counts.get(gram) ?? 0) + 1);
  }
  let best = '';
  let bestCount = 0;
  for (const [gram, c] of counts) if (c > bestCount) [best, bestCount] = [gram, c];
  return [...best].length * bestCount;
}

function naiveDuplicates(words: string[], n: number): number {
  const seen = new Set<string>();
  let repeated = 0;
  let i = 0;
  while (i < words.length - n + 1) {
    const gram = words.slice(i, i + n).join('');
    if (seen.has(gram)) {
      repeated += [...gram].length;
      i += n;
    } else {
      seen.add(gram);
      i++;
    }
  }
  return repeated;
}

describe('C4', () => {
  const sentence = (i: number) => `The tide came in for the ${i}th time that day.`;
  const good = (n: number) => Array.from({ length: n }, (_, i) => sentence(i + 1)).join('\n');

  it('needs at least 5 sentences left after line filtering', async () => {
    await boundary(C4_ONLY, good(5), good(4), 'c4.too_few_sentences');
  });

  it('drops lines without terminal punctuation, ending in an ellipsis, or under 3 words, and counts them', async () => {
    const text = [good(5), 'A heading without punctuation', 'Trailing off...', 'Too short.', 'Just three words.'].join(
      '\n',
    );
    const result = await filterDocument(doc(text), C4_ONLY);
    assert.ok(result.kept);
    assert.equal(result.doc.text, `${good(5)}\nJust three words.`);
    assert.deepEqual(result.c4?.linesRemoved, { no_terminal_punct: 2, too_few_words: 1 });
  });

  it('accepts a closing quote as terminal punctuation', async () => {
    const result = await filterDocument(doc(`${good(5)}\nShe said "it will rain tomorrow."`), C4_ONLY);
    assert.ok(result.kept);
    assert.match(result.doc.text, /tomorrow\."$/);
  });

  it('drops lines with a word over 1,000 characters', async () => {
    const long = (n: number) => `${good(5)}\nA word ${'w'.repeat(n)} here.`;
    const kept = await filterDocument(doc(long(1000)), C4_ONLY);
    assert.ok(kept.kept);
    assert.equal(kept.doc.text.split('\n').length, 6);
    const dropped = await filterDocument(doc(long(1001)), C4_ONLY);
    assert.ok(dropped.kept);
    assert.equal(dropped.doc.text, good(5));
    assert.deepEqual(dropped.c4?.linesRemoved, { too_long_word: 1 });
  });

  it('drops lines mentioning javascript or cookie and privacy policies', async () => {
    const text = [
      good(5),
      'Please enable JavaScript to view this page.',
      'This site uses cookies to improve your experience.',
      'Read our Privacy Policy before you continue.',
    ].join('\n');
    const result = await filterDocument(doc(text), C4_ONLY);
    assert.ok(result.kept);
    assert.equal(result.doc.text, good(5));
    assert.deepEqual(result.c4?.linesRemoved, { javascript: 1, policy: 2 });
  });

  it('strips citation markers like [1], [edit] and [citation needed]', async () => {
    const text = `${good(4)}\nWhales sing[1] in the deep[23] ocean.[citation needed]\nHistory[edit] of the whaling towns is long.`;
    const result = await filterDocument(doc(text), C4_ONLY);
    assert.ok(result.kept);
    assert.match(result.doc.text, /\nWhales sing in the deep ocean\.\nHistory of the whaling towns is long\.$/);
    assert.equal(result.c4?.citationsRemoved, 4);
  });

  it('drops the whole document on "lorem ipsum"', async () => {
    const result = await filterDocument(doc(`${good(5)}\nLorem ipsum dolor sit amet.`), C4_ONLY);
    assert.deepEqual(result.kept ? 'kept' : [result.rule, result.detail], [
      'c4.lorem_ipsum',
      '"lorem ipsum" in: Lorem ipsum dolor sit amet.',
    ]);
  });

  it("drops the whole document on a '{'", async () => {
    assert.equal(
      rule(await filterDocument(doc(`${good(5)}\nThe config is { "a": 1 } here.`), C4_ONLY)),
      'c4.curly_bracket',
    );
  });
});

describe('words and sentences', () => {
  // Expected values are what datatrove 0.10.1's split_into_words / split_into_sentences (spaCy 3.8) return.
  it("cuts words as spaCy's English tokenizer does: affixes, infixes, special cases, URLs", () => {
    const cases: Array<[string, string[]]> = [
      [
        "Don't stop (e.g. U.S.A.) :) hello-world... said he.\"  Mr. Smith's dog",
        [
          'Do',
          "n't",
          'stop',
          '(',
          'e.g.',
          'U.S.A.',
          ')',
          ':)',
          'hello',
          '-',
          'world',
          '...',
          'said',
          'he',
          '.',
          '"',
          'Mr.',
          'Smith',
          "'s",
          'dog',
        ],
      ],
      [
        'Visit https://example.com/a?b=1, or mail me@x.org!',
        ['Visit', 'https://example.com/a?b=1', ',', 'or', 'mail', 'me@x.org', '!'],
      ],
      ["console.log('hello'.green); // outputs", ["console.log('hello'.green", ')', ';', '//', 'outputs']],
      ["It costs $3.50—cheap—isn't it?", ['It', 'costs', '$', '3.50', '—', 'cheap', '—', "isn't", 'it', '?']],
      ['(gzip):**210 kB**', ['(', 'gzip):**210', 'kB', '*', '*']],
      [
        'Call me Ishmael. Some years ago—never mind how long precisely—having little money...',
        [
          'Call',
          'me',
          'Ishmael',
          '.',
          'Some',
          'years',
          'ago',
          '—',
          'never',
          'mind',
          'how',
          'long',
          'precisely',
          '—',
          'having',
          'little',
          'money',
          '...',
        ],
      ],
    ];
    for (const [text, tokens] of cases) assert.deepEqual(wordTokens(text), tokens, text);
  });

  it("cuts chunks at Python's whitespace: JavaScript's \\s without U+FEFF, with U+001C–U+001F and U+0085", () => {
    for (let c = 0; c <= 0xffff; c++) {
      const unit = String.fromCharCode(c);
      const python = (/\s/.test(unit) && c !== 0xfeff) || (c >= 0x1c && c <= 0x1f) || c === 0x85;
      assert.equal(isPythonSpace(c), python, `U+${c.toString(16)}`);
    }
  });

  it('tokenizes the same once its table of chunks seen has been emptied and filled again', () => {
    const text = 'Call me Ishmael. Some years ago—never mind how long precisely—having little money... (U.S.A.) "No!"';
    const before = spacyWords(text);
    // 300,000 distinct chunks, more than the table holds; each chunk's tokens are those it has alone.
    const chunks = Array.from(
      { length: 300_000 },
      (_, i) => `${i % 3 === 0 ? '"' : ''}w${i.toString(36)}${i % 2 ? ',' : '.'}`,
    );
    const all = spacyWords(chunks.join(' '));
    assert.deepEqual(
      all,
      chunks.flatMap((c) => spacyWords(c)),
    );
    assert.deepEqual(spacyWords('"w0. w1, "w3.'), ['"', 'w0', '.', 'w1', ',', '"', 'w3', '.']);
    assert.deepEqual(spacyWords(text), before);
  });

  it('looks substrings up as a Map of their text does, across clears', () => {
    const hash = (text: string, start: number, end: number) => {
      let h = FNV_START;
      for (let i = start; i < end; i++) h = fnvStep(h, text.charCodeAt(i));
      return h;
    };
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ maxLength: 6, unit: 'binary' }), fc.nat(3)), { maxLength: 300 }),
        (ops) => {
          const table = new SubstringTable(16, 40);
          const model = new Map<string, number>();
          ops.forEach(([word, pad], value) => {
            const text = '·'.repeat(pad) + word + '·';
            const start = pad;
            const end = pad + word.length;
            const h = hash(text, start, end);
            assert.equal(table.get(text, start, end, h), model.get(word) ?? -1);
            if (model.has(word)) return;
            if (!table.roomFor(word.length)) {
              table.clear();
              model.clear();
            }
            table.set(text, start, end, h, value);
            model.set(word, value);
            assert.equal(table.size, model.size);
          });
        },
      ),
      { numRuns: 500, seed: 18 },
    );
  });

  it('finds no affix, infix or URL in letters alone, the shortcut the tokenizer takes', () => {
    const { prefix, suffix, infix, url } = SPACY_RULES;
    for (let c = 0; c < 0x110000; c++) {
      if (c >= 0xd800 && c < 0xe000) continue;
      const letter = String.fromCodePoint(c);
      if (!/^\p{L}$/u.test(letter)) continue;
      for (const text of [letter, `a${letter}b`]) {
        const hit = prefix.test(text) || suffix.test(text) || url.test(text) || [...text.matchAll(infix)].length > 0;
        assert.ok(!hit, `U+${c.toString(16)}`);
      }
    }
  });

  it("counts sentences as spaCy's sentencizer does", () => {
    const cases: Array<[string, number]> = [
      ['Hello there. How are you? Fine!', 3],
      ['He said "Stop." Then left.', 2],
      ['Mr. Smith went to Washington. He stayed.', 2],
      ['Wait... what?! Yes.', 2],
    ];
    for (const [text, n] of cases) assert.equal(countSentences(text), n, text);
  });

  it("counts sentences as the sentencizer's rule does over spaCy's tokens, whatever the chunks hold", () => {
    // The rule, token by token: a new sentence at the first token after an end mark that is neither an end mark nor
    // punctuation. The tokenizer counts from each chunk's summary instead; long chunks (not held) and chunks with
    // many sentence ends take its other paths.
    const ends = new Set(english.sentenceEnds);
    const byRule = (text: string) => {
      const tokens = spacyTokens(text);
      let sentences = 1;
      let pending = false;
      for (const token of tokens) {
        if (ends.has(token)) pending = true;
        else if (pending && !/^\p{P}*$/u.test(token)) {
          sentences++;
          pending = false;
        }
      }
      return tokens.length === 0 ? 0 : sentences;
    };
    const piece = fc.constantFrom(
      'a',
      'Mr',
      '.',
      '!',
      '?',
      '"',
      "'",
      '...',
      ',',
      '(',
      ')',
      '—',
      '1',
      ' ',
      '  ',
      '\n',
      'é',
    );
    const text = fc.oneof(
      fc.array(piece, { maxLength: 60 }).map((p) => p.join('')),
      fc
        .tuple(fc.constantFrom('a.', '.a', 'a!', '!"a', 'a.B'), fc.integer({ min: 60, max: 200 }))
        .map(([p, n]) => p.repeat(n)),
    );
    fc.assert(
      fc.property(text, (t) => {
        assert.equal(spacySentencesAndWords(t).sentences, byRule(t), JSON.stringify(t));
        assert.equal(spacySentencesAndWords(t).words, spacyWords(t).length);
      }),
      { numRuns: 1500, seed: 18 },
    );
  });
});

describe('quality stats', () => {
  it('counts kept and dropped per rule and C4 lines, and merges across partitions', async () => {
    const a = new QualityStats();
    a.add(await filterDocument(doc('Too short'), QUALITY_ONLY));
    const b = new QualityStats();
    const text = ['The sea was calm and grey that morning.', 'x', 'y'].join('\n');
    b.add(
      await filterDocument(
        doc(`${text}\n${Array.from({ length: 5 }, () => 'One more full sentence here.').join('\n')}`),
        C4_ONLY,
      ),
    );
    const merged = QualityStats.from(a.toJSON()).merge(b.toJSON());
    assert.deepEqual(merged.toJSON(), {
      documents: 2,
      kept: 1,
      dropped: { 'gopher_quality.min_words': 1 },
      c4LinesRemoved: { no_terminal_punct: 2 },
      c4CitationsRemoved: 0,
    });
    assert.equal(merged.droppedTotal, 1);
  });
});
