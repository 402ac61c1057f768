/**
 * The end of the piece that tiktoken's pattern matches at `i`, worked out by hand for ASCII text, or BAIL when the
 * answer depends on a character outside ASCII (the caller then runs the regular expression from `i`). Splitting is
 * a third of tokenizing's time and V8's regular expressions build a match per piece; this reads character codes
 * only. Each function follows its pattern's alternatives in order, as a backtracking engine would
 * (`split-pattern.ts` has the patterns); it bails whenever it would have to classify a character ≥ U+0080, so it
 * never decides anything the pattern's Unicode classes could decide otherwise. The tokenize tests hold the ids equal
 * to tiktoken's on every code point, generated text and real text.
 */
export type PieceScanner = (text: string, i: number) => number;

export const BAIL = -1;
const NO_MATCH = -2;

const APOSTROPHE = 0x27;
const SPACE = 0x20;
const LF = 0x0a;
const CR = 0x0d;
const SLASH = 0x2f;

/** Character classes of the ASCII range; a code ≥ 0x80 (or NaN past the end) is none of them. */
const UPPER = 1;
const LOWER = 2;
const DIGIT = 4;
const WHITE = 8; // Rust's White_Space in ASCII: \t \n \v \f \r and space
const OTHER = 16; // neither a letter, a digit nor white space
const LETTER = UPPER | LOWER;
const CLASS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  if (c >= 0x41 && c <= 0x5a) CLASS[c] = UPPER;
  else if (c >= 0x61 && c <= 0x7a) CLASS[c] = LOWER;
  else if (c >= 0x30 && c <= 0x39) CLASS[c] = DIGIT;
  else if ((c >= 0x09 && c <= 0x0d) || c === SPACE) CLASS[c] = WHITE;
  else CLASS[c] = OTHER;
}

/** The class of the character at `i`: 0 past the end, -1 outside ASCII. */
function classAt(text: string, i: number): number {
  if (i >= text.length) return 0;
  const c = text.charCodeAt(i);
  return c < 0x80 ? CLASS[c] : -1;
}

/** Where a run of `cls` characters starting at `i` ends, or BAIL when it meets a non-ASCII character. */
function runEnd(text: string, i: number, cls: number): number {
  let k = i;
  for (;;) {
    const at = classAt(text, k);
    if (at < 0) return BAIL;
    if ((at & cls) === 0) return k;
    k++;
  }
}

/**
 * A contraction at `i` (`'s 't 're 've 'm 'll 'd`), in any case when `caseless` (Rust's folding adds only ſ for s,
 * outside ASCII): its end; `i` when there is none; BAIL when a non-ASCII character decides it.
 */
function contractionEnd(text: string, i: number, caseless: boolean): number {
  if (text.charCodeAt(i) !== APOSTROPHE) return i;
  const c1 = text.charCodeAt(i + 1);
  if (c1 >= 0x80) return BAIL;
  const l1 = caseless ? c1 | 0x20 : c1;
  if (l1 === 0x73 || l1 === 0x74 || l1 === 0x6d || l1 === 0x64) return i + 2; // s t m d
  if (l1 === 0x72 || l1 === 0x76 || l1 === 0x6c) {
    // r v l: re ve ll
    const c2 = text.charCodeAt(i + 2);
    if (c2 >= 0x80) return BAIL;
    const l2 = caseless ? c2 | 0x20 : c2;
    if (l2 === (l1 === 0x6c ? 0x6c : 0x65)) return i + 3;
  }
  return i;
}

/** Where the white space at `i` ends as a piece: `\s*[\r\n]+` (cl100k, o200k only), `\s+(?!\S)`, `\s+`. */
function whiteSpaceEnd(text: string, i: number, newlines: boolean): number {
  const j = runEnd(text, i, WHITE);
  if (j === BAIL) return BAIL;
  if (newlines) {
    for (let p = j - 1; p >= i; p--) {
      const c = text.charCodeAt(p);
      if (c === LF || c === CR) return p + 1;
    }
  }
  if (j === text.length || j - i === 1) return j;
  return j - 1;
}

