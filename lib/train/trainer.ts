import { createHash } from 'node:crypto';
import { canonicalJson, specDigest } from '../contracts/digest';
import type { BatchSizes } from '../plan/deepspeed';
import { adamWStep, clipGradientNorm } from './adamw';
import { CheckpointMismatch, MalformedTrainerState, type StateDifference } from './errors';
import {
  decayMask,
  initializeMlp,
  MlpKernel,
  mlpNextTokenLogits,
  type LanguageModel,
  type MlpShape,
  mlpTensors,
  type NamedTensor,
} from './mlp-lm';
import { PackedSequences, type DataCursor } from './packed-sequences';
import { RankPool } from './rank-pool';
import { Xorshift128 } from './rng';
import { learningRateAt } from './schedule';
import { resolveTrainerSpec, type TrainerSpec, type TrainerSpecInput } from './spec';
import { Vocabulary } from './vocabulary';

export const TRAINER_STATE_FORMAT = 'flywheel-trainer/1';

/** The files of a complete trainer state, by name: what a checkpoint stores and `restore` takes back. */
export type TrainerFiles = Record<string, Buffer>;

/** state.json: everything but the big arrays, which travel as raw little-endian files beside it. */
export interface TrainerStateJson {
  format: typeof TRAINER_STATE_FORMAT;
  specDigest: string;
  spec: TrainerSpec;
  batch: BatchSizes;
  shape: MlpShape;
  parameters: number;
  /** Optimizer steps done; the learning-rate schedule's position. */
  step: number;
  learningRate: number;
  cursor: DataCursor;
  rng: number[];
  data: { tokens: number; sha256: string };
  vocabularySha256: string;
}

export interface StepReport {
  step: number;
  epoch: number;
  /** Mean cross-entropy (nats per token) of the step's batch, before its update. */
  loss: number;
  learningRate: number;
  /** Global gradient norm before clipping. */
  gradientNorm: number;
}

export interface TrainResult {
  step: number;
  loss: number;
  tokensPerSecond: number;
}

export interface Evaluation {
  loss: number;
  perplexity: number;
  /** Predicted positions the loss averages over. */
  tokens: number;
}

export type { NamedTensor };

