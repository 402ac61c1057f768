import { z } from 'zod';
import { InvalidSpec, parseSpec, type SpecProblem } from '../contracts/invalid-spec';

// DeepSpeed's rules, read from deepspeedai/DeepSpeed: deepspeed/runtime/config.py (batch arithmetic, fp16 vs bf16,
// ZeRO stage), runtime/pipe/engine.py (ZeRO-2/3 with pipelines), runtime/zero/offload_config.py and
// docs/_pages/config-json.md (offload), runtime/constants.py (fp16 defaults), runtime/lr_schedules.py (schedulers).

const count = (what: string) => z.number().int().min(1).describe(what);

const OffloadSpec = z
  .object({
    device: z.enum(['cpu', 'nvme']).describe('where the states go: CPU memory or an NVMe path'),
    nvmePath: z.string().min(1).optional().describe('folder on the NVMe device (required for nvme)'),
    pinMemory: z.boolean().default(true).describe("page-locked CPU buffers (DeepSpeed's default: true)"),
  })
  .strict();

const Fp16Spec = z
  .object({
    enabled: z.boolean().default(true),
    lossScale: z.number().min(0).default(0).describe('0 = dynamic loss scaling'),
    initialScalePower: z.number().int().min(0).default(16).describe('dynamic scaling starts at 2^power'),
    lossScaleWindow: count('steps without overflow before the scale grows').default(1000),
    hysteresis: count('overflows tolerated before the scale shrinks').default(2),
    minLossScale: z.number().positive().default(1),
  })
  .strict();

const WarmupType = z.enum(['log', 'linear']).default('log');

const WarmupCosineLR = z
  .object({
    type: z.literal('WarmupCosineLR'),
    totalNumSteps: count('training steps in the whole run'),
    warmupMinRatio: z.number().min(0).max(1).default(0).describe('warmup starts at this fraction of lr'),
    warmupNumSteps: count('warmup steps').default(1000),
    cosMinRatio: z.number().min(0).max(1).default(0.0001).describe('cosine decay ends at this fraction of lr'),
    warmupType: WarmupType,
  })
  .strict();

const WarmupLR = z
  .object({
    type: z.literal('WarmupLR'),
    warmupMinLr: z.number().min(0).default(0),
    warmupMaxLr: z.number().positive().optional().describe("defaults to the optimizer's lr"),
    warmupNumSteps: count('warmup steps').default(1000),
    warmupType: WarmupType,
  })
  .strict();

/**
 * How one training job is laid out and optimized: the input of {@link buildDeepSpeedConfig}. Batch sizes follow
 * DeepSpeed: give any two of the three (or one of train/micro) and the rest is derived over the data-parallel size
 * `gpus / (tensorParallel × pipelineParallel)`.
 */
export const TrainingParallelismSpec = z
  .object({
    gpus: count('GPUs in the job'),
    tensorParallel: count('tensor-parallel size (Megatron; inside a node)').default(1),
    pipelineParallel: count('pipeline stages').default(1),
    batch: z
      .object({
        trainBatchSize: count('samples per optimizer step, all data-parallel ranks together').optional(),
        microBatchSizePerGpu: count('samples per forward/backward on one GPU').optional(),
        gradientAccumulationSteps: count('micro-batches per optimizer step').optional(),
      })
      .strict()
      .prefault({}),
    zero: z
      .object({
        stage: z.number().int().min(0).max(3).default(0).describe('ZeRO stage 0–3'),
        offloadOptimizer: OffloadSpec.optional().describe('optimizer states to CPU (stage 1–3) or NVMe (stage 3)'),
        offloadParam: OffloadSpec.optional().describe('parameters to CPU or NVMe (stage 3 only)'),
      })
      .strict()
      .prefault({}),
    fp16: Fp16Spec.optional().describe('fp16 mixed precision with loss scaling; not with bf16'),
    bf16: z
      .object({ enabled: z.boolean().default(true) })
      .strict()
      .optional()
      .describe('bf16 mixed precision'),
    gradientClipping: z.number().min(0).default(1).describe("clip the global gradient norm (DeepSpeed's default 1.0)"),
    optimizer: z
      .object({
        type: z.literal('AdamW').default('AdamW'),
        lr: z.number().positive().default(1e-3),
        betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]),
        eps: z.number().positive().default(1e-8),
        weightDecay: z.number().min(0).default(0.01),
      })
      .strict()
      .prefault({})
      .describe("AdamW; defaults are PyTorch's"),
    scheduler: z.discriminatedUnion('type', [WarmupCosineLR, WarmupLR]).optional(),
  })
  .strict();

