import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import * as fc from 'fast-check';
import PostalMime from 'postal-mime';
import { get_encoding, type Tiktoken } from 'tiktoken';
import { sampleCorpus } from '../lib/collect';
import { packageReadmes } from '../lib/dedup/evaluation';
import { encodeJsonlGz, type Document } from '../lib/document';
import { tokenizeAndShard } from '../lib/pipeline/shard-stages';
import { FsStore, TieredStore, type ArtifactRef } from '../lib/storage';
import { DocumentTokenizer, TOKENIZER_ENCODINGS, TokenizerPool, type TokenizerEncoding } from '../lib/tokenize';
import { BAIL } from '../lib/tokenize/ascii-split';
import { splitPattern, TIKTOKEN_PATTERNS } from '../lib/tokenize/split-pattern';
import { PIECE_SCANNERS } from '../lib/tokenize/tokenizer';

/**
 * The pipeline's tokenizer (Flywheel's byte-pair encoder over gpt-tokenizer's rank tables, tiktoken's patterns) is held to tiktoken's ids, the ids the
 * pipeline wrote before it, on every encoding the spec offers.
 */
const reference = new Map<TokenizerEncoding, Tiktoken>();
function tiktokenIds(encoding: TokenizerEncoding, text: string): number[] {
  let enc = reference.get(encoding);
  if (!enc) reference.set(encoding, (enc = get_encoding(encoding)));
  return Array.from(enc.encode_ordinary(text));
}

function assertSameIds(tokenizer: DocumentTokenizer, text: string): void {
  const ids = tokenizer.encodeDocument(text);
  const expected = tiktokenIds(tokenizer.encoding, text);
  if (ids.length !== expected.length + 1 || expected.some((id, i) => ids[i] !== id))
    assert.fail(`${tokenizer.encoding} ids differ from tiktoken's for ${JSON.stringify(text.slice(0, 300))}`);
  assert.equal(ids[ids.length - 1], tokenizer.eot);
}

const SPECIAL_TOKENS = [
  '<|endoftext|>',
  '<|fim_prefix|>',
  '<|fim_middle|>',
  '<|fim_suffix|>',
  '<|endofprompt|>',
  '<|im_start|>',
  '<|im_end|>',
  '<|im_sep|>',
];

/**
 * Fragments where tokenizers part ways: contractions in every case (and the long s and Kelvin sign, which Rust's
 * case-insensitive match folds), every kind of white space (U+0085 and U+FEFF among them), digits of other scripts,
 * letters of each case class, combining marks, emoji, special-token text and lone surrogates.
 */
const FRAGMENTS = [
  ..."'s 'S '\u017f 't 'T 're 'RE 'rE 've 'Ve 'm 'M 'll 'LL 'lL 'd 'D 'K '\u212a ’s don't I'M \u017f \u212a".split(' '),
  ...[' ', '  ', '\t', '\n', '\r\n', '\r', '\n\n', ' \n', '\v', '\f', '\u0085', '\u00a0', '\u1680', '\u2000'],
  ...['\u200a', '\u2028', '\u2029', '\u202f', '\u205f', '\u3000', '\ufeff', '\u200b', '\u180e', '\u00ad'],
  ...'0 7 123 12345 ٣ ४ ½ ² Ⅻ 𝟘 word Word WORD wOrD Ǆ ǅ ǆ ʰ ª 東京 Москва Straße İ e\u0301 \u0301 ﬁ'.split(' '),
  ...'😀 👍🏽 🏳️‍🌈 \u{1F9FF} \u{E0061} \u{FE0F} . , !! ... / // $ @ # - — … ¿ © \\ " \' ` < |>'.split(' '),
  ...['\x00', '\x01', '\x7f', '\ufffd', '\ud800', '\udc00', '\udbff\udfff'],
  ...SPECIAL_TOKENS,
];
const trickyText = fc
  .array(fc.oneof(fc.constantFrom(...FRAGMENTS), fc.string({ unit: 'binary', maxLength: 4 })), { maxLength: 60 })
  .map((parts) => parts.join(''));

