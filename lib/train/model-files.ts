import { MalformedTrainerState } from './errors';
import { generateText, type GenerationOptionsInput } from './generate';
import {
  MlpKernel,
  mlpLayout,
  mlpNextTokenLogits,
  mlpTensors,
  type LanguageModel,
  type MlpShape,
  type NamedTensor,
} from './mlp-lm';
import { toSafetensors } from './safetensors';
import { readModelFiles, TRAINER_FILES, type TrainerStateJson } from './trainer';
import { Vocabulary } from './vocabulary';

/**
 * A trained model loaded from its files (as a checkpoint or the registry holds them) for inference only: scoring
 * text, generating, exporting. No training data or optimizer state is needed.
 */
export class TrainedModel implements LanguageModel {
  readonly shape: MlpShape;
  readonly vocabulary: Vocabulary;
  private readonly params: Float32Array;
  private kernel?: MlpKernel;

  constructor(
    readonly state: TrainerStateJson,
    vocabulary: Vocabulary,
    params: Float32Array,
  ) {
    this.shape = state.shape;
    this.vocabulary = vocabulary;
    this.params = params;
  }

  static fromFiles(files: Record<string, Buffer>): TrainedModel {
    const { state, vocabulary, weights } = readModelFiles(files);
    const parameters = mlpLayout(state.shape).parameters;
    if (weights.length !== parameters * 4)
      throw new MalformedTrainerState(
        `${TRAINER_FILES.weights} has ${weights.length} bytes, expected ${parameters * 4}`,
      );
    // Copied into a fresh, aligned buffer: Buffers from a pool may start at any offset.
    return new TrainedModel(state, vocabulary, new Float32Array(new Uint8Array(weights).buffer));
  }

  nextTokenLogits(context: ArrayLike<number>): Float64Array {
    return mlpNextTokenLogits(this.shape, this.params, context);
  }

  /** Mean cross-entropy (nats per token) and perplexity of `tokens`, as {@link Trainer.evaluate} computes them. */
  evaluate(
    tokens: Uint32Array,
    options: { maxTokens?: number } = {},
  ): { loss: number; perplexity: number; tokens: number } {
    const rows = this.vocabulary.encode(tokens);
    const C = this.shape.contextTokens;
    const end = Math.min(rows.length, C + (options.maxTokens ?? Infinity));
    const count = end - C;
    if (count <= 0) throw new RangeError(`${tokens.length} tokens leave nothing to predict after ${C} of context`);
    this.kernel ??= new MlpKernel(this.shape);
    const loss = this.kernel.positions(this.params, rows, C, end) / count;
    return { loss, perplexity: Math.exp(loss), tokens: count };
  }

  /** The weights as named, row-major tensors. */
  tensors(): NamedTensor[] {
    return mlpTensors(this.shape, this.params);
  }
}

/** The facts of a registered version that an export or a generation needs. */
export interface ModelIdentity {
  model: string;
  version: string;
  run: string;
  step: number;
  dataset: string;
  weightsSha256: string;
}

/**
 * A version's weights as a safetensors file. The metadata carries what a loader needs beside the tensors: the
 * architecture, the vocabulary (tokenizer id of each row; row 0 stands for unknown ids) and the lineage.
 */
export function exportSafetensors(identity: ModelIdentity, files: Record<string, Buffer>): Buffer {
  const model = TrainedModel.fromFiles(files);
  return toSafetensors(model.tensors(), {
    format: 'pt',
    architecture: 'flywheel-mlp-lm',
    shape: JSON.stringify(model.shape),
    vocabulary: JSON.stringify(Array.from(model.vocabulary.ids)),
    model: identity.model,
    version: identity.version,
    run: identity.run,
    step: String(identity.step),
    dataset: identity.dataset,
    weights_sha256: identity.weightsSha256,
  });
}

/** The tokenizer encoding a dataset manifest names in its spec, or cl100k_base. */
export function encodingOfSpec(spec: unknown): string {
  const encoding = (spec as { tokenizer?: { encoding?: string } } | undefined)?.tokenizer?.encoding;
  return encoding ?? 'cl100k_base';
}

/** Continues `prompt` with a registered model, decoding with the dataset's tokenizer encoding. */
export function generateFromFiles(
  files: Record<string, Buffer>,
  prompt: string,
  encoding: string,
  opts: GenerationOptionsInput,
): string {
  return generateText(TrainedModel.fromFiles(files), prompt, encoding, opts);
}