const fileNames = { weights: 'weights.f32', m: 'adam_m.f32', v: 'adam_v.f32', vocab: 'vocab.u32', state: 'state.json' };

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
const bytesOf = (a: Float32Array | Uint32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const copyOut = (a: Float32Array | Uint32Array) => Buffer.from(bytesOf(a).slice());
const sharedFloat32 = (n: number) => new Float32Array(new SharedArrayBuffer(n * 4));

export interface TrainerOptions {
  /**
   * Compute each data-parallel rank on its own worker thread (default: in turn on this thread). Results are
   * bitwise the same either way: ranks own their gradient buffers and are reduced in rank order.
   */
  rankThreads?: boolean;
  /**
   * Fine-tuning: start from another trained model's state (its files, as {@link Trainer.serialize} writes them)
   * instead of random weights. Its vocabulary is kept, so the weights keep their meaning on the new data; the
   * optimizer moments and the schedule start fresh. The model shapes must agree.
   */
  initFrom?: TrainerFiles;
}

/**
 * The built-in trainer: an MLP language model over the ids present in its training tokens, AdamW with global-norm
 * clipping and a warm-up + cosine schedule, batches laid out with DeepSpeed's arithmetic. Each data-parallel rank
 * computes its gradient into its own buffer and the ranks are averaged in rank order, so the result does not
 * depend on timing: the same spec, tokens and seed give bitwise-identical weights, resumed or not.
 */
export class Trainer implements LanguageModel {
  readonly spec: TrainerSpec;
  readonly batch: BatchSizes;
  readonly shape: MlpShape;
  readonly specDigest: string;
  readonly vocabulary: Vocabulary;
  private readonly data: PackedSequences;
  private readonly dataSha256: string;
  private readonly params: Float32Array;
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private readonly grad: Float32Array;
  private readonly rankGrads: Float32Array[];
  private readonly kernels: MlpKernel[];
  private readonly decay: Uint8Array;
  private rng: Xorshift128;
  private stepsDone = 0;
  private cursor: DataCursor = { epoch: 0, stepInEpoch: 0 };
  private learningRate = 0;
  private readonly pool?: RankPool;
  private training = false;

  constructor(specInput: TrainerSpecInput, tokens: Uint32Array, options: TrainerOptions = {}) {
    const { spec, batch } = resolveTrainerSpec(specInput);
    this.spec = spec;
    this.batch = batch;
    this.specDigest = specDigest(spec);
    const base = options.initFrom ? readModelFiles(options.initFrom) : undefined;
    this.vocabulary = base?.vocabulary ?? Vocabulary.fromTokens(tokens, spec.model.maxVocab);
    this.shape = {
      vocabSize: this.vocabulary.size,
      contextTokens: spec.model.contextTokens,
      embeddingDim: spec.model.embeddingDim,
      hiddenDim: spec.model.hiddenDim,
    };
    this.dataSha256 = sha256(bytesOf(tokens));
    const encoded = this.vocabulary.encode(tokens);
    const rows = new Uint32Array(new SharedArrayBuffer(encoded.byteLength));
    rows.set(encoded);
    this.data = new PackedSequences(
      rows,
      spec.model.contextTokens,
      spec.sequenceTokens,
      batch.trainBatchSize,
      spec.seed,
    );
    this.rng = Xorshift128.fromSeed(spec.seed);
    const initial = initializeMlp(this.shape, this.rng);
    if (base) {
      const differences = (['contextTokens', 'embeddingDim', 'hiddenDim'] as const)
        .filter((key) => base.state.shape[key] !== this.shape[key])
        .map((key) => ({
          field: `shape.${key}`,
          checkpoint: String(base.state.shape[key]),
          trainer: String(this.shape[key]),
        }));
      if (differences.length) throw new CheckpointMismatch(differences);
      if (base.weights.length !== initial.length * 4)
        throw new MalformedTrainerState(
          `${fileNames.weights} of the base model has ${base.weights.length} bytes, expected ${initial.length * 4}`,
        );
      new Uint8Array(initial.buffer, initial.byteOffset, initial.byteLength).set(base.weights);
    }
    const n = initial.length;
    this.params = sharedFloat32(n);
    this.params.set(initial);
    this.m = new Float32Array(n);
    this.v = new Float32Array(n);
    this.grad = new Float32Array(n);
    this.rankGrads = Array.from({ length: spec.dataParallelRanks }, () => sharedFloat32(n));
    this.kernels = Array.from({ length: spec.dataParallelRanks }, () => new MlpKernel(this.shape));
    this.decay = decayMask(this.shape);
    if (options.rankThreads)
      this.pool = new RankPool(
        this.shape,
        this.params.buffer as SharedArrayBuffer,
        rows.buffer as SharedArrayBuffer,
        this.rankGrads.map((g) => g.buffer as SharedArrayBuffer),
      );
  }

  get step(): number {
    return this.stepsDone;
  }

  get epoch(): number {
    return this.cursor.epoch;
  }

  get parameterCount(): number {
    return this.params.length;
  }

  /** Predicted tokens per optimizer step. */
  get tokensPerStep(): number {
    return this.batch.trainBatchSize * this.spec.sequenceTokens;
  }

  get stepsPerEpoch(): number {
    return this.data.stepsPerEpoch;
  }

  /** Runs `n` optimizer steps, awaiting `onStep` after each (heartbeats, cancellation checks go there). */
  async trainSteps(n: number, onStep?: (report: StepReport) => void | Promise<void>): Promise<TrainResult> {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`trainSteps needs a whole number of steps, got ${n}`);
    if (this.training) throw new Error('trainSteps is already running on this trainer; await it before the next call');
    this.training = true;
    try {
      return await this.runSteps(n, onStep);
    } finally {
      this.training = false;
    }
  }

  private async runSteps(n: number, onStep?: (report: StepReport) => void | Promise<void>): Promise<TrainResult> {
    const started = performance.now();
    let loss = NaN;
    for (let i = 0; i < n; i++) {
      const report = this.pool ? await this.threadedStep(this.pool) : this.trainStep();
      loss = report.loss;
      if (onStep) await onStep(report);
      else if (i % 8 === 7) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const seconds = (performance.now() - started) / 1000;
    return { step: this.stepsDone, loss, tokensPerSecond: seconds > 0 ? (n * this.tokensPerStep) / seconds : 0 };
  }

  /** One optimizer step over one global batch, every rank in turn on this thread. */
  trainStep(): StepReport {
    const S = this.spec.sequenceTokens;
    const scale = this.lossScale();
    const losses = this.rankGrads.map((g, r) => {
      g.fill(0);
      let loss = 0;
      for (const start of this.rankStarts(r))
        loss += this.kernels[r].positions(this.params, this.data.rows, start, start + S, g, scale);
      return loss;
    });
    return this.applyStep(losses);
  }

  /** Stops the rank threads, if any. */
  async close(): Promise<void> {
    await this.pool?.close();
  }

  private async threadedStep(pool: RankPool): Promise<StepReport> {
    const sequenceTokens = this.spec.sequenceTokens;
    const scale = this.lossScale();
    const losses = await pool.run(
      this.rankGrads.map((_, r) => ({ kind: 'gradient', starts: this.rankStarts(r), sequenceTokens, scale })),
    );
    return this.applyStep(losses);
  }

  // Each micro-batch's loss is a mean over its tokens, divided by the accumulation steps (as DeepSpeed scales it);
  // the ranks' gradients are then averaged.
  private lossScale(): number {
    return 1 / (this.batch.microBatchSizePerGpu * this.spec.sequenceTokens * this.batch.gradientAccumulationSteps);
  }

  /** Where rank r's sequences of this step start: micro-batch by micro-batch, as the global batch is laid out. */
  private rankStarts(r: number): number[] {
    const { microBatchSizePerGpu: micro, gradientAccumulationSteps: accumulation } = this.batch;
    const ranks = this.spec.dataParallelRanks;
    const starts: number[] = [];
    for (let a = 0; a < accumulation; a++)
      for (let j = 0; j < micro; j++) starts.push(this.data.sequenceStart(this.cursor, (a * ranks + r) * micro + j));
    return starts;
  }

  /** Reduce, clip, update, advance: the same code whichever way the ranks ran. */
  private applyStep(rankLosses: number[]): StepReport {
    let lossSum = 0;
    for (const loss of rankLosses) lossSum += loss;
    this.allReduceMean();
    const gradientNorm = clipGradientNorm(this.grad, this.spec.gradientClipping);
    const lr = learningRateAt(this.stepsDone, { lr: this.spec.optimizer.lr, ...this.spec.schedule });
    adamWStep(this.params, this.grad, this.m, this.v, this.decay, this.stepsDone + 1, lr, this.spec.optimizer);
    this.learningRate = lr;
    const epoch = this.cursor.epoch;
    this.stepsDone += 1;
    this.cursor = this.data.next(this.cursor);
    return { step: this.stepsDone, epoch, loss: lossSum / this.tokensPerStep, learningRate: lr, gradientNorm };
  }

  /** Mean of the ranks' gradients, summed in rank order whatever order they finished in. */
  private allReduceMean(): void {
    const grads = this.rankGrads;
    const out = this.grad;
    const ranks = grads.length;
    if (ranks === 1) {
      out.set(grads[0]);
      return;
    }
    for (let i = 0; i < out.length; i++) {
      let s = 0;
      for (let r = 0; r < ranks; r++) s += grads[r][i];
      out[i] = s / ranks;
    }
  }

  /**
   * Mean cross-entropy and perplexity of predicting each token of `tokens` from the ones before it (the first
   * `contextTokens` only serve as context). Ids the model does not know count as its unknown row.
   */
  evaluate(tokens: Uint32Array, options: { maxTokens?: number } = {}): Evaluation {
    const rows = this.vocabulary.encode(tokens);
    const C = this.shape.contextTokens;
    const end = Math.min(rows.length, C + (options.maxTokens ?? Infinity));
    const count = end - C;
    if (count <= 0)
      throw new RangeError(`validation data of ${tokens.length} tokens has nothing to predict after ${C} of context`);
    const loss = this.kernels[0].positions(this.params, rows, C, end) / count;
    return { loss, perplexity: Math.exp(loss), tokens: count };
  }

  /** Logits over vocabulary rows of the row after `context` (the last `contextTokens` rows), current weights. */
  nextTokenLogits(context: ArrayLike<number>): Float64Array {
    return mlpNextTokenLogits(this.shape, this.params, context);
  }

  /** The weights as named tensors (copies). */
  tensors(): NamedTensor[] {
    return mlpTensors(this.shape, this.params);
  }

  stateJson(): TrainerStateJson {
    return {
      format: TRAINER_STATE_FORMAT,
      specDigest: this.specDigest,
      spec: this.spec,
      batch: this.batch,
      shape: this.shape,
      parameters: this.params.length,
      step: this.stepsDone,
      learningRate: this.learningRate,
      cursor: { ...this.cursor },
      rng: this.rng.state,
      data: { tokens: this.data.rows.length, sha256: this.dataSha256 },
      vocabularySha256: this.vocabulary.digest(),
    };
  }

  /** The complete state as files: weights, AdamW moments, vocabulary, and state.json (copies, safe to keep). */
  serialize(): TrainerFiles {
    return {
      [fileNames.weights]: copyOut(this.params),
      [fileNames.m]: copyOut(this.m),
      [fileNames.v]: copyOut(this.v),
      [fileNames.vocab]: copyOut(this.vocabulary.ids),
      [fileNames.state]: Buffer.from(JSON.stringify(this.stateJson(), null, 2) + '\n'),
    };
  }

  /**
   * Continues from a serialized state. Refuses (CheckpointMismatch, naming every difference) a state of another
   * model shape, vocabulary, spec or training data; MalformedTrainerState for missing or truncated files.
   */
  restore(files: TrainerFiles): void {
    const state = parseStateJson(files[fileNames.state]);
    const differences = this.differencesFrom(state);
    if (differences.length) throw new CheckpointMismatch(differences);
    const n = this.params.length;
    const load = (name: string, into: Float32Array | Uint32Array, expected: number) => {
      const bytes = files[name];
      if (!bytes) throw new MalformedTrainerState(`trainer state has no ${name}`);
      if (bytes.length !== expected * 4)
        throw new MalformedTrainerState(
          `${name} has ${bytes.length} bytes, expected ${expected * 4} (${expected} × 4)`,
        );
      new Uint8Array(into.buffer, into.byteOffset, into.byteLength).set(bytes);
    };
    const ids = new Uint32Array(this.vocabulary.ids.length);
    load(fileNames.vocab, ids, ids.length);
    if (sha256(bytesOf(ids)) !== state.vocabularySha256)
      throw new MalformedTrainerState(`${fileNames.vocab} does not match the vocabulary digest in ${fileNames.state}`);
    load(fileNames.weights, this.params, n);
    load(fileNames.m, this.m, n);
    load(fileNames.v, this.v, n);
    this.stepsDone = state.step;
    this.learningRate = state.learningRate;
    this.cursor = { ...state.cursor };
    this.rng = new Xorshift128(state.rng);
  }

  private differencesFrom(state: TrainerStateJson): StateDifference[] {
    const out: StateDifference[] = [];
    const mine = this.stateJson();
    for (const key of ['vocabSize', 'contextTokens', 'embeddingDim', 'hiddenDim'] as const)
      if (state.shape[key] !== mine.shape[key])
        out.push({ field: `shape.${key}`, checkpoint: String(state.shape[key]), trainer: String(mine.shape[key]) });
    if (!out.length && state.vocabularySha256 !== mine.vocabularySha256)
      out.push({ field: 'vocabulary', checkpoint: state.vocabularySha256, trainer: mine.vocabularySha256 });
    const shapeFields = new Set(['model.contextTokens', 'model.embeddingDim', 'model.hiddenDim']);
    const theirs = flatten(state.spec);
    const ours = flatten(mine.spec);
    for (const field of [...new Set([...Object.keys(theirs), ...Object.keys(ours)])].sort())
      if (!shapeFields.has(field) && theirs[field] !== ours[field])
        out.push({ field: `spec.${field}`, checkpoint: theirs[field] ?? 'unset', trainer: ours[field] ?? 'unset' });
    if (state.data.sha256 !== mine.data.sha256)
      out.push({
        field: 'data',
        checkpoint: `${state.data.tokens} tokens, sha256 ${state.data.sha256}`,
        trainer: `${mine.data.tokens} tokens, sha256 ${mine.data.sha256}`,
      });
    return out;
  }
}

/** Leaf values of a JSON object by dotted path, as canonical JSON text. */
function flatten(value: unknown, prefix = '', out: Record<string, string> = {}): Record<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value)) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else if (value !== undefined) out[prefix] = canonicalJson(value);
  return out;
}