/**
 * Real mail (the messages CPython's email tests ship: headers, MIME parts, quoted-printable and base64 bodies,
 * several charsets), raw and as decoded text; and binary files read as UTF-8 with invalid bytes repaired to U+FFFD,
 * as collection does. Empty where no CPython test suite is installed.
 */
async function realMail(): Promise<string[]> {
  const found = spawnSync(
    'python3',
    ['-c', 'import os, test.test_email as t; print(os.path.join(os.path.dirname(t.__file__), "data"))'],
    { encoding: 'utf8' },
  );
  const dir = found.status === 0 ? found.stdout.trim() : '';
  if (!dir || !fs.existsSync(dir)) {
    console.error('[flywheel test] no CPython email test data here: real mail left out');
    return [];
  }
  const out: string[] = [];
  for (const name of fs.readdirSync(dir).sort()) {
    const bytes = fs.readFileSync(path.join(dir, name));
    out.push(new TextDecoder().decode(bytes));
    if (!name.startsWith('msg_')) continue;
    const message = await PostalMime.parse(bytes);
    out.push([message.subject ?? '', message.text ?? '', message.html ?? ''].join('\n\n'));
  }
  return out;
}

describe('the tokenizer gives tiktoken’s ids', () => {
  for (const encoding of TOKENIZER_ENCODINGS) {
    describe(encoding, () => {
      const tokenizer = new DocumentTokenizer(encoding);

      it('cuts text with tiktoken’s own pre-tokenization pattern', () => {
        const shipped = JSON.parse(fs.readFileSync(require.resolve(`tiktoken/encoders/${encoding}.json`), 'utf8')) as {
          pat_str: string;
        };
        assert.equal(TIKTOKEN_PATTERNS[encoding], shipped.pat_str);
      });

      it('has tiktoken’s bytes for every id, and no others', () => {
        // The ids tiktoken's shipped table and special tokens define; asking tiktoken for others breaks its instance.
        const shipped = JSON.parse(fs.readFileSync(require.resolve(`tiktoken/encoders/${encoding}.json`), 'utf8')) as {
          bpe_ranks: string;
          special_tokens: Record<string, number>;
        };
        const known = new Set([
          // Lines of "! <first id> <token base64> ...", ids running on from each line's first.
          ...shipped.bpe_ranks.split('\n').flatMap((line) => {
            const [, first, ...tokens] = line.split(' ');
            return tokens.map((_, i) => Number(first) + i);
          }),
          ...Object.values(shipped.special_tokens),
        ]);
        const tk = get_encoding(encoding);
        for (let id = 0; id < tokenizer.vocabSize; id++) {
          if (!known.has(id)) assert.throws(() => tokenizer.tokenBytes(id), RangeError, `id ${id}`);
          else assert.ok(Buffer.from(tokenizer.tokenBytes(id)).equals(tk.decode_single_token_bytes(id)), `id ${id}`);
        }
        tk.free();
      });

      it('encodes special-token text as plain text, with one end-of-text per document', () => {
        for (const special of SPECIAL_TOKENS) {
          const text = `before ${special} after${special}`;
          assertSameIds(tokenizer, text);
          const ids = tokenizer.encodeDocument(text);
          assert.equal(ids.filter((id) => id === tokenizer.eot).length, 1);
          assert.equal(tokenizer.decode(ids.subarray(0, -1)), text);
        }
      });

      it('agrees on generated text: contractions, white space, scripts, marks, lone surrogates', () => {
        fc.assert(
          fc.property(trickyText, (text) => assertSameIds(tokenizer, text)),
          { numRuns: 500 },
        );
      });

      it('agrees on invalid UTF-8 repaired to U+FFFD and on text with lone surrogates', () => {
        fc.assert(
          fc.property(fc.uint8Array({ maxLength: 200 }), fc.string({ unit: 'binary', maxLength: 100 }), (bytes, s) => {
            assertSameIds(tokenizer, new TextDecoder().decode(bytes));
            assertSameIds(tokenizer, s);
          }),
          { numRuns: 300 },
        );
      });

      it('finds each piece by hand where the pattern ends it, or leaves it to the pattern', () => {
        const scan = PIECE_SCANNERS[encoding];
        const sticky = new RegExp(splitPattern(TIKTOKEN_PATTERNS[encoding]).source, 'uy');
        let scanned = 0;
        const check = (text: string) => {
          for (let at = 0; at < text.length;) {
            sticky.lastIndex = at;
            assert.ok(sticky.test(text), `no piece at ${at}`);
            const got = scan(text, at);
            if (got !== BAIL) {
              scanned++;
              if (got !== sticky.lastIndex)
                assert.fail(
                  `${JSON.stringify(text.slice(at, sticky.lastIndex + 5))}: ${got - at} ≠ ${sticky.lastIndex - at}`,
                );
            }
            at = sticky.lastIndex;
          }
        };
        // The characters each rule turns on: cases, digits, every ASCII white space, apostrophes and contraction
        // letters, / (o200k), and non-ASCII letters and spaces next to them (ſ folds to s).
        const unit = fc.constantFrom(..."aZ9 '\n\r\t\x0b\x0c/.,!sStTrReEvVlLmMdD_(-\u00e9\u00a0\u2000\u017f".split(''));
        fc.assert(fc.property(fc.string({ unit, maxLength: 40 }), check), { numRuns: 20_000 });
        fc.assert(fc.property(fc.string({ unit: 'grapheme-ascii', maxLength: 40 }), check), { numRuns: 20_000 });
        for (const d of sampleCorpus('moby-dick').documents) check(d.text);
        assert.ok(scanned > 100_000);
      });

      it('agrees on pieces longer than its scratch space and past its caches’ turnover', () => {
        // Pieces of thousands of bytes (one long word, a run of symbols, of spaces, of emoji) grow the merge's
        // scratch; 100,000 distinct pieces turn the piece cache over and grow the pair table, after which
        // repeated pieces still get the same ids.
        const long = ['x'.repeat(5000), '#$'.repeat(3000), ' '.repeat(4000) + 'a', '😀'.repeat(1500), 'é'.repeat(2500)];
        for (const text of long) assertSameIds(tokenizer, text);
        const words = Array.from({ length: 100_000 }, (_, i) => `w${(i * 7919).toString(36)}q`);
        const many = words.join(' ');
        assertSameIds(tokenizer, many);
        assertSameIds(tokenizer, many.slice(0, 20_000));
        tokenizer.free();
        assertSameIds(tokenizer, many.slice(0, 20_000));
      });

      it('agrees on every code point, beside letters, digits, spaces and contractions', () => {
        // One text per block of code points; a block that differs is searched code point by code point.
        const contexts = (c: string) => `${c}'s x${c}'t ${c}x 1${c}1 a${c}A${c}${c}\n`;
        const blocks: [number, number][] = [];
        for (let cp = 0; cp < 0x40000; cp += 0x1000) blocks.push([cp, cp + 0x1000]);
        blocks.push([0xe0000, 0xe1000], [0xf0000, 0xf0100], [0x10ff00, 0x110000]);
        const differ: string[] = [];
        for (const [lo, hi] of blocks) {
          const chars: string[] = [];
          for (let cp = lo; cp < hi; cp++) if (cp < 0xd800 || cp > 0xdfff) chars.push(String.fromCodePoint(cp));
          const text = chars.map(contexts).join('');
          const ids = tokenizer.encodeDocument(text);
          const expected = tiktokenIds(encoding, text);
          if (ids.length === expected.length + 1 && expected.every((id, i) => ids[i] === id)) continue;
          for (const c of chars) {
            const one = contexts(c);
            const got = tokenizer.encodeDocument(one);
            const want = tiktokenIds(encoding, one);
            if (got.length !== want.length + 1 || want.some((id, i) => got[i] !== id))
              differ.push(`U+${c.codePointAt(0)!.toString(16).toUpperCase()}`);
          }
        }
        assert.deepEqual(differ, []);
      });

      it('agrees on real text: the sample corpus, the installed packages’ READMEs, real mail', async () => {
        const texts = [
          ...sampleCorpus('moby-dick').documents.map((d) => d.text),
          ...packageReadmes(path.join(__dirname, '..', 'node_modules')),
          ...(await realMail()),
        ];
        assert.ok(texts.length > 600);
        for (const text of texts) assertSameIds(tokenizer, text);
      });
    });
  }
});

