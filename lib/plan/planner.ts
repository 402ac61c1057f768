import { z } from 'zod';
import { parseSpec } from '../contracts/invalid-spec';
import {
  dataParallelBytes,
  layoutLinks,
  leg,
  pipelineBytesPerMicroBatch,
  tensorParallelBytesPerMicroBatch,
  type CommLeg,
  type Interconnect,
  type Link,
} from './communication';
import { buildDeepSpeedConfig, type DeepSpeedConfig } from './deepspeed';
import {
  activationBytesPerGpu,
  paramsOnMostLoadedGpu,
  pipelineBubble,
  transformerParams,
  zeroModelStateBytes,
  type TransformerShape,
  type ZeroStage,
} from './memory';

const GiB = 2 ** 30;
const DEFAULT_MICRO_BATCHES = 8;
const SHAPE_FIELDS = ['layers', 'hidden', 'heads', 'vocab', 'seq'] as const;

const count = (what: string) => z.number().int().min(1).describe(what);

/** What to plan for: a model (its size, or its shape), the GPUs and how a step is batched. */
export const PlanRequest = z
  .object({
    model: z
      .object({
        params: z.number().positive().optional().describe('parameters, when the shape is unknown'),
        layers: count('transformer layers').optional(),
        hidden: count('hidden size').optional(),
        heads: count('attention heads').optional(),
        vocab: count('vocabulary size').optional(),
        seq: count('sequence length in tokens').optional(),
      })
      .strict()
      .superRefine((m, ctx) => {
        const present = SHAPE_FIELDS.filter((f) => m[f] !== undefined);
        if (m.params !== undefined && present.length)
          ctx.addIssue({ code: 'custom', message: 'give either params or the shape (layers, hidden, ...), not both' });
        else if (m.params === undefined && present.length < SHAPE_FIELDS.length)
          ctx.addIssue({
            code: 'custom',
            message: present.length
              ? `the shape also needs ${SHAPE_FIELDS.filter((f) => m[f] === undefined).join(', ')}`
              : 'give params, or layers, hidden, heads, vocab and seq',
          });
        else if (m.hidden !== undefined && m.heads !== undefined && m.hidden % m.heads !== 0)
          ctx.addIssue({
            code: 'custom',
            path: ['heads'],
            message: `${m.heads} heads do not divide the hidden size ${m.hidden}`,
          });
      }),
    gpus: count('GPUs in the job'),
    gpuMemGiB: z.number().positive().describe('memory of one GPU, GiB'),
    gpusPerNode: count('GPUs that share NVLink in one machine').default(8),
    microBatches: count(`micro-batches per pipeline per step (default ${DEFAULT_MICRO_BATCHES})`).optional(),
    microBatchSize: count('sequences per micro-batch').default(1),
    globalBatch: count('sequences per step; each plan then gets globalBatch / (microBatchSize × DP) micro-batches')
      .optional()
      .describe('instead of microBatches'),
    sequenceParallel: z.boolean().default(true).describe("Megatron's sequence parallelism with tensor parallelism"),
    recompute: z.enum(['none', 'selective', 'full']).default('none').describe('activation recomputation'),
    gpuPeakTflops: z.number().positive().default(989).describe('dense 16-bit peak; 989 = H100 SXM BF16'),
    computeEfficiency: z.number().positive().max(1).default(0.5).describe('achieved fraction of the peak'),
    nvlinkGBps: z.number().positive().default(900).describe('NVLink bandwidth per GPU inside a node, GB/s'),
    interNodeGbps: z.number().positive().default(400).describe('InfiniBand bandwidth per GPU between nodes, Gb/s'),
  })
  .strict()
  .superRefine((r, ctx) => {
    if (r.microBatches !== undefined && r.globalBatch !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['globalBatch'],
        message: 'give microBatches or globalBatch, not both',
      });
  });

export type PlanRequest = z.infer<typeof PlanRequest>;
export type PlanRequestInput = z.input<typeof PlanRequest>;

export interface PlanComm {
  dataParallel: CommLeg;
  tensorParallel: CommLeg;
  pipeline: CommLeg;
  bytes: number;
  seconds: number;
}

