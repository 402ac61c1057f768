import english from './spacy-en.json';
import { FNV_START, LONGEST_HELD, SubstringTable, fnvStep as fnvStepImported } from '../common/substring-table';
import { tokenFacts, type TokenFacts, type Words } from './token-facts';

// An imported function is a property read per call in CommonJS builds, and this one runs per character.
const fnvStep = fnvStepImported;

/**
 * spaCy's rule-based English tokenizer (spacy.blank("en"), the one datatrove splits words and sentences with), run on
 * its own rules: prefix, suffix and infix expressions, the URL pattern and the special cases, exported from spaCy by
 * bench/quality_spacy_export.py into spacy-en.json. The algorithm follows spaCy's Tokenizer (tokenizer.pyx):
 * whitespace-delimited chunks; a chunk that is a special case is replaced; otherwise prefixes and suffixes are peeled
 * off until none is left or the rest is a special case; the rest is a special case, a URL, or split on infixes; last,
 * special cases that span affix tokens ("''", ":)") are merged back. spaCy is MIT-licensed (Explosion AI).
 */

const PREFIX = new RegExp(english.prefix, 'u');
const SUFFIX = new RegExp(english.suffix, 'u');
const INFIX = new RegExp(english.infix, 'gu');
const URL = new RegExp(english.url, 'u');
/** The rules' expressions, for tests. */
export const SPACY_RULES = { prefix: PREFIX, suffix: SUFFIX, infix: INFIX, url: URL } as const;
const RULES: ReadonlyMap<string, readonly string[]> = new Map(Object.entries(english.rules));
/** Special cases spaCy re-applies after affix splitting, by their first affix token. */
const MERGES = new Map<string, Array<{ key: string; tokens: readonly string[] }>>();
for (const [key, tokens] of Object.entries(english.matched)) {
  const first = tokens[0];
  if (!MERGES.has(first)) MERGES.set(first, []);
  MERGES.get(first)!.push({ key, tokens });
}
const SENTENCE_ENDS: ReadonlySet<string> = new Set(english.sentenceEnds);

/**
 * Python's str.isspace() for one UTF-16 unit (the file/group/record separators too; none lies outside the BMP): chunks
 * are runs of whitespace or of anything else.
 */
export function isPythonSpace(c: number): boolean {
  if (c > 0x20 && c < 0x85) return false;
  return (
    c === 0x20 ||
    (c >= 0x09 && c <= 0x0d) ||
    (c >= 0x1c && c <= 0x1f) ||
    c === 0x85 ||
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000
  );
}

function findPrefix(text: string): number {
  const m = PREFIX.exec(text);
  return m === null ? 0 : m.index + m[0].length;
}

function findSuffix(text: string): number {
  const m = SUFFIX.exec(text);
  return m === null ? 0 : text.length - m.index;
}

/** spaCy's _split_affixes: peels prefixes and suffixes, returns what is left. */
function splitAffixes(text: string, prefixes: string[], suffixes: string[]): string {
  let s = text;
  let lastSize = 0;
  while (s !== '' && s.length !== lastSize) {
    if (RULES.has(s)) break;
    // Letters alone have no prefix or suffix (see LETTERS): this round would end the loop, s unchanged.
    if (LETTERS.test(s)) break;
    lastSize = s.length;
    const pre = findPrefix(s);
    const minusPre = s.slice(pre);
    if (pre !== 0 && minusPre !== '' && RULES.has(minusPre)) {
      prefixes.push(s.slice(0, pre));
      s = minusPre;
      break;
    }
    const suf = findSuffix(minusPre);
    const minusSuf = s.slice(0, s.length - suf);
    if (suf !== 0 && minusSuf !== '' && RULES.has(minusSuf)) {
      suffixes.push(s.slice(s.length - suf));
      s = minusSuf;
      break;
    }
    if (pre !== 0 && suf !== 0 && pre + suf <= s.length) {
      prefixes.push(s.slice(0, pre));
      suffixes.push(s.slice(s.length - suf));
      s = s.slice(pre, s.length - suf);
    } else if (pre !== 0) {
      prefixes.push(s.slice(0, pre));
      s = minusPre;
    } else if (suf !== 0) {
      suffixes.push(s.slice(s.length - suf));
      s = minusSuf;
    }
  }
  return s;
}

/** spaCy's _attach_tokens: the rest as a special case, a URL, or split on infixes. */
function attach(out: string[], s: string): void {
  if (s === '') return;
  const special = RULES.get(s);
  if (special !== undefined) {
    out.push(...special);
    return;
  }
  // The usual rest, a word whose punctuation was peeled off: letters meet no URL or infix rule (see LETTERS).
  if (LETTERS.test(s)) {
    out.push(s);
    return;
  }
  if (URL.test(s)) {
    out.push(s);
    return;
  }
  let start = 0;
  // exec on the one global expression, not matchAll: matchAll copies the expression (12 kB of source) per call.
  INFIX.lastIndex = 0;
  for (let m = INFIX.exec(s); m !== null; m = INFIX.exec(s)) {
    if (m[0] === '') INFIX.lastIndex += s.codePointAt(m.index)! > 0xffff ? 2 : 1; // as matchAll steps past one
    const from = m.index;
    const to = from + m[0].length;
    if (from === 0) continue;
    if (from !== start) out.push(s.slice(start, from));
    if (from !== to) out.push(s.slice(from, to));
    start = to;
  }
  if (start < s.length) out.push(s.slice(start));
}