export type TrainingParallelismSpec = z.infer<typeof TrainingParallelismSpec>;
export type TrainingParallelismInput = z.input<typeof TrainingParallelismSpec>;

export interface DeepSpeedOffload {
  device: 'cpu' | 'nvme' | 'none';
  nvme_path?: string;
  pin_memory?: boolean;
}

/** The DeepSpeed JSON keys Flywheel writes and checks; DeepSpeed accepts many more, which pass through unchecked. */
export interface DeepSpeedConfig {
  train_batch_size?: number;
  train_micro_batch_size_per_gpu?: number;
  gradient_accumulation_steps?: number;
  gradient_clipping?: number;
  zero_optimization?: { stage?: number; offload_optimizer?: DeepSpeedOffload; offload_param?: DeepSpeedOffload };
  fp16?: {
    enabled?: boolean;
    loss_scale?: number;
    initial_scale_power?: number;
    loss_scale_window?: number;
    hysteresis?: number;
    min_loss_scale?: number;
  };
  bf16?: { enabled?: boolean };
  optimizer?: { type: string; params: Record<string, number | number[]> };
  scheduler?: { type: string; params: Record<string, number | string> };
}

export interface BatchSizes {
  trainBatchSize: number;
  microBatchSizePerGpu: number;
  gradientAccumulationSteps: number;
}

export type BatchResolution = { ok: true; batch: BatchSizes; problems: [] } | { ok: false; problems: string[] };

const floorDiv = (a: number, b: number) => Math.floor(a / b);
const given = (n: number | null | undefined): n is number => n !== undefined && n !== null;

/**
 * DeepSpeed's `_set_batch_related_parameters` then `_batch_assertion`, over the data-parallel world size: the same
 * integer divisions, the same order of cases, the same messages. Every failing assertion is listed.
 */
export function resolveBatchSizes(
  batch: {
    trainBatchSize?: number | null;
    microBatchSizePerGpu?: number | null;
    gradientAccumulationSteps?: number | null;
  },
  worldSize: number,
): BatchResolution {
  let train = batch.trainBatchSize;
  let micro = batch.microBatchSizePerGpu;
  let gas = batch.gradientAccumulationSteps;
  if (given(train) && given(micro) && given(gas)) {
    // All three given: nothing to derive, only checked.
  } else if (given(train) && given(micro)) {
    gas = floorDiv(floorDiv(train, micro), worldSize);
  } else if (given(train) && given(gas)) {
    micro = floorDiv(floorDiv(train, worldSize), gas);
  } else if (given(micro) && given(gas)) {
    train = micro * gas * worldSize;
  } else if (given(train)) {
    gas = 1;
    micro = floorDiv(train, worldSize);
  } else if (given(micro)) {
    train = micro * worldSize;
    gas = 1;
  } else {
    return { ok: false, problems: ['Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided'] };
  }
  const t = train as number;
  const m = micro as number;
  const g = gas as number;
  const problems: string[] = [];
  if (!(t > 0)) problems.push(`Train batch size: ${t} has to be greater than 0`);
  if (!(m > 0)) problems.push(`Micro batch size per gpu: ${m} has to be greater than 0`);
  if (!(g > 0)) problems.push(`Gradient accumulation steps: ${g} has to be greater than 0`);
  if (t !== m * g * worldSize)
    problems.push(
      'Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * gradient_acc_step * ' +
        `world_size ${t} != ${m} * ${g} * ${worldSize}`,
    );
  if (problems.length) return { ok: false, problems };
  return {
    ok: true,
    batch: { trainBatchSize: t, microBatchSizePerGpu: m, gradientAccumulationSteps: g },
    problems: [],
  };
}

