import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { fromSafetensors, MalformedSafetensors, toSafetensors } from '../train/safetensors';
import { RegistryError } from './errors';
import type { ModelVersion } from './schema';

/** The files a GPT-2-shaped external trainer registers (examples/torch-gpt writes them): weights and their shape. */
export const GPT2_WEIGHTS_FILE = 'model.safetensors';
export const GPT2_CONFIG_FILE = 'model-config.json';

/** `model-config.json`: the architecture of a GPT-2-shaped model, in the trainer's words. */
export const Gpt2ModelConfig = z
  .object({
    architecture: z.literal('gpt2'),
    nLayer: z.number().int().min(1),
    nHead: z.number().int().min(1),
    nEmbd: z.number().int().min(1),
    nPositions: z.number().int().min(1),
    vocabSize: z.number().int().min(1),
    tiedHead: z.boolean(),
    layerNormEpsilon: z.number().positive().default(1e-5),
    activation: z.literal('gelu_new').default('gelu_new'),
  })
  .refine((c) => c.nEmbd % c.nHead === 0, { path: ['nHead'], message: 'must divide nEmbd' });
export type Gpt2ModelConfig = z.infer<typeof Gpt2ModelConfig>;

/** A version that cannot be exported in the asked format. Never retried: pick another version or format. */
export class ModelNotExportable extends RegistryError {
  constructor(
    readonly model: string,
    readonly version: string,
    detail: string,
  ) {
    super('ModelNotExportable', `model ${model} ${version} cannot be exported in that format: ${detail}`, {
      retryable: false,
    });
  }
}

/** Every tensor `GPT2LMHeadModel` loads, with its shape (Conv1D weights are [in, out]). */
export function gpt2TensorShapes(c: Gpt2ModelConfig): Map<string, number[]> {
  const d = c.nEmbd;
  const shapes = new Map<string, number[]>([
    ['transformer.wte.weight', [c.vocabSize, d]],
    ['transformer.wpe.weight', [c.nPositions, d]],
    ['transformer.ln_f.weight', [d]],
    ['transformer.ln_f.bias', [d]],
  ]);
  for (let i = 0; i < c.nLayer; i++) {
    const h = `transformer.h.${i}`;
    for (const [name, shape] of [
      ['ln_1.weight', [d]],
      ['ln_1.bias', [d]],
      ['attn.c_attn.weight', [d, 3 * d]],
      ['attn.c_attn.bias', [3 * d]],
      ['attn.c_proj.weight', [d, d]],
      ['attn.c_proj.bias', [d]],
      ['ln_2.weight', [d]],
      ['ln_2.bias', [d]],
      ['mlp.c_fc.weight', [d, 4 * d]],
      ['mlp.c_fc.bias', [4 * d]],
      ['mlp.c_proj.weight', [4 * d, d]],
      ['mlp.c_proj.bias', [d]],
    ] as const)
      shapes.set(`${h}.${name}`, [...shape]);
  }
  if (!c.tiedHead) shapes.set('lm_head.weight', [c.vocabSize, d]);
  return shapes;
}

export interface HfExportOptions {
  /** The tokenizer's end-of-text id (the dataset's), used as BOS and EOS; GPT-2's 50256 by default. */
  eot?: number;
  /** The dataset's tokenizer encoding, recorded in the weights' metadata. */
  encoding?: string;
}

/**
 * A registered GPT-2-shaped external model as a Hugging Face directory that `AutoModelForCausalLM.from_pretrained`
 * loads: `config.json` of `GPT2LMHeadModel`, `model.safetensors` with transformers' names and layouts (checked
 * tensor by tensor against the config) and the version's lineage in its metadata, and `generation_config.json`.
 */