/** spaCy's special-case matcher within one chunk: longest matches first, then the earlier one, no overlaps. */
function mergeSpecials(tokens: string[]): string[] {
  const found: Array<{ start: number; length: number; key: string }> = [];
  for (let i = 0; i < tokens.length; i++) {
    for (const { key, tokens: pattern } of MERGES.get(tokens[i]) ?? []) {
      if (i + pattern.length > tokens.length) continue;
      let same = true;
      for (let k = 1; k < pattern.length && same; k++) same = tokens[i + k] === pattern[k];
      if (same) found.push({ start: i, length: pattern.length, key });
    }
  }
  if (found.length === 0) return tokens;
  found.sort((a, b) => a.length - b.length || b.start - a.start);
  const seen = new Set<number>();
  const kept: typeof found = [];
  for (let f = found.length - 1; f >= 0; f--) {
    const m = found[f];
    if (!seen.has(m.start) && !seen.has(m.start + m.length - 1)) kept.push(m);
    for (let k = m.start; k < m.start + m.length; k++) seen.add(k);
  }
  kept.sort((a, b) => a.start - b.start);
  const out: string[] = [];
  let at = 0;
  for (const m of kept) {
    out.push(...tokens.slice(at, m.start), ...RULES.get(m.key)!);
    at = m.start + m.length;
  }
  out.push(...tokens.slice(at));
  return out;
}

/** A chunk's tokens, what each is to the sentencizer and to the Gopher families: computed once per distinct chunk. */
interface ChunkEntry {
  tokens: readonly string[];
  kinds: readonly number[];
  facts: readonly TokenFacts[];
}
const OTHER = 0;
const SENTENCE_END = 1;
/** Punctuation that is not a sentence end: it neither starts a sentence nor ends one. */
const PUNCT = 2;
const PUNCTUATION = /^\p{P}*$/u;

function kindOf(token: string): number {
  if (SENTENCE_ENDS.has(token)) return SENTENCE_END;
  return PUNCTUATION.test(token) ? PUNCT : OTHER;
}

/**
 * Letters alone meet no affix, infix or URL rule (each needs punctuation, a symbol or a digit; a test checks every
 * letter of Unicode), so such a chunk is one token unless it is a special case ("cannot" -> "can" "not").
 */
const LETTERS = /^\p{L}+$/u;

function tokenize(chunk: string): ChunkEntry {
  let tokens: readonly string[];
  const special = RULES.get(chunk);
  if (special !== undefined) {
    tokens = special;
  } else if (LETTERS.test(chunk)) {
    tokens = [chunk];
  } else {
    const prefixes: string[] = [];
    const suffixes: string[] = [];
    const rest = splitAffixes(chunk, prefixes, suffixes);
    const out = [...prefixes];
    attach(out, rest);
    for (let i = suffixes.length - 1; i >= 0; i--) out.push(suffixes[i]);
    tokens = mergeSpecials(out);
  }
  return { tokens, kinds: tokens.map(kindOf), facts: tokens.map(tokenFacts) };
}

/**
 * The sentencizer over `kinds`, meeting them with an end mark pending or not: a new sentence at the first token after
 * an end mark that is neither an end mark nor punctuation. Returns the sentences started × 2, plus 1 when an end mark
 * is still pending after them.
 */
function sentencesOver(kinds: readonly number[], pending: boolean): number {
  let starts = 0;
  for (const kind of kinds) {
    if (kind === SENTENCE_END) {
      pending = true;
    } else if (kind === OTHER && pending) {
      starts++;
      pending = false;
    }
  }
  return 2 * starts + (pending ? 1 : 0);
}

/**
 * What a chunk's tokens do to the sentencizer, in one int: its token count (bits 0-15) and, for each state it can
 * meet (no end mark pending: bits 16-22; one pending: bits 23-29), sentencesOver's answer (6 bits of sentences, 1 of
 * pending). -1 where a count does not fit: the caller then runs sentencesOver on the kinds.
 */
function sentenceEffect(kinds: readonly number[]): number {
  const [fresh, pending] = [sentencesOver(kinds, false), sentencesOver(kinds, true)];
  if (kinds.length > 0xffff || fresh >= 128 || pending >= 128) return -1;
  return kinds.length | (fresh << 16) | (pending << 23);
}

/** Slots of the table of chunks seen; it holds half as many chunks before it is emptied. */
const HELD_SLOTS = 1 << 18;
/** The chunks seen lately: their entries, and a table from a chunk's text to its index there. */
const entries: ChunkEntry[] = [];
/**
 * Each held chunk's sentenceEffect, by index: sentence counting reads this array only, not the entry (a pointer to
 * follow, and a cache miss, per chunk).
 */
