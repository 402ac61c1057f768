import type { TokenizerEncoding } from './encodings';

/**
 * The pre-tokenization patterns of tiktoken (its `pat_str`, verbatim), which cut text into the pieces BPE merges
 * within. tiktoken runs them in Rust's regex engine; `splitPattern` rewrites them so V8 matches exactly the same
 * pieces (the tokenize tests hold both to the same ids on every code point and on real text).
 */
const GPT2_PATTERN = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
export const TIKTOKEN_PATTERNS: Record<TokenizerEncoding, string> = {
  cl100k_base: String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
  o200k_base: [
    String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
    String.raw`[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?`,
    String.raw`\p{N}{1,3}`,
    String.raw` ?[^\s\p{L}\p{N}]+[\r\n/]*`,
    String.raw`\s*[\r\n]+`,
    String.raw`\s+(?!\S)`,
    String.raw`\s+`,
  ].join('|'),
  p50k_base: GPT2_PATTERN,
  r50k_base: GPT2_PATTERN,
  gpt2: GPT2_PATTERN,
};

/**
 * Rust's `\s` is Unicode White_Space. V8's `\s` differs in two code points: it adds U+FEFF (the byte-order mark)
 * and lacks U+0085 (next line), so both would cut pieces elsewhere.
 */
const WHITE_SPACE = String.raw`\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000`;

/**
 * ASCII letters and what else Rust's case-insensitive matching (Unicode simple case folding) takes for them: the
 * long s (U+017F) folds to s and the Kelvin sign (U+212A) to k.
 */
function caseless(letter: string): string {
  const extra: Record<string, string> = { s: '\u017f', k: '\u212a' };
  const lower = letter.toLowerCase();
  return `[${lower}${lower.toUpperCase()}${extra[lower] ?? ''}]`;
}

/**
 * A tiktoken pattern as a V8 regular expression with Rust's meaning: `\s` and `\S` spelled out as Rust's
 * White_Space, `(?i:...)` (V8 has no inline flags) spelled out letter by letter. Anything else in these patterns
 * (`\p{...}`, classes, `?`, `+`, `*`, `{1,3}`, `(?!...)`) already means the same in both engines under the `u` flag.
 */
export function splitPattern(pattern: string): RegExp {
  let out = '';
  let inClass = false;
  let caseInsensitiveDepth = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const next = pattern[i + 1];
      i++;
      if (next === 's') out += inClass ? WHITE_SPACE : `[${WHITE_SPACE}]`;
      else if (next === 'S') {
        if (inClass) throw new Error(`\\S inside a class is not supported in ${pattern}`);
        out += `[^${WHITE_SPACE}]`;
      } else out += c + next;
    } else if (inClass) {
      if (c === ']') inClass = false;
      out += c;
    } else if (c === '[') {
      inClass = true;
      out += c;
    } else if (pattern.startsWith('(?i:', i)) {
      caseInsensitiveDepth = 1;
      out += '(?:';
      i += 3;
    } else if (caseInsensitiveDepth > 0) {
      if (c === '(') caseInsensitiveDepth++;
      if (c === ')') caseInsensitiveDepth--;
      out += /[a-zA-Z]/.test(c) ? caseless(c) : c;
    } else out += c;
  }
  return new RegExp(out, 'gu');
}