/** Where a DeepSpeed config runs: DeepSpeed divides batches over the data-parallel ranks only. */
export interface DeepSpeedTopology {
  dataParallelSize: number;
  pipelineParallelSize: number;
}

/**
 * Checks a DeepSpeed JSON config the way DeepSpeed would at start-up, returning every problem (empty when it would
 * start). Offload rules DeepSpeed documents but does not assert are checked too, so a config never silently drops
 * an offload.
 */
export function checkDeepSpeedConfig(config: DeepSpeedConfig, topology: DeepSpeedTopology): SpecProblem[] {
  return [
    ...batchProblems(config, topology.dataParallelSize),
    ...featureProblems(config, topology.pipelineParallelSize),
  ];
}

function batchProblems(config: DeepSpeedConfig, dataParallelSize: number): SpecProblem[] {
  const batch = resolveBatchSizes(
    {
      trainBatchSize: config.train_batch_size,
      microBatchSizePerGpu: config.train_micro_batch_size_per_gpu,
      gradientAccumulationSteps: config.gradient_accumulation_steps,
    },
    dataParallelSize,
  );
  return batch.problems.map((message) => ({ field: 'train_batch_size', message }));
}

/** Precision, ZeRO stage, pipeline and offload rules: everything but the batch arithmetic. */
function featureProblems(config: DeepSpeedConfig, pipelineParallelSize: number): SpecProblem[] {
  const problems: SpecProblem[] = [];
  if (config.fp16?.enabled && config.bf16?.enabled)
    problems.push({ field: 'bf16', message: 'bfloat16 and fp16 modes cannot be simultaneously enabled' });

  const stage = config.zero_optimization?.stage ?? 0;
  if (stage > 3)
    problems.push({ field: 'zero_optimization.stage', message: 'DeepSpeedConfig: Maximum supported ZeRO stage is 3' });
  if (pipelineParallelSize > 1 && stage >= 2)
    problems.push({
      field: 'zero_optimization.stage',
      message: 'ZeRO-2 and ZeRO-3 are incompatible with pipeline parallelism (use stage 0 or 1 with pipeline stages)',
    });

  const offloadOptimizer = config.zero_optimization?.offload_optimizer;
  if (offloadOptimizer && offloadOptimizer.device !== 'none') {
    if (stage === 0)
      problems.push({
        field: 'zero_optimization.offload_optimizer',
        message: 'optimizer offload needs ZeRO stage 1, 2 or 3',
      });
    else if (offloadOptimizer.device === 'nvme' && stage !== 3)
      problems.push({
        field: 'zero_optimization.offload_optimizer.device',
        message: 'NVMe offloading is available only with ZeRO stage 3 (use device cpu, or stage 3)',
      });
  }
  const offloadParam = config.zero_optimization?.offload_param;
  if (offloadParam && offloadParam.device !== 'none' && stage !== 3)
    problems.push({
      field: 'zero_optimization.offload_param',
      message: 'parameter offload is valid only with ZeRO stage 3',
    });
  for (const [key, offload] of [
    ['offload_optimizer', offloadOptimizer],
    ['offload_param', offloadParam],
  ] as const)
    if (offload?.device === 'nvme' && !offload.nvme_path)
      problems.push({
        field: `zero_optimization.${key}.nvme_path`,
        message: '"nvme_path" in DeepSpeed Config cannot be None if remote device is nvme',
      });
  return problems;
}

function offloadJson(offload: z.infer<typeof OffloadSpec>): DeepSpeedOffload {
  return {
    device: offload.device,
    ...(offload.nvmePath ? { nvme_path: offload.nvmePath } : {}),
    pin_memory: offload.pinMemory,
  };
}

