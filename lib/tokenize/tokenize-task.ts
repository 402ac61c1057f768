import Piscina from 'piscina';
import { DocumentTokenizer } from './tokenizer';
import type { TokenizerEncoding } from './encodings';

/** Runs inside a pool thread: one tokenizer per encoding per thread, kept for the thread's life. */
const tokenizers = new Map<TokenizerEncoding, DocumentTokenizer>();

export interface TokenizeTask {
  encoding: TokenizerEncoding;
  texts: string[];
}

/**
 * The ids of every text in one array whose buffer is moved, not copied, back to the caller: the number of texts,
 * then where each text's ids end (counted from the first id), then the ids. `splitTokenized` reads it.
 */
export default function tokenizeTask(task: TokenizeTask): Uint32Array {
  let tokenizer = tokenizers.get(task.encoding);
  if (!tokenizer) {
    tokenizer = new DocumentTokenizer(task.encoding);
    tokenizers.set(task.encoding, tokenizer);
  }
  const encoded = task.texts.map((text) => tokenizer.encodeDocument(text));
  const header = 1 + encoded.length;
  let total = 0;
  for (const ids of encoded) total += ids.length;
  const out = new Uint32Array(header + total);
  out[0] = encoded.length;
  let at = 0;
  encoded.forEach((ids, i) => {
    out.set(ids, header + at);
    at += ids.length;
    out[1 + i] = at;
  });
  return Piscina.move(out) as Uint32Array;
}

/** Each text's ids from `tokenizeTask`'s array, as views on its buffer. */
export function splitTokenized(all: Uint32Array): Uint32Array[] {
  const count = all[0];
  const header = 1 + count;
  const out: Uint32Array[] = [];
  let start = 0;
  for (let i = 0; i < count; i++) {
    const end = all[1 + i];
    out.push(all.subarray(header + start, header + end));
    start = end;
  }
  return out;
}
