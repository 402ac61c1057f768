import { z } from 'zod';

/** BPE encodings the tiktoken library ships. */
export const TOKENIZER_ENCODINGS = ['cl100k_base', 'o200k_base', 'p50k_base', 'r50k_base', 'gpt2'] as const;
export const TokenizerEncoding = z.enum(TOKENIZER_ENCODINGS);
export type TokenizerEncoding = z.infer<typeof TokenizerEncoding>;