/** Estimated time of one step; absent when only the parameter count is known. */
export interface PlanTime {
  /** Pure compute of the step on one GPU, bubble excluded. */
  computeSeconds: number;
  stepSeconds: number;
  tokensPerSecond: number;
  /** The ranking key: step time over tokens per step, comparable across plans with different global batches. */
  secondsPerToken: number;
}

/** One DP×TP×PP layout with one ZeRO stage, and what it costs per GPU. */
export interface ParallelPlan {
  tensorParallel: number;
  pipelineParallel: number;
  dataParallel: number;
  zeroStage: ZeroStage;
  microBatches: number;
  microBatchSize: number;
  globalBatch: number;
  /** Parameters on the most loaded GPU (first pipeline stage, one tensor-parallel slice). */
  paramsPerGpu: number;
  memory: {
    modelStatesBytes: number;
    /** Absent when only the parameter count is known. */
    activationBytes: number | null;
    totalBytes: number;
    fits: boolean;
  };
  bubble: number;
  comm: PlanComm;
  time: PlanTime | null;
}

/** A layout the rules refuse, and the rule. */
export interface RejectedLayout {
  tensorParallel: number;
  pipelineParallel: number;
  zeroStage?: ZeroStage;
  reason: string;
}

export interface PlanReport {
  model: { params: number; shape: TransformerShape | null };
  request: PlanRequest;
  /** Every valid plan, best first: plans that fit before plans that do not. */
  plans: ParallelPlan[];
  /** The first plan, when it fits. */
  recommended: ParallelPlan | null;
  rejected: RejectedLayout[];
  /** What the estimates assume, for the reader of the output. */
  assumptions: string[];
}

const divisors = (n: number) => {
  const out: number[] = [];
  for (let i = 1; i <= n; i++) if (n % i === 0) out.push(i);
  return out;
};

/** Training FLOPs per sequence: Narayanan et al. 2021 eq. (3), 72·s·L·h²(1 + s/6h + V/16Lh) without recomputation. */
export function trainingFlopsPerSequence(shape: TransformerShape, recompute: PlanRequest['recompute']): number {
  const { layers: L, hidden: h, vocab: V, seq: s } = shape;
  const passes = recompute === 'full' ? 96 : 72; // a full recompute repeats the forward: 4 passes instead of 3
  const flops = passes * s * L * h * h * (1 + s / (6 * h) + V / (16 * L * h));
  // Selective recompute repeats only the attention core's forward: 4s²h per layer (QKᵀ and attention·V).
  return recompute === 'selective' ? flops + 4 * s * s * h * L : flops;
}

interface Layout {
  t: number;
  p: number;
  d: number;
  m: number;
}

