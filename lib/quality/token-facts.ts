import { codePointLength, hasLetter, isSymbolToken } from './characters';

/** Bases of the two polynomial hashes n-grams are compared by (ngram-hash.ts). */
export const B1 = 0x01000193;
export const B2 = 0x5bd1e995;

/**
 * What the Gopher families read off a word token. The tokenizer computes it once per distinct chunk and keeps it
 * with the chunk's tokens, so counting a document's words looks nothing up per token.
 */
export interface TokenFacts {
  /** The token's characters under the two hashes. */
  h1: number;
  h2: number;
  /** Code points, as Python's len(). */
  length: number;
  /** Made only of datatrove's punctuation (a "symbol word"). */
  symbol: boolean;
  letter: boolean;
}

export function tokenFacts(token: string): TokenFacts {
  let h1 = 0;
  let h2 = 0;
  for (let i = 0; i < token.length; i++) {
    const c = token.codePointAt(i)!;
    if (c > 0xffff) i++;
    h1 = (Math.imul(h1, B1) + c) | 0;
    h2 = (Math.imul(h2, B2) + c) | 0;
  }
  return { h1, h2, length: codePointLength(token), symbol: isSymbolToken(token), letter: hasLetter(token) };
}

/** A text's word tokens and, index for index, their facts. */
export interface Words {
  tokens: string[];
  facts: TokenFacts[];
}

/** Words of tokens given as strings (tests, callers without the tokenizer's facts). */
export function wordsOf(tokens: readonly string[]): Words {
  return { tokens: [...tokens], facts: tokens.map(tokenFacts) };
}