function parseStateJson(bytes: Buffer | undefined): TrainerStateJson {
  if (!bytes) throw new MalformedTrainerState(`trainer state has no ${fileNames.state}`);
  let state: TrainerStateJson;
  try {
    state = JSON.parse(bytes.toString('utf8')) as TrainerStateJson;
  } catch (error) {
    throw new MalformedTrainerState(`${fileNames.state} is not JSON: ${(error as Error).message}`);
  }
  if (state?.format !== TRAINER_STATE_FORMAT)
    throw new MalformedTrainerState(
      `${fileNames.state} has format ${JSON.stringify(state?.format)}, expected ${TRAINER_STATE_FORMAT}`,
    );
  return state;
}

/** The state, vocabulary and weights of a serialized model, the vocabulary checked against its state.json. */
export function readModelFiles(files: TrainerFiles): {
  state: TrainerStateJson;
  vocabulary: Vocabulary;
  weights: Buffer;
} {
  const state = parseStateJson(files[fileNames.state]);
  const vocabBytes = files[fileNames.vocab];
  const weights = files[fileNames.weights];
  if (!vocabBytes || !weights) throw new MalformedTrainerState('the model files lack the vocabulary or the weights');
  if (vocabBytes.length !== (state.shape.vocabSize - 1) * 4)
    throw new MalformedTrainerState(
      `${fileNames.vocab} has ${vocabBytes.length} bytes, expected ${(state.shape.vocabSize - 1) * 4}`,
    );
  const ids = new Uint32Array(state.shape.vocabSize - 1);
  new Uint8Array(ids.buffer).set(vocabBytes);
  if (sha256(bytesOf(ids)) !== state.vocabularySha256)
    throw new MalformedTrainerState(`${fileNames.vocab} does not match the vocabulary digest in ${fileNames.state}`);
  return { state, vocabulary: new Vocabulary(ids), weights };
}

/** A trainer for `spec` over a token stream (e.g. {@link tokensFromShards} of the train split's shards). */
/** The digest a trainer built from this spec records in its checkpoints (known before the trainer is built). */
export function trainerSpecDigest(specInput: TrainerSpecInput): string {
  return specDigest(resolveTrainerSpec(specInput).spec);
}

export function createTrainer(spec: TrainerSpecInput, tokenSource: Uint32Array, options?: TrainerOptions): Trainer {
  return new Trainer(spec, tokenSource, options);
}

export const TRAINER_FILES = fileNames;
