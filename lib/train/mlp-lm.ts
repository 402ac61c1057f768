import type { Xorshift128 } from './rng';
import type { Vocabulary } from './vocabulary';

/** A Bengio-style neural language model: the previous `contextTokens` rows embedded, one tanh layer, a softmax. */
export interface MlpShape {
  vocabSize: number;
  contextTokens: number;
  embeddingDim: number;
  hiddenDim: number;
}

/** Where each tensor lives in the flat parameter vector (and the gradient and optimizer moments, same layout). */
export interface MlpLayout {
  embedding: number;
  hiddenWeight: number;
  hiddenBias: number;
  outputWeight: number;
  outputBias: number;
  parameters: number;
}

export function mlpLayout(shape: MlpShape): MlpLayout {
  const { vocabSize: V, contextTokens: C, embeddingDim: D, hiddenDim: H } = shape;
  const embedding = 0;
  const hiddenWeight = embedding + V * D;
  const hiddenBias = hiddenWeight + H * C * D;
  const outputWeight = hiddenBias + H;
  const outputBias = outputWeight + V * H;
  return { embedding, hiddenWeight, hiddenBias, outputWeight, outputBias, parameters: outputBias + V };
}

/**
 * Floating-point operations to train on one predicted token (forward, then backward at twice the forward's
 * multiply-adds), counting a multiply-add as 2: the numerator of the trainer's FLOP/s against a raw matmul's.
 */
export function mlpTrainingFlopsPerToken(shape: MlpShape): number {
  const { vocabSize: V, contextTokens: C, embeddingDim: D, hiddenDim: H } = shape;
  return 3 * 2 * (C * D * H + H * V);
}

/** 1 where AdamW's weight decay applies (embedding and weight matrices), 0 for biases. */
export function decayMask(shape: MlpShape): Uint8Array {
  const l = mlpLayout(shape);
  const mask = new Uint8Array(l.parameters).fill(1);
  mask.fill(0, l.hiddenBias, l.outputWeight);
  mask.fill(0, l.outputBias, l.parameters);
  return mask;
}

/** Uniform initialization scaled by fan-in (LeCun); biases zero. Draws from `rng` in parameter order. */
export function initializeMlp(shape: MlpShape, rng: Xorshift128): Float32Array {
  const l = mlpLayout(shape);
  const params = new Float32Array(l.parameters);
  const fill = (from: number, to: number, limit: number) => {
    for (let i = from; i < to; i++) params[i] = (2 * rng.nextFloat() - 1) * limit;
  };
  fill(l.embedding, l.hiddenWeight, 1);
  fill(l.hiddenWeight, l.hiddenBias, Math.sqrt(3 / (shape.contextTokens * shape.embeddingDim)));
  fill(l.outputWeight, l.outputBias, Math.sqrt(3 / shape.hiddenDim));
  return params;
}

/** One named tensor of the model, row-major (for export formats such as safetensors). */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** The weights of a flat parameter vector as named tensors (copies). */
export function mlpTensors(shape: MlpShape, params: Float32Array): NamedTensor[] {
  const { vocabSize: V, contextTokens: C, embeddingDim: D, hiddenDim: H } = shape;
  const l = mlpLayout(shape);
  const t = (name: string, dims: number[], from: number, to: number) => ({
    name,
    shape: dims,
    data: params.slice(from, to),
  });
  return [
    t('embedding.weight', [V, D], l.embedding, l.hiddenWeight),
    t('hidden.weight', [H, C * D], l.hiddenWeight, l.hiddenBias),
    t('hidden.bias', [H], l.hiddenBias, l.outputWeight),
    t('output.weight', [V, H], l.outputWeight, l.outputBias),
    t('output.bias', [V], l.outputBias, l.parameters),
  ];
}

/** A trained model as generation sees it: its vocabulary and the logits of the row that follows a context. */
export interface LanguageModel {
  readonly shape: MlpShape;
  readonly vocabulary: Vocabulary;
  /** Logits over vocabulary rows (row 0 is the unknown id) of the row after the last `contextTokens` rows. */
  nextTokenLogits(context: ArrayLike<number>): Float64Array;
}

/**
 * The forward pass for one position: logits of the row after `context` (exactly `contextTokens` rows), computed in
 * the same order as the kernel's so they equal the logits training and evaluation see.
 */
