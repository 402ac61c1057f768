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
  // Each document's ids go straight from the encoder's view into the one array sent back (with its end-of-text id).
  const header = 1 + task.texts.length;
  let out = new Uint32Array(header + task.texts.reduce((n, t) => n + (t.length >> 2), 0) + task.texts.length);
  out[0] = task.texts.length;
  let at = 0;
  task.texts.forEach((text, i) => {
    const ids = tokenizer.encodeOrdinary(text);
    if (header + at + ids.length + 1 > out.length) {
      const grown = new Uint32Array(Math.max(2 * out.length, header + at + ids.length + 1));
      grown.set(out.subarray(0, header + at));
      out = grown;
    }
    out.set(ids, header + at);
    at += ids.length;
    out[header + at++] = tokenizer.eot;
    out[1 + i] = at;
  });
  return Piscina.move(out.subarray(0, header + at)) as Uint32Array;
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
