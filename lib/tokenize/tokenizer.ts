import type { RawBytePairRanks } from 'gpt-tokenizer/cjs/BytePairEncodingCore';
import type { Tiktoken } from 'tiktoken';
import { cl100kScanner, gpt2Scanner, o200kScanner, type PieceScanner } from './ascii-split';
import { BytePairEncoder } from './bpe';
import type { TokenizerEncoding } from './encodings';
import { splitPattern, TIKTOKEN_PATTERNS } from './split-pattern';

/** Ids in use per encoding, special tokens included (tiktoken's published tables). */
const VOCAB_SIZES: Record<TokenizerEncoding, number> = {
  cl100k_base: 100277,
  o200k_base: 200019,
  p50k_base: 50281,
  r50k_base: 50257,
  gpt2: 50257,
};

const END_OF_TEXT = '<|endoftext|>';

/** tiktoken's special tokens per encoding; the pipeline only ever writes end-of-text, and never reads them in text. */
const SPECIAL_TOKENS: Record<TokenizerEncoding, Record<string, number>> = {
  cl100k_base: {
    [END_OF_TEXT]: 100257,
    '<|fim_prefix|>': 100258,
    '<|fim_middle|>': 100259,
    '<|fim_suffix|>': 100260,
    '<|endofprompt|>': 100276,
  },
  o200k_base: { [END_OF_TEXT]: 199999, '<|endofprompt|>': 200018 },
  p50k_base: { [END_OF_TEXT]: 50256 },
  r50k_base: { [END_OF_TEXT]: 50256 },
  gpt2: { [END_OF_TEXT]: 50256 },
};

/** Each encoding's pattern, by hand for ASCII text (`ascii-split.ts`). */
export const PIECE_SCANNERS: Record<TokenizerEncoding, PieceScanner> = {
  cl100k_base: cl100kScanner,
  o200k_base: o200kScanner,
  p50k_base: gpt2Scanner,
  r50k_base: gpt2Scanner,
  gpt2: gpt2Scanner,
};

/* eslint-disable @typescript-eslint/no-require-imports -- each table is megabytes: loaded when first used, not all */
const RANKS: Record<TokenizerEncoding, () => RawBytePairRanks> = {
  cl100k_base: () => require('gpt-tokenizer/cjs/bpeRanks/cl100k_base').default,
  o200k_base: () => require('gpt-tokenizer/cjs/bpeRanks/o200k_base').default,
  p50k_base: () => require('gpt-tokenizer/cjs/bpeRanks/p50k_base').default,
  r50k_base: () => require('gpt-tokenizer/cjs/bpeRanks/r50k_base').default,
  gpt2: () => require('gpt-tokenizer/cjs/bpeRanks/r50k_base').default,
};

/**
 * Code points Node's ICU (Unicode 17) takes for letters, marks or digits and tiktoken's Rust tables (Unicode 16) do
 * not, so pieces would be cut differently around them: text holding one goes to tiktoken too. The tokenize tests
 * search every code point anew, so an upgrade of Node or tiktoken that moves this set fails them.
 */
const UNICODE_17_ONLY =
  // eslint-disable-next-line no-misleading-character-class -- single code points (some are marks), no sequences
  /[\u{88f}\u{c5c}\u{cdc}\u{1acf}-\u{1add}\u{1ae0}-\u{1aeb}\u{a7ce}-\u{a7cf}\u{a7d2}\u{a7d4}\u{a7f1}\u{10940}-\u{10959}\u{10ec5}-\u{10ec7}\u{10efa}-\u{10efb}\u{11b60}-\u{11b67}\u{11db0}-\u{11ddb}\u{11de0}-\u{11de9}\u{16ea0}-\u{16eb8}\u{16ebb}-\u{16ed3}\u{16ff2}-\u{16ff6}\u{187f8}-\u{187ff}\u{18d09}-\u{18d1e}\u{18d80}-\u{18df2}\u{1e6c0}-\u{1e6de}\u{1e6e0}-\u{1e6f5}\u{1e6fe}-\u{1e6ff}\u{2b73a}-\u{2b73f}\u{2cea2}-\u{2cead}\u{323b0}-\u{33479}]/u;
const tiktokens = new Map<TokenizerEncoding, Tiktoken>();

