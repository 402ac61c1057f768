// Per-GPU memory of a training layout: model states by the ZeRO paper, activations by Korthikanti et al.

/** Bytes per parameter of mixed-precision Adam optimizer states: fp32 master weights, momentum and variance. */
export const ADAM_MIXED_PRECISION_K = 12;

export type ZeroStage = 0 | 1 | 2 | 3;

/**
 * Model-state bytes per GPU (fp16 parameters 2Ψ, fp16 gradients 2Ψ, optimizer states KΨ) under ZeRO stage 0–3 with
 * N_d data-parallel ranks — Rajbhandari et al. 2020, "ZeRO: Memory Optimizations Toward Training Trillion Parameter
 * Models", Figure 1: (2+2+K)Ψ; 2Ψ+2Ψ+KΨ/N_d; 2Ψ+(2+K)Ψ/N_d; (2+2+K)Ψ/N_d.
 */
export function zeroModelStateBytes(
  params: number,
  dataParallel: number,
  stage: ZeroStage,
  k = ADAM_MIXED_PRECISION_K,
) {
  const psi = params;
  const nd = dataParallel;
  switch (stage) {
    case 0:
      return (2 + 2 + k) * psi;
    case 1:
      return 2 * psi + 2 * psi + (k * psi) / nd;
    case 2:
      return 2 * psi + ((2 + k) * psi) / nd;
    case 3:
      return ((2 + 2 + k) * psi) / nd;
  }
}

/** A GPT-style decoder: the shape the Megatron formulas take. */
export interface TransformerShape {
  layers: number;
  hidden: number;
  heads: number;
  vocab: number;
  seq: number;
}

/**
 * Parameters of a GPT decoder, 12Lh² + 13Lh + (V + s)h: per layer the QKV, projection and 4h MLP weights (12h²) and
 * their biases and layer norms (13h), plus word and position embeddings — Narayanan et al. 2021, "Efficient
 * Large-Scale Language Model Training on GPU Clusters Using Megatron-LM", §5.1: P = 12lh²(1 + 13/12h + (V+s)/12lh).
 */
export function transformerParams(shape: TransformerShape): number {
  const { layers: L, hidden: h, vocab: V, seq: s } = shape;
  return 12 * L * h * h + 13 * L * h + (V + s) * h;
}

/**
 * Parameters held by the most loaded GPU: the first pipeline stage's layers and both embeddings, split over the
 * tensor-parallel ranks (as Megatron's theoretical_memory_usage.py counts its most loaded shard).
 */
export function paramsOnMostLoadedGpu(shape: TransformerShape, tensorParallel: number, pipelineParallel: number) {
  const { layers: L, hidden: h, vocab: V, seq: s } = shape;
  return ((L * (12 * h * h + 13 * h)) / pipelineParallel + (V + s) * h) / tensorParallel;
}

export type ActivationRecompute = 'none' | 'selective' | 'full';

export interface ActivationOptions {
  tensorParallel: number;
  pipelineParallel: number;
  /** Micro-batches per pipeline per step: with fewer than p, fewer are in flight on the first stage. */
  microBatches: number;
  /** Sequences per micro-batch (b). */
  microBatchSize: number;
  /** Megatron's sequence parallelism alongside tensor parallelism (splits the layer norms' and dropouts' share). */
  sequenceParallel: boolean;
  recompute: ActivationRecompute;
}

/**
 * Activation bytes of one transformer layer on one GPU for one micro-batch, 16-bit activations — Korthikanti et al.
 * 2022, "Reducing Activation Recomputation in Large Transformer Models", Table 2: sbh(34 + 5as/h) without
 * parallelism; sbh(10 + 24/t + 5as/ht) with tensor parallelism; sbh/t·(34 + 5as/h) with sequence parallelism too;
 * the 5as/h attention term is dropped by selective recomputation; full recomputation keeps only the layer input 2sbh.
 */
export function activationBytesPerLayer(shape: TransformerShape, opts: ActivationOptions): number {
  const { hidden: h, heads: a, seq: s } = shape;
  const t = opts.tensorParallel;
  const sbh = s * opts.microBatchSize * h;
  const attention = opts.recompute === 'selective' ? 0 : (5 * a * s) / h;
  if (opts.recompute === 'full') return (2 * sbh) / (opts.sequenceParallel ? t : 1);
  if (opts.sequenceParallel || t === 1) return (sbh / t) * (34 + attention);
  return sbh * (10 + 24 / t + attention / t);
}

/**
 * Peak activation bytes on the first pipeline stage, structured as Megatron's theoretical_memory_usage.py: with the
 * 1F1B schedule that stage holds min(p, m) micro-batches of L/p layers, i.e. L layers' worth scaled by min(1, m/p);
 * plus the embedding's token ids (8sb) and dropout (sbh) for those micro-batches; with one stage, also the output
 * layer and loss, 4sbh(1 + V/h). Full recomputation adds one layer's working activations during its recompute.
 */
export function activationBytesPerGpu(shape: TransformerShape, opts: ActivationOptions): number {
  const { layers: L, hidden: h, vocab: V, seq: s } = shape;
  const t = opts.tensorParallel;
  const p = opts.pipelineParallel;
  const b = opts.microBatchSize;
  const inFlight = p > 1 ? Math.min(1, opts.microBatches / p) : 1;
  let bytes = activationBytesPerLayer(shape, opts) * L * inFlight;
  bytes += ((8 * s * b + s * b * h) * p * inFlight) / t;
  if (p === 1) bytes += (4 * s * b * h * (1 + V / h)) / t;
  if (opts.recompute === 'full') bytes += activationBytesPerLayer(shape, { ...opts, recompute: 'none' });
  return bytes;
}

/**
 * Pipeline bubble: the idle fraction of a step, (p − 1)/(m + p − 1) for p stages and m micro-batches with GPipe or
 * 1F1B. The interleaved schedule with v model chunks per stage shrinks the bubble time v-fold (Narayanan et al.
 * 2021, §2.2), which as a fraction of the step is (p − 1)/(v·m + p − 1).
 */
export function pipelineBubble(stages: number, microBatches: number, chunks = 1): number {
  return (stages - 1) / (chunks * microBatches + stages - 1);
}
