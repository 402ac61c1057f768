import { z } from 'zod';
import { InvalidSpec, parseSpec } from '../contracts/invalid-spec';
import { TOKENIZER_ENCODINGS, TokenizerEncoding } from '../tokenize/encodings';
import { DocumentTokenizer } from '../tokenize/tokenizer';
import type { LanguageModel } from './mlp-lm';
import { Xorshift128 } from './rng';

const tokenId = z.number().int().min(0).max(0xffffffff);

/** How to sample a continuation. Temperature, then top-k, then top-p narrow the distribution, as Hugging Face does. */
export const GenerationOptions = z
  .object({
    maxTokens: z.number().int().min(0).describe('tokens to generate at most'),
    temperature: z.number().min(0).default(1).describe('divides the logits; 0 picks the most likely token'),
    topK: z.number().int().min(1).optional().describe('sample among the k most likely tokens only'),
    topP: z.number().gt(0).max(1).optional().describe('sample among the fewest tokens whose probability reaches p'),
    seed: z.number().int().min(0).max(0xffffffff).default(0).describe('same seed, same model, same prompt → same text'),
    stopToken: tokenId.optional().describe('generation ends before this token (it is not returned)'),
    padToken: tokenId.optional().describe('fills the context left of a short prompt (default: the unknown row)'),
  })
  .strict();
export type GenerationOptions = z.infer<typeof GenerationOptions>;
export type GenerationOptionsInput = z.input<typeof GenerationOptions>;

/** Separate from the trainer's stream 0, so a generation seed never replays an initialization. */
const GENERATION_STREAM = 1;

/**
 * Continues `prompt` (token ids) with up to `maxTokens` ids sampled from the model's next-token distribution. The
 * unknown row is never sampled; ids the model does not know read as unknown in the context.
 */
export function generateTokens(
  model: LanguageModel,
  prompt: readonly number[],
  opts: GenerationOptionsInput,
): number[] {
  const o = parseSpec('generation', GenerationOptions, opts);
  const badPrompt = prompt.findIndex((id) => !tokenId.safeParse(id).success);
  if (badPrompt >= 0)
    throw new InvalidSpec('generation', [
      { field: `prompt.${badPrompt}`, message: `${prompt[badPrompt]} is not a token id (an integer ≥ 0)` },
    ]);
  const { vocabulary, shape } = model;
  if (vocabulary.size < 2) throw new RangeError('the model knows no token ids; there is nothing to generate');
  const C = shape.contextTokens;
  const pad = o.padToken === undefined ? 0 : vocabulary.row(o.padToken);
  const rows = [...Array<number>(Math.max(0, C - prompt.length)).fill(pad), ...prompt.map((id) => vocabulary.row(id))];
  const rng = Xorshift128.fromSeed(o.seed, GENERATION_STREAM);
  const out: number[] = [];
  while (out.length < o.maxTokens) {
    const logits = model.nextTokenLogits(rows.slice(rows.length - C));
    const row = o.temperature === 0 ? argmaxRow(logits) : sampleRow(logits, o, rng);
    const id = vocabulary.ids[row - 1];
    if (id === o.stopToken) break;
    out.push(id);
    rows.push(row);
  }
  return out;
}

/**
 * Continues a text prompt: encoded and decoded with the tiktoken `encoding` the model's dataset was tokenized with.
 * Unless told otherwise, a short prompt is padded with end-of-text (as a document follows one in training) and
 * generation stops at end-of-text.
 */
export function generateText(
  model: LanguageModel,
  prompt: string,
  encoding: string,
  opts: GenerationOptionsInput,
): string {
  const known = TokenizerEncoding.safeParse(encoding);
  if (!known.success)
    throw new InvalidSpec('generation', [
      { field: 'encoding', message: `unknown encoding '${encoding}'; use one of ${TOKENIZER_ENCODINGS.join(', ')}` },
    ]);
  const tokenizer = new DocumentTokenizer(known.data);
  try {
    const document = tokenizer.encodeDocument(prompt);
    const ids = Array.from(document.subarray(0, document.length - 1));
    const generated = generateTokens(model, ids, {
      ...opts,
      stopToken: opts.stopToken ?? tokenizer.eot,
      padToken: opts.padToken ?? tokenizer.eot,
    });
    return tokenizer.decode(Uint32Array.from(generated));
  } finally {
    tokenizer.free();
  }
}

/** The most likely known row; the lowest row on a tie. */
function argmaxRow(logits: Float64Array): number {
  let best = 1;
  for (let r = 2; r < logits.length; r++) if (logits[r] > logits[best]) best = r;
  return best;
}

function sampleRow(logits: Float64Array, o: GenerationOptions, rng: Xorshift128): number {
  const V = logits.length;
  let max = -Infinity;
  for (let r = 1; r < V; r++) max = Math.max(max, logits[r]);
  const weight = new Float64Array(V);
  for (let r = 1; r < V; r++) weight[r] = Math.exp((logits[r] - max) / o.temperature);
  // Most likely first, ties by row, so top-k = 1 and a tiny top-p both agree with greedy.
  const order = Array.from({ length: V - 1 }, (_, i) => i + 1).sort((a, b) => weight[b] - weight[a] || a - b);
  let kept = Math.min(order.length, o.topK ?? Infinity);
  let total = 0;
  for (let i = 0; i < kept; i++) total += weight[order[i]];
  if (o.topP !== undefined && o.topP < 1) {
    let sum = 0;
    for (let i = 0; i < kept; i++) {
      sum += weight[order[i]];
      if (sum >= o.topP * total) {
        kept = i + 1;
        total = sum;
        break;
      }
    }
  }
  let u = rng.nextFloat() * total;
  for (let i = 0; i < kept - 1; i++) {
    u -= weight[order[i]];
    if (u < 0) return order[i];
  }
  return order[kept - 1];
}