/** `[^\s\p{L}\p{N}]+` from `k`, then any run of `trailing`: the end; NO_MATCH when `k` holds no such character; BAIL. */
function otherRunEnd(text: string, k: number, trailing: (c: number) => boolean): number {
  const first = classAt(text, k);
  if (first < 0) return BAIL;
  if (first !== OTHER) return NO_MATCH;
  let e = runEnd(text, k + 1, OTHER);
  if (e === BAIL) return BAIL;
  while (e < text.length && trailing(text.charCodeAt(e))) e++;
  return e;
}

const newline = (c: number) => c === LF || c === CR;
const newlineOrSlash = (c: number) => c === LF || c === CR || c === SLASH;

/** r50k_base, p50k_base, gpt2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+` */
export const gpt2Scanner: PieceScanner = (text, i) => {
  const c = classAt(text, i);
  if (c < 0) return BAIL;
  const contraction = contractionEnd(text, i, false);
  if (contraction !== i) return contraction;
  const start = text.charCodeAt(i) === SPACE ? i + 1 : i;
  const next = classAt(text, start);
  if (next < 0) return BAIL;
  if (next & LETTER) return runEnd(text, start, LETTER);
  if (next & DIGIT) return runEnd(text, start, DIGIT);
  if (next === OTHER) return runEnd(text, start, OTHER);
  return whiteSpaceEnd(text, i, false);
};

/** cl100k_base: `(?i:'s|…|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+` */
export const cl100kScanner: PieceScanner = (text, i) => {
  const c = classAt(text, i);
  if (c < 0) return BAIL;
  const contraction = contractionEnd(text, i, true);
  if (contraction !== i) return contraction;
  const code = text.charCodeAt(i);
  if (c & LETTER) return runEnd(text, i, LETTER);
  if (!(c & DIGIT) && code !== LF && code !== CR) {
    const next = classAt(text, i + 1);
    if (next < 0) return BAIL;
    if (next & LETTER) return runEnd(text, i + 1, LETTER);
  }
  if (c & DIGIT) return digitsEnd(text, i);
  const other = otherRunEnd(text, code === SPACE ? i + 1 : i, newline);
  if (other !== NO_MATCH) return other;
  return whiteSpaceEnd(text, i, true);
};

/** Up to three digits from `i` (`\p{N}{1,3}`). */
function digitsEnd(text: string, i: number): number {
  let k = i + 1;
  for (; k < i + 3; k++) {
    const at = classAt(text, k);
    if (at < 0) return BAIL;
    if (at !== DIGIT) break;
  }
  return k;
}

/**
 * o200k_base: `[^\r\n\p{L}\p{N}]?[\p{Lu}…\p{M}]*[\p{Ll}…\p{M}]+(?i:'s|…)?|[^\r\n\p{L}\p{N}]?[\p{Lu}…\p{M}]+[\p{Ll}…\p{M}]*(?i:'s|…)?|
 * \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+`. In ASCII both word alternatives end where the
 * upper-case run and the lower-case run after it end (the first needs the lower-case run, the second takes the
 * upper-case run alone), then take a contraction.
 */
export const o200kScanner: PieceScanner = (text, i) => {
  const c = classAt(text, i);
  if (c < 0) return BAIL;
  const code = text.charCodeAt(i);
  let word = -1;
  if (c & LETTER) word = i;
  else if (!(c & DIGIT) && code !== LF && code !== CR) {
    const next = classAt(text, i + 1);
    if (next < 0) return BAIL;
    if (next & LETTER) word = i + 1;
  }
  if (word >= 0) {
    const upper = runEnd(text, word, UPPER);
    if (upper === BAIL) return BAIL;
    const lower = runEnd(text, upper, LOWER);
    if (lower === BAIL) return BAIL;
    return contractionEnd(text, lower, true);
  }
  if (c & DIGIT) return digitsEnd(text, i);
  const other = otherRunEnd(text, code === SPACE ? i + 1 : i, newlineOrSlash);
  if (other !== NO_MATCH) return other;
  return whiteSpaceEnd(text, i, true);
};