function tiktoken(encoding: TokenizerEncoding): Tiktoken {
  let enc = tiktokens.get(encoding);
  if (!enc) {
    enc = (require('tiktoken') as typeof import('tiktoken')).get_encoding(encoding);
    tiktokens.set(encoding, enc);
  }
  return enc;
}
/* eslint-enable @typescript-eslint/no-require-imports */

interface LoadedEncoding {
  bpe: BytePairEncoder;
  ranks: RawBytePairRanks;
  specialTexts: Map<number, string>;
}

/** One loaded encoding per encoding per thread: the ranks and their lookup tables are the memory that counts. */
const loaded = new Map<TokenizerEncoding, LoadedEncoding>();

function load(encoding: TokenizerEncoding): LoadedEncoding {
  let enc = loaded.get(encoding);
  if (!enc) {
    const ranks = RANKS[encoding]();
    const bpe = new BytePairEncoder(ranks, splitPattern(TIKTOKEN_PATTERNS[encoding]), PIECE_SCANNERS[encoding]);
    const special = Object.entries(SPECIAL_TOKENS[encoding]);
    enc = { bpe, ranks, specialTexts: new Map(special.map(([text, id]) => [id, text])) };
    loaded.set(encoding, enc);
  }
  return enc;
}

const utf8 = new TextEncoder();

/** ES2024 string methods (Node 20 has them; the project's `lib` is ES2022). */
interface WellFormedString {
  isWellFormed(): boolean;
  toWellFormed(): string;
}

/** Each lone surrogate as U+FFFD, as tiktoken's UTF-8 conversion does; well-formed text unchanged and uncopied. */
function wellFormed(text: string): string {
  const s = text as string & WellFormedString;
  return s.isWellFormed() ? text : s.toWellFormed();
}

/**
 * A BPE tokenizer for training data, with tiktoken's ids: Flywheel's byte-pair encoder (`bpe.ts`) over the rank
 * tables gpt-tokenizer ships, cut into pieces by tiktoken's own patterns (`split-pattern.ts`). Special-token strings
 * inside documents are encoded as the plain text they are; the
 * end-of-text token is appended by us, once per document, so a document can never forge a boundary. Text that is not
 * well-formed UTF-16 (lone surrogates) is encoded as tiktoken does: each lone surrogate as U+FFFD.
 */
export class DocumentTokenizer {
  readonly eot: number;
  readonly vocabSize: number;
  private readonly enc: LoadedEncoding;

  constructor(readonly encoding: TokenizerEncoding) {
    this.enc = load(encoding);
    this.eot = SPECIAL_TOKENS[encoding][END_OF_TEXT];
    // Largest id + 1 over ordinary and special tokens bounds the dtype of stored token arrays.
    this.vocabSize = Math.max(VOCAB_SIZES[encoding], this.eot + 1);
  }

  /**
   * Token ids of one document, without the end-of-text id: a view that the next call may overwrite (copy what you
   * keep; encodeDocument does).
   */
  encodeOrdinary(text: string): Uint32Array {
    return UNICODE_17_ONLY.test(text)
      ? tiktoken(this.encoding).encode_ordinary(text)
      : this.enc.bpe.encode(wellFormed(text));
  }

  /** Token ids of one document followed by the end-of-text id. */
  encodeDocument(text: string): Uint32Array {
    const ids = this.encodeOrdinary(text);
    const out = new Uint32Array(ids.length + 1);
    out.set(ids);
    out[ids.length] = this.eot;
    return out;
  }

  /** The bytes one id stands for (a special token's: its text). */
  tokenBytes(id: number): Uint8Array {
    const entry = this.enc.ranks[id] ?? this.enc.specialTexts.get(id);
    if (entry === undefined) throw new RangeError(`token id ${id} is not in ${this.encoding}`);
    return typeof entry === 'string' ? utf8.encode(entry) : Uint8Array.from(entry);
  }

  /** The text of token ids; bytes that are not UTF-8 (a character cut between ids) become U+FFFD. */
  decode(ids: Uint32Array): string {
    return new TextDecoder().decode(Buffer.concat(Array.from(ids, (id) => this.tokenBytes(id))));
  }

  /** Drops the piece and pair caches this thread keeps for the encoding (the rank tables stay loaded). */
  free(): void {
    this.enc.bpe.clearCaches();
  }
}