function evaluate(req: PlanRequest, shape: TransformerShape | null, params: number, lay: Layout, stage: ZeroStage) {
  const { t, p, d, m } = lay;
  const b = req.microBatchSize;
  const net: Interconnect = {
    gpusPerNode: req.gpusPerNode,
    nvlinkBytesPerSecond: req.nvlinkGBps * 1e9,
    interNodeBytesPerSecond: (req.interNodeGbps * 1e9) / 8,
  };
  const paramsPerGpu = shape ? paramsOnMostLoadedGpu(shape, t, p) : params / (t * p);
  const modelStatesBytes = zeroModelStateBytes(paramsPerGpu, d, stage);
  const activationBytes = shape
    ? activationBytesPerGpu(shape, {
        tensorParallel: t,
        pipelineParallel: p,
        microBatches: m,
        microBatchSize: b,
        sequenceParallel: req.sequenceParallel,
        recompute: req.recompute,
      })
    : null;
  const totalBytes = modelStatesBytes + (activationBytes ?? 0);
  const links: { tensorParallel: Link; dataParallel: Link; pipeline: Link } = layoutLinks(t, d, p, req.gpusPerNode);
  const dp = leg(d > 1 ? dataParallelBytes(paramsPerGpu, d, stage, m) : 0, links.dataParallel, net);
  const activationElements = shape ? shape.seq * b * shape.hidden : 0;
  const tpPerMicro =
    shape && t > 1
      ? tensorParallelBytesPerMicroBatch(shape.layers / p, activationElements, t, req.recompute === 'full')
      : 0;
  const ppPerMicro = shape && p > 1 ? pipelineBytesPerMicroBatch(activationElements, t) : 0;
  const tp = leg(tpPerMicro * m, links.tensorParallel, net);
  const pp = leg(ppPerMicro * m, links.pipeline, net);
  const comm: PlanComm = {
    dataParallel: dp,
    tensorParallel: tp,
    pipeline: pp,
    bytes: dp.bytes + tp.bytes + pp.bytes,
    seconds: dp.seconds + tp.seconds + pp.seconds,
  };
  let time: PlanTime | null = null;
  if (shape) {
    const flopsPerSecond = req.gpuPeakTflops * 1e12 * req.computeEfficiency;
    const computePerMicroStage = (trainingFlopsPerSequence(shape, req.recompute) * b) / (t * p) / flopsPerSecond;
    // One pipeline slot holds a micro-batch's compute and its tensor- and pipeline-parallel transfers; 1F1B runs
    // m + p − 1 slots. Data-parallel traffic is added unoverlapped: an upper bound.
    const slot = computePerMicroStage + tp.seconds / m + pp.seconds / m;
    const stepSeconds = (m + p - 1) * slot + dp.seconds;
    const tokens = b * m * d * shape.seq;
    time = {
      computeSeconds: computePerMicroStage * m,
      stepSeconds,
      tokensPerSecond: tokens / stepSeconds,
      secondsPerToken: stepSeconds / tokens,
    };
  }
  return {
    tensorParallel: t,
    pipelineParallel: p,
    dataParallel: d,
    zeroStage: stage,
    microBatches: m,
    microBatchSize: b,
    globalBatch: b * m * d,
    paramsPerGpu,
    memory: { modelStatesBytes, activationBytes, totalBytes, fits: totalBytes <= req.gpuMemGiB * GiB },
    bubble: pipelineBubble(p, m),
    comm,
    time,
  } satisfies ParallelPlan;
}

/** Fits first; then the faster per token (or, without a shape, less model parallelism and less traffic). */
function compareForRanking(a: ParallelPlan, b: ParallelPlan): number {
  if (a.memory.fits !== b.memory.fits) return a.memory.fits ? -1 : 1;
  if (!a.memory.fits) return a.memory.totalBytes - b.memory.totalBytes;
  if (a.time && b.time && a.time.secondsPerToken !== b.time.secondsPerToken)
    return a.time.secondsPerToken - b.time.secondsPerToken;
  const modelParallel = a.tensorParallel * a.pipelineParallel - b.tensorParallel * b.pipelineParallel;
  if (modelParallel) return modelParallel;
  if (a.comm.seconds !== b.comm.seconds) return a.comm.seconds - b.comm.seconds;
  if (a.memory.totalBytes !== b.memory.totalBytes) return a.memory.totalBytes - b.memory.totalBytes;
  return a.pipelineParallel - b.pipelineParallel;
}

function assumptionsFor(req: PlanRequest, shape: TransformerShape | null): string[] {
  const out = [
    'model states: fp16 parameters and gradients, mixed-precision Adam (K = 12), split per ZeRO stage (Rajbhandari et al. 2020)',
    `links: tensor parallel inside a node over NVLink ${req.nvlinkGBps} GB/s; groups that span nodes use ${req.interNodeGbps} Gb/s per GPU; ranks ordered tensor, data, pipeline (Megatron)`,
    'communication: ring collectives, 16-bit on the wire, not overlapped with compute (an upper bound)',
    'ZeRO-2/3 with pipeline parallelism is refused, as DeepSpeed refuses it',
  ];
  if (shape)
    out.push(
      `activations: Korthikanti et al. 2022 per layer (${req.sequenceParallel ? 'with' : 'without'} sequence parallelism, recompute ${req.recompute}), first pipeline stage with min(p, m) micro-batches in flight`,
      `compute: 72·s·L·h²(1 + s/6h + V/16Lh) FLOPs per sequence (Narayanan et al. 2021) at ${req.gpuPeakTflops} TFLOP/s × ${req.computeEfficiency}`,
      'no allowance for temporary buffers, fragmentation or the CUDA context: keep headroom',
    );
  else
    out.push(
      'parameters only: activation memory, tensor- and pipeline-parallel traffic and step time are not estimated; give the shape (layers, hidden, heads, vocab, seq) for them',
    );
  return out;
}

