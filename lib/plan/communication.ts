// Per-GPU communication of one training step, by parallelism, and the link each crosses.
import type { ZeroStage } from './memory';

export type Link = 'nvlink' | 'infiniband';

export interface Interconnect {
  /** GPUs that share NVLink. */
  gpusPerNode: number;
  /** NVLink bandwidth per GPU, bytes/s. */
  nvlinkBytesPerSecond: number;
  /** Inter-node bandwidth per GPU (one NIC per GPU), bytes/s. */
  interNodeBytesPerSecond: number;
}

/** One kind of traffic of one GPU in one step: bytes it sends, over which link, and how long that takes. */
export interface CommLeg {
  bytes: number;
  link: Link | null;
  seconds: number;
}

/** Bytes per element on the wire: 16-bit gradients, parameters and activations. */
const WIRE_BYTES = 2;

/** Ring all-reduce: each GPU sends 2(n − 1)/n of the buffer (reduce-scatter then all-gather). */
export const allReduceBytes = (bytes: number, ranks: number) => (2 * bytes * (ranks - 1)) / ranks;
/** Ring all-gather or reduce-scatter: each GPU sends (n − 1)/n of the buffer. */
export const allGatherBytes = (bytes: number, ranks: number) => (bytes * (ranks - 1)) / ranks;

/**
 * Megatron's rank order (tensor fastest, then data, then pipeline): rank = tp + t·(dp + d·pp). A group crosses
 * nodes when two of its ranks sit on different nodes.
 */
export function layoutLinks(
  tensorParallel: number,
  dataParallel: number,
  pipelineParallel: number,
  gpusPerNode: number,
): { tensorParallel: Link; dataParallel: Link; pipeline: Link } {
  const t = tensorParallel;
  const d = dataParallel;
  const p = pipelineParallel;
  const node = (rank: number) => Math.floor(rank / gpusPerNode);
  const rank = (tp: number, dp: number, pp: number) => tp + t * (dp + d * pp);
  const crosses = (ranks: (i: number) => number, size: number) => {
    for (let i = 1; i < size; i++) if (node(ranks(i)) !== node(ranks(0))) return true;
    return false;
  };
  let tpCrosses = false;
  let dpCrosses = false;
  let ppCrosses = false;
  for (let pp = 0; pp < p && !tpCrosses; pp++)
    for (let dp = 0; dp < d && !tpCrosses; dp++) tpCrosses = crosses((i) => rank(i, dp, pp), t);
  for (let pp = 0; pp < p && !dpCrosses; pp++)
    for (let tp = 0; tp < t && !dpCrosses; tp++) dpCrosses = crosses((i) => rank(tp, i, pp), d);
  for (let dp = 0; dp < d && !ppCrosses; dp++)
    for (let tp = 0; tp < t && !ppCrosses; tp++) ppCrosses = crosses((i) => rank(tp, dp, i), p);
  const link = (crossesNodes: boolean): Link => (crossesNodes ? 'infiniband' : 'nvlink');
  return { tensorParallel: link(tpCrosses), dataParallel: link(dpCrosses), pipeline: link(ppCrosses) };
}

export function leg(bytes: number, link: Link, net: Interconnect): CommLeg {
  if (bytes === 0) return { bytes: 0, link: null, seconds: 0 };
  const bandwidth = link === 'nvlink' ? net.nvlinkBytesPerSecond : net.interNodeBytesPerSecond;
  return { bytes, link, seconds: bytes / bandwidth };
}

/**
 * Data-parallel bytes per GPU per step for Ψ parameters on the GPU and m micro-batches: stage 0 all-reduces the
 * gradients once per step (2Ψ(N−1)/N); stage 1 reduce-scatters them and all-gathers the updated parameters (the
 * same volume); stage 2 must reduce-scatter at every micro-batch (its gradients are partitioned) and all-gather
 * once ((m + 1)Ψ(N−1)/N); stage 3 all-gathers parameters for each forward and backward and reduce-scatters
 * gradients at every micro-batch (3mΨ(N−1)/N). With m = 1 these are the ZeRO paper's 2Ψ, 2Ψ, 2Ψ and 3Ψ (§7).
 */
export function dataParallelBytes(params: number, dataParallel: number, stage: ZeroStage, microBatches: number) {
  const buffer = params * WIRE_BYTES;
  switch (stage) {
    case 0:
    case 1:
      return allReduceBytes(buffer, dataParallel);
    case 2:
      return (microBatches + 1) * allGatherBytes(buffer, dataParallel);
    case 3:
      return 3 * microBatches * allGatherBytes(buffer, dataParallel);
  }
}

/**
 * Tensor-parallel bytes per GPU per micro-batch on one pipeline stage: Megatron all-reduces the s·b·h activations
 * twice in each layer's forward and twice in its backward (Shoeybi et al. 2019, Figure 4); sequence parallelism
 * replaces each with an all-gather plus a reduce-scatter of the same volume. Full recomputation repeats the forward's
 * two.
 */
export function tensorParallelBytesPerMicroBatch(
  layersOnStage: number,
  activationElements: number,
  tensorParallel: number,
  fullRecompute: boolean,
): number {
  const collectives = fullRecompute ? 6 : 4;
  return layersOnStage * collectives * allReduceBytes(activationElements * WIRE_BYTES, tensorParallel);
}

/**
 * Pipeline bytes per GPU per micro-batch: a stage sends its output activations to the next stage and the gradient
 * of its input back to the previous one, s·b·h elements each; with Megatron's scatter/gather optimization each
 * tensor-parallel rank sends only its 1/t slice (Narayanan et al. 2021, §4.1).
 */
export function pipelineBytesPerMicroBatch(activationElements: number, tensorParallel: number): number {
  return (2 * activationElements * WIRE_BYTES) / tensorParallel;
}
