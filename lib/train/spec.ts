import { z } from 'zod';
import { resolveBatchSizes, type BatchSizes } from '../plan/deepspeed';
import { parseSpec } from '../contracts/invalid-spec';
import { InvalidBatchSizes } from './errors';

const count = (what: string) => z.number().int().min(1).describe(what);

/** Everything that decides the built-in trainer's result: same spec, same tokens → same weights, bit for bit. */
export const TrainerSpec = z
  .object({
    seed: z.number().int().min(0).max(0xffffffff).default(0).describe('seeds initialization and data order'),
    model: z
      .object({
        contextTokens: count('tokens of context each prediction sees').default(4),
        embeddingDim: count('width of a token embedding').default(32),
        hiddenDim: count('width of the tanh hidden layer').default(64),
        maxVocab: z.number().int().min(2).optional().describe('rows for the most frequent ids (+1 for unknown)'),
      })
      .strict()
      .prefault({}),
    sequenceTokens: count('predicted tokens per packed sequence (one sample)').default(64),
    dataParallelRanks: count('data-parallel ranks, each computing gradients for its share').default(1),
    batch: z
      .object({
        trainBatchSize: count('sequences per optimizer step, all ranks together').optional(),
        microBatchSizePerGpu: count('sequences per forward/backward on one rank').optional(),
        gradientAccumulationSteps: count('micro-batches per optimizer step').optional(),
      })
      .strict()
      .prefault({}),
    optimizer: z
      .object({
        lr: z.number().positive().default(3e-3),
        betas: z.tuple([z.number().min(0).lt(1), z.number().min(0).lt(1)]).default([0.9, 0.999]),
        eps: z.number().positive().default(1e-8),
        weightDecay: z.number().min(0).default(0.01),
      })
      .strict()
      .prefault({}),
    gradientClipping: z.number().min(0).default(1).describe('max global gradient norm; 0 = off'),
    schedule: z
      .object({
        warmupSteps: z.number().int().min(0).default(10),
        totalSteps: count('steps until the cosine reaches its floor').default(1000),
        minLrRatio: z.number().min(0).max(1).default(0.1),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type TrainerSpec = z.infer<typeof TrainerSpec>;
export type TrainerSpecInput = z.input<typeof TrainerSpec>;

/** A validated spec and its batch sizes resolved with DeepSpeed's arithmetic over the data-parallel ranks. */
export function resolveTrainerSpec(input: TrainerSpecInput): { spec: TrainerSpec; batch: BatchSizes } {
  const spec = parseSpec('trainer', TrainerSpec, input);
  const resolution = resolveBatchSizes(spec.batch, spec.dataParallelRanks);
  if (!resolution.ok) {
    const given = (n: number | undefined) => (n === undefined ? 'unset' : String(n));
    const numbers =
      `trainBatchSize ${given(spec.batch.trainBatchSize)}, microBatchSizePerGpu ${given(spec.batch.microBatchSizePerGpu)}, ` +
      `gradientAccumulationSteps ${given(spec.batch.gradientAccumulationSteps)}, dataParallelRanks ${spec.dataParallelRanks}`;
    throw new InvalidBatchSizes(
      resolution.problems.map((message) => ({
        field: 'batch',
        message: `${message} (${numbers}; rule: trainBatchSize = microBatchSizePerGpu × gradientAccumulationSteps × dataParallelRanks)`,
      })),
    );
  }
  return { spec, batch: resolution.batch };
}