describe('tokenizer threads', () => {
  it('load only the encodings they encode with, and tiktoken only for text with a code point newer than its tables', () => {
    const script = `
      const { DocumentTokenizer } = require('./lib/tokenize');
      const loaded = () => Object.keys(require.cache)
        .filter((f) => /gpt-tokenizer.cjs.bpeRanks|node_modules.tiktoken.tiktoken/.test(f))
        .map((f) => path.basename(f));
      const t = new DocumentTokenizer('gpt2');
      t.encodeDocument('plain text, and a byte-order mark \\ufeff inside');
      const before = loaded();
      t.encodeDocument('a letter of Unicode 17 \\u{1e6c0} inside');
      console.log(JSON.stringify({ before, after: loaded() }));`;
    const out = execFileSync(
      process.execPath,
      ['--require', 'tsx/cjs', '-e', `const path = require('path');${script}`],
      {
        cwd: path.join(__dirname, '..'),
        encoding: 'utf8',
      },
    );
    const { before, after } = JSON.parse(out.trim().split('\n').at(-1)!) as { before: string[]; after: string[] };
    assert.deepEqual(before, ['r50k_base.js']);
    assert.deepEqual(after.sort(), ['r50k_base.js', 'tiktoken.cjs', 'tiktoken_bg.cjs']);
  });
});