const effects = new Int32Array(HELD_SLOTS / 2);
const held = new SubstringTable(HELD_SLOTS, 1 << 21);
/** Chunks longer than LONGEST_HELD are tokenized each time; the last one is index UNHELD. */
const UNHELD = -1;
let unheld: { entry: ChunkEntry; effect: number } | undefined;

/** The index of text[start, end), a chunk whose FNV hash is `hash`: tokenized once per distinct chunk. */
function chunkIndex(text: string, start: number, end: number, hash: number): number {
  const index = held.get(text, start, end, hash);
  if (index >= 0) return index;
  const entry = tokenize(text.slice(start, end));
  const effect = sentenceEffect(entry.kinds);
  const length = end - start;
  if (length > LONGEST_HELD) {
    unheld = { entry, effect };
    return UNHELD;
  }
  if (!held.roomFor(length)) {
    held.clear();
    entries.length = 0;
  }
  const fresh = entries.length;
  held.set(text, start, end, hash, fresh);
  entries.push(entry);
  effects[fresh] = effect;
  return fresh;
}

const entryAt = (index: number): ChunkEntry => (index === UNHELD ? unheld!.entry : entries[index]);
const effectAt = (index: number): number => (index === UNHELD ? unheld!.effect : effects[index]);

/**
 * Cuts `text` into chunks as spaCy does (runs of whitespace and runs of anything else), handing each non-whitespace
 * chunk's index (entryAt, effectAt) to `chunk` and the bounds of each whitespace token to `space`, in order: a run of
 * whitespace is a token, less the one space that separates two chunks (spaCy's own split). One scan of the text's
 * units: no regular expression, no substring for a chunk seen before.
 */
function scan(text: string, chunk: (index: number) => void, space?: (start: number, end: number) => void): void {
  const n = text.length;
  let i = 0;
  while (i < n) {
    const start = i;
    if (isPythonSpace(text.charCodeAt(i))) {
      do i++;
      while (i < n && isPythonSpace(text.charCodeAt(i)));
      const from = start !== 0 && text.charCodeAt(start) === 0x20 ? start + 1 : start;
      if (space !== undefined && from < i) space(from, i);
    } else {
      let hash = FNV_START;
      do hash = fnvStep(hash, text.charCodeAt(i++));
      while (i < n && !isPythonSpace(text.charCodeAt(i)));
      chunk(chunkIndex(text, start, i, hash));
    }
  }
}

/** spaCy's tokens of `text`, whitespace included as spaCy keeps it (see scan). */
export function spacyTokens(text: string): string[] {
  const out: string[] = [];
  scan(
    text,
    (index) => out.push(...entryAt(index).tokens),
    (start, end) => out.push(text.slice(start, end)),
  );
  return out;
}

/** spaCy's tokens of `text` without the whitespace ones: the words datatrove counts. */
export function spacyWords(text: string): string[] {
  const out: string[] = [];
  scan(text, (index) => {
    const { tokens } = entryAt(index);
    for (let i = 0; i < tokens.length; i++) out.push(tokens[i]);
  });
  return out;
}

/** spacyWords(text) with each token's facts. */
export function spacyWordFacts(text: string): Words {
  const tokens: string[] = [];
  const facts: TokenFacts[] = [];
  scan(text, (index) => {
    const entry = entryAt(index);
    for (let i = 0; i < entry.tokens.length; i++) {
      tokens.push(entry.tokens[i]);
      facts.push(entry.facts[i]);
    }
  });
  return { tokens, facts };
}

/**
 * In one pass over `text`: the sentences spaCy's sentencizer finds (a new one at the first token after an end mark
 * that is neither an end mark nor punctuation; 0 without tokens) and the words (spacyWords(text).length).
 */
export function spacySentencesAndWords(text: string): { sentences: number; words: number } {
  let tokens = 0;
  let words = 0;
  let sentences = 1;
  let pending = false;
  const take = (after: number) => {
    sentences += after >>> 1;
    pending = (after & 1) !== 0;
  };
  scan(
    text,
    (index) => {
      const effect = effectAt(index);
      const count = effect >= 0 ? effect & 0xffff : entryAt(index).kinds.length;
      tokens += count;
      words += count;
      take(effect >= 0 ? (effect >>> (pending ? 23 : 16)) & 127 : sentencesOver(entryAt(index).kinds, pending));
    },
    (start, end) => {
      tokens++;
      take(sentencesOver([kindOf(text.slice(start, end))], pending));
    },
  );
  return tokens === 0 ? { sentences: 0, words: 0 } : { sentences, words };
}

/** Sentences spaCy's sentencizer finds in `text`: a new one at the first non-punctuation token after an end mark. */
export function spacySentenceCount(text: string): number {
  return spacySentencesAndWords(text).sentences;
}
