import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import type { Figure } from './harness';

const BENCH = path.join(__dirname, '..', 'examples', 'torch-gpt', 'bench.py');

/** What examples/torch-gpt/bench.py prints: the matmul peak and the trainer's figures on this machine. */
interface TorchBench {
  device: string;
  matmulPeakGflops: number;
  oneRank: { tokensPerSecond: number; modelGflops: number; mfu: number };
  twoRanks: { tokensPerSecond: number; modelGflops: number; mfu: number };
  scaling: number;
  checkpointStall: number;
  model?: Record<string, unknown>;
}

/**
 * The PyTorch GPT trainer (examples/torch-gpt) measured in one run against the peak of a plain torch matmul on the
 * same machine: training tokens/s and model FLOP/s utilisation, the time the training loop waits for checkpoints as a
 * share of segment time (all four checkpoints of a 40-step segment together), and 2 ranks ÷ 1 rank. Skipped with the reason when python3 has no torch.
 */
export function torchFigures(): Figure[] {
  process.stderr.write('running: the torch GPT trainer against a plain matmul peak (examples/torch-gpt/bench.py)\n');
  const run = spawnSync('python3', [BENCH], { encoding: 'utf8', timeout: 900_000 });
  if (run.status !== 0) {
    const reason = (run.stderr || String(run.error)).trim().split('\n').at(-1);
    process.stderr.write(`torch figures skipped: ${reason}\n`);
    return [];
  }
  const b = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as TorchBench;
  const on = `on ${b.device}`;
  return [
    { name: 'torch: plain fp32 matmul peak', value: b.matmulPeakGflops, unit: 'GFLOP/s', note: on },
    { name: 'torch: training, 2 ranks', value: b.twoRanks.tokensPerSecond, unit: 'tokens/s', note: on },
    {
      name: 'torch: model FLOP/s ÷ matmul peak (2 ranks)',
      value: b.twoRanks.mfu,
      unit: '×',
      min: 0.3,
      note: `${b.twoRanks.modelGflops.toFixed(1)} of ${b.matmulPeakGflops.toFixed(1)} GFLOP/s`,
    },
    {
      name: 'torch: checkpoint stall ÷ segment time (2 ranks, 4 checkpoints in 40 steps)',
      value: b.checkpointStall,
      unit: '×',
      max: 0.02,
    },
    {
      name: 'torch: 2 ranks ÷ 1 rank (tokens/s)',
      value: b.scaling,
      unit: '×',
      min: 1.6,
      note: `${b.oneRank.tokensPerSecond.toFixed(0)} → ${b.twoRanks.tokensPerSecond.toFixed(0)} tokens/s`,
    },
  ];
}