/**
 * Every DP×TP×PP layout and ZeRO stage that Megatron's and DeepSpeed's rules allow for this model on these GPUs
 * (TP divides the heads and the GPUs of a node, PP divides the layers, DP = G/(TP·PP), the global batch divides into
 * micro-batches per data-parallel rank), each with its per-GPU memory, bubble, traffic and step-time estimate,
 * ranked. Throws InvalidSpec listing every bad field of the request.
 */
export function planParallelism(input: PlanRequestInput): PlanReport {
  const req = parseSpec('plan', PlanRequest, input);
  const model = req.model;
  const shape: TransformerShape | null =
    model.params === undefined
      ? {
          layers: model.layers as number,
          hidden: model.hidden as number,
          heads: model.heads as number,
          vocab: model.vocab as number,
          seq: model.seq as number,
        }
      : null;
  const params = shape ? transformerParams(shape) : (model.params as number);
  const plans: ParallelPlan[] = [];
  const rejected: RejectedLayout[] = [];
  for (const t of divisors(req.gpus)) {
    for (const p of divisors(req.gpus / t)) {
      const reject = (reason: string, zeroStage?: ZeroStage) =>
        rejected.push({
          tensorParallel: t,
          pipelineParallel: p,
          ...(zeroStage === undefined ? {} : { zeroStage }),
          reason,
        });
      if (t > req.gpusPerNode || req.gpusPerNode % t !== 0) {
        reject(`tensor parallelism ${t} does not fit in a node of ${req.gpusPerNode} GPUs`);
        continue;
      }
      if (shape && shape.heads % t !== 0) {
        reject(`tensor parallelism ${t} does not divide ${shape.heads} attention heads`);
        continue;
      }
      if (shape && shape.layers % p !== 0) {
        reject(`pipeline parallelism ${p} does not divide ${shape.layers} layers`);
        continue;
      }
      const d = req.gpus / (t * p);
      let m = req.microBatches ?? DEFAULT_MICRO_BATCHES;
      if (req.globalBatch !== undefined) {
        const perStep = req.microBatchSize * d;
        if (req.globalBatch % perStep !== 0) {
          reject(`global batch ${req.globalBatch} is not divisible by micro batch ${req.microBatchSize} × DP ${d}`);
          continue;
        }
        m = req.globalBatch / perStep;
      }
      // With one data-parallel rank every ZeRO stage is stage 0.
      const stages: ZeroStage[] = d > 1 ? [0, 1, 2, 3] : [0];
      for (const stage of stages) {
        if (p > 1 && stage >= 2) {
          reject('ZeRO-2 and ZeRO-3 are incompatible with pipeline parallelism', stage);
          continue;
        }
        plans.push(evaluate(req, shape, params, { t, p, d, m }, stage));
      }
    }
  }
  plans.sort(compareForRanking);
  return {
    model: { params, shape },
    request: req,
    plans,
    recommended: plans[0]?.memory.fits ? plans[0] : null,
    rejected,
    assumptions: assumptionsFor(req, shape),
  };
}

/**
 * The DeepSpeed config that runs a plan: its ZeRO stage, bf16, and batch sizes from its micro-batch size and
 * micro-batches (gradient accumulation) over its data-parallel ranks.
 */
export function deepSpeedConfigForPlan(plan: ParallelPlan): DeepSpeedConfig {
  return buildDeepSpeedConfig({
    gpus: plan.tensorParallel * plan.pipelineParallel * plan.dataParallel,
    tensorParallel: plan.tensorParallel,
    pipelineParallel: plan.pipelineParallel,
    batch: { microBatchSizePerGpu: plan.microBatchSize, gradientAccumulationSteps: plan.microBatches },
    zero: { stage: plan.zeroStage },
    bf16: { enabled: true },
  });
}