export function exportHfGpt2(
  version: ModelVersion,
  files: Readonly<Record<string, Buffer>>,
  opts: HfExportOptions = {},
): Record<string, Buffer> {
  const refuse = (detail: string) => new ModelNotExportable(version.model, version.version, detail);
  const configBytes = files[GPT2_CONFIG_FILE];
  const weightsBytes = files[GPT2_WEIGHTS_FILE];
  if (configBytes === undefined || weightsBytes === undefined) {
    throw refuse(
      `it has no ${[configBytes ? '' : GPT2_CONFIG_FILE, weightsBytes ? '' : GPT2_WEIGHTS_FILE].filter(Boolean).join(' or ')} ` +
        `(its files: ${Object.keys(files).sort().join(', ')}); only GPT-2-shaped external models (examples/torch-gpt) ` +
        'export to this format; built-in models export with --format safetensors',
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(configBytes.toString('utf8'));
  } catch (err) {
    throw refuse(`${GPT2_CONFIG_FILE} is not JSON (${(err as Error).message})`);
  }
  const parsed = Gpt2ModelConfig.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(file)'}: ${i.message}`).join('; ');
    throw refuse(`${GPT2_CONFIG_FILE} does not describe a GPT-2-shaped model: ${problems}`);
  }
  const config = parsed.data;
  let weights;
  try {
    weights = fromSafetensors(weightsBytes);
  } catch (err) {
    if (err instanceof MalformedSafetensors) throw refuse(`${GPT2_WEIGHTS_FILE}: ${err.message}`);
    throw err;
  }
  const expected = gpt2TensorShapes(config);
  const found = new Map(weights.tensors.map((t) => [t.name, t.shape]));
  const problems: string[] = [];
  for (const [name, shape] of expected) {
    const got = found.get(name);
    if (got === undefined) problems.push(`${name} is missing`);
    else if (got.join(',') !== shape.join(','))
      problems.push(`${name} has shape [${got.join(', ')}], the config needs [${shape.join(', ')}]`);
  }
  for (const name of found.keys()) if (!expected.has(name)) problems.push(`${name} is not a GPT2LMHeadModel tensor`);
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
    throw refuse(`${GPT2_WEIGHTS_FILE} does not match ${GPT2_CONFIG_FILE}: ${shown}`);
  }
  const eot = opts.eot ?? 50256;
  const hfConfig = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: config.vocabSize,
    n_positions: config.nPositions,
    n_ctx: config.nPositions,
    n_embd: config.nEmbd,
    n_layer: config.nLayer,
    n_head: config.nHead,
    n_inner: null,
    activation_function: config.activation,
    layer_norm_epsilon: config.layerNormEpsilon,
    resid_pdrop: 0,
    embd_pdrop: 0,
    attn_pdrop: 0,
    initializer_range: 0.02,
    scale_attn_weights: true,
    use_cache: true,
    tie_word_embeddings: config.tiedHead,
    bos_token_id: eot,
    eos_token_id: eot,
    torch_dtype: 'float32',
  };
  const generation = { bos_token_id: eot, eos_token_id: eot, max_length: config.nPositions };
  const metadata: Record<string, string> = {
    format: 'pt',
    model: version.model,
    version: version.version,
    run: version.run,
    step: String(version.step),
    dataset: version.dataset,
    weights_sha256: version.weightsSha256,
    ...(opts.encoding ? { tokenizer_encoding: opts.encoding } : {}),
  };
  const json = (value: unknown) => Buffer.from(`${JSON.stringify(value, null, 2)}\n`);
  return {
    'config.json': json(hfConfig),
    'model.safetensors': toSafetensors(weights.tensors, metadata),
    'generation_config.json': json(generation),
  };
}

/** Writes an export's files into `dir` (created); returns their total bytes. */
export function writeHfDirectory(dir: string, files: Readonly<Record<string, Buffer>>): number {
  fs.mkdirSync(dir, { recursive: true });
  let bytes = 0;
  for (const [name, body] of Object.entries(files)) {
    fs.writeFileSync(path.join(dir, name), body);
    bytes += body.length;
  }
  return bytes;
}