export function mlpNextTokenLogits(shape: MlpShape, params: Float32Array, context: ArrayLike<number>): Float64Array {
  const { contextTokens: C, embeddingDim: D, hiddenDim: H, vocabSize: V } = shape;
  if (context.length !== C) throw new RangeError(`the model reads ${C} rows of context, got ${context.length}`);
  const L = mlpLayout(shape);
  const CD = C * D;
  const x = new Float64Array(CD);
  for (let c = 0; c < C; c++) {
    const r = context[c];
    if (!Number.isInteger(r) || r < 0 || r >= V) throw new RangeError(`context row ${r} is not a row of ${V}`);
    for (let d = 0; d < D; d++) x[c * D + d] = params[L.embedding + r * D + d];
  }
  const row = new Float64Array(Math.max(CD, H));
  const h = new Float64Array(H);
  for (let j = 0; j < H; j++) {
    const w = L.hiddenWeight + j * CD;
    for (let k = 0; k < CD; k++) row[k] = params[w + k];
    h[j] = Math.tanh(params[L.hiddenBias + j] + dot(row, x, 0, CD));
  }
  const logits = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    const w = L.outputWeight + v * H;
    for (let j = 0; j < H; j++) row[j] = params[w + j];
    logits[v] = params[L.outputBias + v] + dot(row, h, 0, H);
  }
  return logits;
}

/**
 * Forward and backward passes over blocks of positions of a row stream, with buffers allocated once per instance
 * (one per data-parallel rank). A block of positions goes through each layer together, so every weight row is
 * read once per block and its gradient written once per block. Activations are double precision; parameters
 * and gradients float32.
 */
export class MlpKernel {
  readonly layout: MlpLayout;
  private readonly x: Float64Array;
  private readonly h: Float64Array;
  private readonly probs: Float64Array;
  private readonly dh: Float64Array;
  private readonly row: Float64Array;
  private readonly acc: Float64Array;
  private readonly losses: Float64Array;

  constructor(
    readonly shape: MlpShape,
    /** Positions per block: buffers grow with it, per-row costs shrink. */
    readonly block = 64,
  ) {
    this.layout = mlpLayout(shape);
    const CD = shape.contextTokens * shape.embeddingDim;
    this.x = new Float64Array(block * CD);
    this.h = new Float64Array(block * shape.hiddenDim);
    this.probs = new Float64Array(block * shape.vocabSize);
    this.dh = new Float64Array(block * shape.hiddenDim);
    this.row = new Float64Array(Math.max(CD, shape.hiddenDim));
    this.acc = new Float64Array(Math.max(CD, shape.hiddenDim));
    this.losses = new Float64Array(block);
  }

  /**
   * Cross-entropy of predicting `rows[t]` from `rows[t - C .. t - 1]` for t in [from, to), summed. With `grad`,
   * adds `scale` × the gradient of that sum into it.
   */
  positions(params: Float32Array, rows: Uint32Array, from: number, to: number, grad?: Float32Array, scale = 1): number {
    let total = 0;
    for (let t = from; t < to; t += this.block)
      total += this.forwardBackward(params, rows, t, Math.min(this.block, to - t), grad, scale);
    return total;
  }

