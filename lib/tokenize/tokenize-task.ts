import { DocumentTokenizer } from './tokenizer';
import type { TokenizerEncoding } from './encodings';

/** Runs inside a pool thread: one tokenizer per encoding per thread, kept for the thread's life. */
const tokenizers = new Map<TokenizerEncoding, DocumentTokenizer>();

export interface TokenizeTask {
  encoding: TokenizerEncoding;
  texts: string[];
}

export default function tokenizeTask(task: TokenizeTask): Uint32Array[] {
  let tokenizer = tokenizers.get(task.encoding);
  if (!tokenizer) {
    tokenizer = new DocumentTokenizer(task.encoding);
    tokenizers.set(task.encoding, tokenizer);
  }
  return task.texts.map((text) => tokenizer.encodeDocument(text));
}