/** Stands in for the pool with tiktoken in-process: what tokenization wrote before gpt-tokenizer. */
class TiktokenPool extends TokenizerPool {
  override async encode(encoding: TokenizerEncoding, texts: string[]): Promise<Uint32Array[]> {
    const eot = new DocumentTokenizer(encoding).eot;
    return texts.map((text) => Uint32Array.from([...tiktokenIds(encoding, text), eot]));
  }
}

describe('shards', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-tokenize-'));
  const pool = new TokenizerPool({ threads: 2 });
  const tiktokenPool = new TiktokenPool({ threads: 1 });
  after(async () => {
    await pool.close();
    await tiktokenPool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const docs: Document[] = [
    ...sampleCorpus('moby-dick').documents.map((d) => d.text),
    'a byte-order mark \ufeff inside, a next line\u0085 and <|endoftext|> as text',
    'a lone surrogate \ud800 and trailing white space \n  ',
  ].map((text, i) => ({
    id: `doc-${i}`,
    text,
    source: 'sample',
    added: '2026-01-01T00:00:00.000Z',
    metadata: {},
  }));

  async function shards(name: string, encoding: TokenizerEncoding, via: TokenizerPool) {
    const store = new FsStore(path.join(dir, name));
    const tiered = new TieredStore({ hot: store, warm: store, cold: store });
    const partitions: ArtifactRef[] = [];
    for (let i = 0; i * 50 < docs.length; i++) {
      const uri = `warm://parts/part-${i}.jsonl.gz`;
      const put = await tiered.put(uri, encodeJsonlGz(docs.slice(i * 50, (i + 1) * 50)));
      partitions.push({ uri, sha256: put.sha256, bytes: put.bytes });
    }
    const result = await tokenizeAndShard({
      store: tiered,
      partitions,
      encoding,
      targetShardBytes: 256 * 1024,
      validationFraction: 0.1,
      outPrefix: 'warm://datasets/d/v1',
      folder: 'warm://runs/d',
      pool: via,
      batchDocuments: 16,
    });
    return [...result.splits.train.shards, ...result.splits.validation.shards].map((s) => `${s.sha256} ${s.bytes}`);
  }

  for (const encoding of TOKENIZER_ENCODINGS) {
    it(`are byte for byte those of tiktoken’s ids (${encoding})`, async () => {
      const ours = await shards(`${encoding}-pool`, encoding, pool);
      assert.ok(ours.length > 1);
      assert.deepEqual(ours, await shards(`${encoding}-tiktoken`, encoding, tiktokenPool));
    });
  }
});