  private forwardBackward(
    params: Float32Array,
    rows: Uint32Array,
    from: number,
    n: number,
    grad: Float32Array | undefined,
    scale: number,
  ): number {
    const { contextTokens: C, embeddingDim: D, hiddenDim: H, vocabSize: V } = this.shape;
    const L = this.layout;
    const { x, h, probs, dh, row, acc, losses } = this;
    const CD = C * D;
    for (let p = 0; p < n; p++)
      for (let c = 0; c < C; c++) {
        const e = L.embedding + rows[from + p - C + c] * D;
        const o = p * CD + c * D;
        for (let d = 0; d < D; d++) x[o + d] = params[e + d];
      }
    for (let j = 0; j < H; j++) {
      const w = L.hiddenWeight + j * CD;
      for (let k = 0; k < CD; k++) row[k] = params[w + k];
      const b = params[L.hiddenBias + j];
      for (let p = 0; p < n; p++) h[p * H + j] = Math.tanh(b + dot(row, x, p * CD, CD));
    }
    for (let v = 0; v < V; v++) {
      const w = L.outputWeight + v * H;
      for (let j = 0; j < H; j++) row[j] = params[w + j];
      const b = params[L.outputBias + v];
      for (let p = 0; p < n; p++) probs[p * V + v] = b + dot(row, h, p * H, H);
    }
    let total = 0;
    for (let p = 0; p < n; p++) {
      const o = p * V;
      let max = -Infinity;
      for (let v = 0; v < V; v++) if (probs[o + v] > max) max = probs[o + v];
      let sum = 0;
      for (let v = 0; v < V; v++) {
        const e = Math.exp(probs[o + v] - max);
        probs[o + v] = e;
        sum += e;
      }
      const target = rows[from + p];
      losses[p] = Math.log(sum) - Math.log(probs[o + target]);
      total += losses[p];
      // Softmax cross-entropy: d loss / d logit = p - onehot(target), scaled here once.
      if (grad) {
        const inv = scale / sum;
        for (let v = 0; v < V; v++) probs[o + v] *= inv;
        probs[o + target] -= scale;
      }
    }
    if (!grad) return total;

    dh.fill(0, 0, n * H);
    for (let v = 0; v < V; v++) {
      const w = L.outputWeight + v * H;
      for (let j = 0; j < H; j++) {
        row[j] = params[w + j];
        acc[j] = 0;
      }
      let bias = 0;
      for (let p = 0; p < n; p++) {
        const d = probs[p * V + v];
        bias += d;
        const o = p * H;
        let j = 0;
        for (; j + 3 < H; j += 4) {
          acc[j] += d * h[o + j];
          acc[j + 1] += d * h[o + j + 1];
          acc[j + 2] += d * h[o + j + 2];
          acc[j + 3] += d * h[o + j + 3];
          dh[o + j] += row[j] * d;
          dh[o + j + 1] += row[j + 1] * d;
          dh[o + j + 2] += row[j + 2] * d;
          dh[o + j + 3] += row[j + 3] * d;
        }
        for (; j < H; j++) {
          acc[j] += d * h[o + j];
          dh[o + j] += row[j] * d;
        }
      }
      grad[L.outputBias + v] += bias;
      for (let j = 0; j < H; j++) grad[w + j] += acc[j];
    }
    // Through tanh: dh ← dh · (1 − h²), in place.
    for (let i = 0; i < n * H; i++) dh[i] *= 1 - h[i] * h[i];
    // x's gradient goes straight into the embedding rows, so x's buffer is reused for it after the weight pass.
    for (let j = 0; j < H; j++) {
      const w = L.hiddenWeight + j * CD;
      for (let k = 0; k < CD; k++) acc[k] = 0;
      let bias = 0;
      for (let p = 0; p < n; p++) {
        const d = dh[p * H + j];
        bias += d;
        const o = p * CD;
        for (let k = 0; k < CD; k++) acc[k] += d * x[o + k];
      }
      grad[L.hiddenBias + j] += bias;
      for (let k = 0; k < CD; k++) grad[w + k] += acc[k];
    }
    x.fill(0, 0, n * CD);
    for (let j = 0; j < H; j++) {
      const w = L.hiddenWeight + j * CD;
      for (let k = 0; k < CD; k++) row[k] = params[w + k];
      for (let p = 0; p < n; p++) {
        const d = dh[p * H + j];
        const o = p * CD;
        for (let k = 0; k < CD; k++) x[o + k] += row[k] * d;
      }
    }
    for (let p = 0; p < n; p++)
      for (let c = 0; c < C; c++) {
        const e = L.embedding + rows[from + p - C + c] * D;
        const o = p * CD + c * D;
        for (let d = 0; d < D; d++) grad[e + d] += x[o + d];
      }
    return total;
  }
}

/** a[0..n) · b[o..o+n), four partial sums (V8 does not vectorize; this halves the loop's dependency chain). */
export function dot(a: Float64Array, b: Float64Array, o: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let k = 0;
  for (; k + 3 < n; k += 4) {
    s0 += a[k] * b[o + k];
    s1 += a[k + 1] * b[o + k + 1];
    s2 += a[k + 2] * b[o + k + 2];
    s3 += a[k + 3] * b[o + k + 3];
  }
  for (; k < n; k++) s0 += a[k] * b[o + k];
  return s0 + s1 + (s2 + s3);
}