function schedulerJson(spec: TrainingParallelismSpec): DeepSpeedConfig['scheduler'] {
  const s = spec.scheduler;
  if (!s) return undefined;
  if (s.type === 'WarmupCosineLR')
    return {
      type: s.type,
      params: {
        total_num_steps: s.totalNumSteps,
        warmup_min_ratio: s.warmupMinRatio,
        warmup_num_steps: s.warmupNumSteps,
        cos_min_ratio: s.cosMinRatio,
        warmup_type: s.warmupType,
      },
    };
  return {
    type: s.type,
    params: {
      warmup_min_lr: s.warmupMinLr,
      warmup_max_lr: s.warmupMaxLr ?? spec.optimizer.lr,
      warmup_num_steps: s.warmupNumSteps,
      warmup_type: s.warmupType,
    },
  };
}

/**
 * The DeepSpeed JSON config for a training-parallelism spec, with all three batch sizes resolved as DeepSpeed would.
 * Throws InvalidSpec listing every problem: bad fields first; when the fields are sound, every rule DeepSpeed
 * would refuse the config for, in DeepSpeed's words.
 */
export function buildDeepSpeedConfig(input: TrainingParallelismInput): DeepSpeedConfig {
  const spec = parseSpec('training parallelism', TrainingParallelismSpec, input);
  const modelParallel = spec.tensorParallel * spec.pipelineParallel;
  // Batch sizes divide over the data-parallel ranks; without a whole number of them only the other rules can be checked.
  const dataParallelSize = spec.gpus % modelParallel === 0 ? spec.gpus / modelParallel : undefined;
  const batch = dataParallelSize ? resolveBatchSizes(spec.batch, dataParallelSize) : undefined;
  const resolved = batch?.ok
    ? {
        train_batch_size: batch.batch.trainBatchSize,
        train_micro_batch_size_per_gpu: batch.batch.microBatchSizePerGpu,
        gradient_accumulation_steps: batch.batch.gradientAccumulationSteps,
      }
    : {
        train_batch_size: spec.batch.trainBatchSize,
        train_micro_batch_size_per_gpu: spec.batch.microBatchSizePerGpu,
        gradient_accumulation_steps: spec.batch.gradientAccumulationSteps,
      };
  const { zero } = spec;
  const config: DeepSpeedConfig = {
    ...resolved,
    gradient_clipping: spec.gradientClipping,
    zero_optimization: {
      stage: zero.stage,
      ...(zero.offloadOptimizer ? { offload_optimizer: offloadJson(zero.offloadOptimizer) } : {}),
      ...(zero.offloadParam ? { offload_param: offloadJson(zero.offloadParam) } : {}),
    },
    ...(spec.fp16
      ? {
          fp16: {
            enabled: spec.fp16.enabled,
            loss_scale: spec.fp16.lossScale,
            initial_scale_power: spec.fp16.initialScalePower,
            loss_scale_window: spec.fp16.lossScaleWindow,
            hysteresis: spec.fp16.hysteresis,
            min_loss_scale: spec.fp16.minLossScale,
          },
        }
      : {}),
    ...(spec.bf16 ? { bf16: { enabled: spec.bf16.enabled } } : {}),
    optimizer: {
      type: spec.optimizer.type,
      params: {
        lr: spec.optimizer.lr,
        betas: [...spec.optimizer.betas],
        eps: spec.optimizer.eps,
        weight_decay: spec.optimizer.weightDecay,
      },
    },
    ...(spec.scheduler ? { scheduler: schedulerJson(spec) } : {}),
  };
  const problems = dataParallelSize
    ? checkDeepSpeedConfig(config, { dataParallelSize, pipelineParallelSize: spec.pipelineParallel })
    : [
        {
          field: 'gpus',
          message:
            `${spec.gpus} GPUs do not split into tensorParallel × pipelineParallel = ${modelParallel} groups; ` +
            `use a multiple of ${modelParallel}`,
        },
        ...featureProblems(config, spec.pipelineParallel),
      ];
  if (problems.length) throw new InvalidSpec('training parallelism', problems);
  return config;
}
