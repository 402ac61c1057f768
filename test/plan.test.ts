import * as assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as fc from 'fast-check';
import {
  activationBytesPerLayer,
  buildDeepSpeedConfig,
  checkDeepSpeedConfig,
  dataParallelBytes,
  deepSpeedConfigForPlan,
  layoutLinks,
  pipelineBubble,
  planParallelism,
  resolveBatchSizes,
  transformerParams,
  zeroModelStateBytes,
  type ParallelPlan,
  type TransformerShape,
} from '../lib/plan';
import { InvalidSpec } from '../lib/contracts/invalid-spec';

const GB = 1e9;
const GiB = 2 ** 30;
const GPT3: TransformerShape = { layers: 96, hidden: 12288, heads: 96, vocab: 51200, seq: 2048 };
const MISMATCH =
  'Check batch related parameters. train_batch_size is not equal to micro_batch_per_gpu * gradient_acc_step';

function problemsOf(fn: () => unknown): { field: string; message: string }[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof InvalidSpec, `expected InvalidSpec, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected InvalidSpec');
}

describe('DeepSpeed batch arithmetic (runtime/config.py _set_batch_related_parameters, _batch_assertion)', () => {
  const world = 8;
  const cases: [string, Parameters<typeof resolveBatchSizes>[0], [number, number, number]][] = [
    [
      'all three given: checked',
      { trainBatchSize: 64, microBatchSizePerGpu: 4, gradientAccumulationSteps: 2 },
      [64, 4, 2],
    ],
    ['train + micro: gas = train // micro // world', { trainBatchSize: 64, microBatchSizePerGpu: 2 }, [64, 2, 4]],
    ['train + gas: micro = train // world // gas', { trainBatchSize: 64, gradientAccumulationSteps: 2 }, [64, 4, 2]],
    [
      'micro + gas: train = micro * gas * world',
      { microBatchSizePerGpu: 3, gradientAccumulationSteps: 5 },
      [120, 3, 5],
    ],
    ['train only: gas 1, micro = train // world', { trainBatchSize: 64 }, [64, 8, 1]],
    ['micro only: gas 1, train = micro * world', { microBatchSizePerGpu: 4 }, [32, 4, 1]],
  ];
  for (const [name, given, [train, micro, gas]] of cases)
    it(name, () => {
      assert.deepEqual(resolveBatchSizes(given, world), {
        ok: true,
        batch: { trainBatchSize: train, microBatchSizePerGpu: micro, gradientAccumulationSteps: gas },
        problems: [],
      });
    });

  it('neither train nor micro is DeepSpeed’s error, also with gas alone', () => {
    const message = 'Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided';
    assert.deepEqual(resolveBatchSizes({}, world).problems, [message]);
    assert.deepEqual(resolveBatchSizes({ gradientAccumulationSteps: 4 }, world).problems, [message]);
  });

  it('a derived size that does not multiply back fails with DeepSpeed’s message and numbers', () => {
    assert.deepEqual(resolveBatchSizes({ trainBatchSize: 100, microBatchSizePerGpu: 4 }, world).problems, [
      `${MISMATCH} * world_size 100 != 4 * 3 * 8`,
    ]);
    assert.deepEqual(
      resolveBatchSizes({ trainBatchSize: 32, microBatchSizePerGpu: 4, gradientAccumulationSteps: 2 }, world).problems,
      [`${MISMATCH} * world_size 32 != 4 * 2 * 8`],
    );
  });

  it('integer division to zero trips the positivity assertion too', () => {
    assert.deepEqual(resolveBatchSizes({ trainBatchSize: 4 }, world).problems, [
      'Micro batch size per gpu: 0 has to be greater than 0',
      `${MISMATCH} * world_size 4 != 0 * 1 * 8`,
    ]);
  });

  it('train + micro resolves exactly when micro × world divides train (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4096 }),
        fc.integer({ min: 1, max: 64 }),
        fc.integer({ min: 1, max: 64 }),
        (t, m, w) => {
          const r = resolveBatchSizes({ trainBatchSize: t, microBatchSizePerGpu: m }, w);
          assert.equal(r.ok, t % (m * w) === 0);
          if (r.ok)
            assert.equal(r.batch.trainBatchSize, r.batch.microBatchSizePerGpu * r.batch.gradientAccumulationSteps * w);
        },
      ),
    );
  });
});

describe('DeepSpeed config generation', () => {
  it('fp16 gets DeepSpeed’s dynamic loss-scale defaults', () => {
    const config = buildDeepSpeedConfig({ gpus: 8, batch: { trainBatchSize: 64 }, fp16: {} });
    assert.deepEqual(config.fp16, {
      enabled: true,
      loss_scale: 0,
      initial_scale_power: 16,
      loss_scale_window: 1000,
      hysteresis: 2,
      min_loss_scale: 1,
    });
    assert.equal(config.bf16, undefined);
  });

  it('writes all three batch sizes, resolved over the data-parallel ranks only', () => {
    const config = buildDeepSpeedConfig({
      gpus: 64,
      tensorParallel: 4,
      pipelineParallel: 2,
      batch: { trainBatchSize: 512, microBatchSizePerGpu: 4 },
      bf16: {},
    });
    assert.equal(config.train_batch_size, 512);
    assert.equal(config.train_micro_batch_size_per_gpu, 4);
    assert.equal(config.gradient_accumulation_steps, 16); // 512 // 4 // (64 / 8)
    assert.deepEqual(config.bf16, { enabled: true });
  });

  it('writes ZeRO offload, gradient clipping, AdamW and a warmup-cosine schedule in DeepSpeed’s keys', () => {
    const config = buildDeepSpeedConfig({
      gpus: 16,
      batch: { microBatchSizePerGpu: 2, gradientAccumulationSteps: 4 },
      zero: {
        stage: 3,
        offloadOptimizer: { device: 'nvme', nvmePath: '/local_nvme' },
        offloadParam: { device: 'cpu', pinMemory: false },
      },
      bf16: {},
      gradientClipping: 0.5,
      optimizer: { lr: 3e-4, weightDecay: 0.1, betas: [0.9, 0.95] },
      scheduler: { type: 'WarmupCosineLR', totalNumSteps: 10000, warmupNumSteps: 500 },
    });
    assert.deepEqual(config, {
      train_batch_size: 128,
      train_micro_batch_size_per_gpu: 2,
      gradient_accumulation_steps: 4,
      gradient_clipping: 0.5,
      zero_optimization: {
        stage: 3,
        offload_optimizer: { device: 'nvme', nvme_path: '/local_nvme', pin_memory: true },
        offload_param: { device: 'cpu', pin_memory: false },
      },
      bf16: { enabled: true },
      optimizer: { type: 'AdamW', params: { lr: 3e-4, betas: [0.9, 0.95], eps: 1e-8, weight_decay: 0.1 } },
      scheduler: {
        type: 'WarmupCosineLR',
        params: {
          total_num_steps: 10000,
          warmup_min_ratio: 0,
          warmup_num_steps: 500,
          cos_min_ratio: 0.0001,
          warmup_type: 'log',
        },
      },
    });
  });

  it('WarmupLR warms up to the optimizer’s lr unless told otherwise', () => {
    const config = buildDeepSpeedConfig({
      gpus: 1,
      batch: { microBatchSizePerGpu: 1 },
      optimizer: { lr: 2e-4 },
      scheduler: { type: 'WarmupLR', warmupType: 'linear' },
    });
    assert.deepEqual(config.scheduler, {
      type: 'WarmupLR',
      params: { warmup_min_lr: 0, warmup_max_lr: 2e-4, warmup_num_steps: 1000, warmup_type: 'linear' },
    });
  });

  it('fp16 and bf16 together is refused in DeepSpeed’s words', () => {
    const problems = problemsOf(() =>
      buildDeepSpeedConfig({ gpus: 8, batch: { trainBatchSize: 8 }, fp16: {}, bf16: {} }),
    );
    assert.deepEqual(problems, [
      { field: 'bf16', message: 'bfloat16 and fp16 modes cannot be simultaneously enabled' },
    ]);
    // A disabled section is no conflict.
    buildDeepSpeedConfig({ gpus: 8, batch: { trainBatchSize: 8 }, fp16: { enabled: false }, bf16: {} });
  });

  it('ZeRO-2 and ZeRO-3 with pipeline parallelism are refused, ZeRO-1 is not', () => {
    for (const stage of [2, 3]) {
      const problems = problemsOf(() =>
        buildDeepSpeedConfig({ gpus: 8, pipelineParallel: 2, batch: { trainBatchSize: 8 }, zero: { stage } }),
      );
      assert.equal(problems.length, 1);
      assert.match(problems[0].message, /ZeRO-2 and ZeRO-3 are incompatible with pipeline parallelism/);
    }
    buildDeepSpeedConfig({ gpus: 8, pipelineParallel: 2, batch: { trainBatchSize: 8 }, zero: { stage: 1 } });
  });

  it('offload where DeepSpeed documents it only: param offload at stage 3, NVMe at stage 3, with a path', () => {
    const at = (zero: object) =>
      problemsOf(() => buildDeepSpeedConfig({ gpus: 2, batch: { trainBatchSize: 2 }, zero } as never)).map(
        (p) => p.field,
      );
    assert.deepEqual(at({ stage: 2, offloadParam: { device: 'cpu' } }), ['zero_optimization.offload_param']);
    assert.deepEqual(at({ stage: 0, offloadOptimizer: { device: 'cpu' } }), ['zero_optimization.offload_optimizer']);
    assert.deepEqual(at({ stage: 2, offloadOptimizer: { device: 'nvme', nvmePath: '/nvme' } }), [
      'zero_optimization.offload_optimizer.device',
    ]);
    assert.deepEqual(at({ stage: 3, offloadParam: { device: 'nvme' } }), ['zero_optimization.offload_param.nvme_path']);
    const cpu = buildDeepSpeedConfig({
      gpus: 2,
      batch: { trainBatchSize: 2 },
      zero: { stage: 2, offloadOptimizer: { device: 'cpu' } },
    });
    assert.deepEqual(cpu.zero_optimization?.offload_optimizer, { device: 'cpu', pin_memory: true });
  });

  it('lists every problem at once', () => {
    const problems = problemsOf(() =>
      buildDeepSpeedConfig({
        gpus: 8,
        pipelineParallel: 2,
        batch: { trainBatchSize: 30, microBatchSizePerGpu: 4 },
        zero: { stage: 3, offloadParam: { device: 'nvme' } },
        fp16: {},
        bf16: {},
      }),
    );
    assert.deepEqual(
      problems.map((p) => p.field),
      ['train_batch_size', 'bf16', 'zero_optimization.stage', 'zero_optimization.offload_param.nvme_path'],
    );
    assert.equal(problems[0].message, `${MISMATCH} * world_size 30 != 4 * 1 * 4`);
  });

  it('GPUs that do not split into TP × PP groups are one problem among the others', () => {
    const problems = problemsOf(() =>
      buildDeepSpeedConfig({ gpus: 12, tensorParallel: 8, batch: { trainBatchSize: 8 }, fp16: {}, bf16: {} }),
    );
    assert.deepEqual(
      problems.map((p) => p.field),
      ['gpus', 'bf16'],
    );
  });

  it('bad fields are named, unknown ones too', () => {
    const problems = problemsOf(() =>
      buildDeepSpeedConfig({ gpus: 0, zero: { stage: 4 }, fp16: { lossScaleWindow: 0 }, colour: 'red' } as never),
    );
    assert.deepEqual(problems.map((p) => p.field).sort(), ['colour', 'fp16.lossScaleWindow', 'gpus', 'zero.stage']);
  });

  it('checks a hand-written DeepSpeed JSON config as DeepSpeed would', () => {
    const problems = checkDeepSpeedConfig(
      { train_micro_batch_size_per_gpu: 4, gradient_accumulation_steps: 2, zero_optimization: { stage: 4 } },
      { dataParallelSize: 4, pipelineParallelSize: 1 },
    );
    assert.deepEqual(problems, [
      { field: 'zero_optimization.stage', message: 'DeepSpeedConfig: Maximum supported ZeRO stage is 3' },
    ]);
  });
});

describe('memory of model states (ZeRO paper) and activations (Korthikanti et al.)', () => {
  it('the ZeRO paper’s example: Ψ = 7.5B, N_d = 64 → 120, 31.4, 16.6, 1.9 GB for stages 0–3', () => {
    const gb = ([0, 1, 2, 3] as const).map((stage) => zeroModelStateBytes(7.5e9, 64, stage) / GB);
    assert.deepEqual(
      gb.map((x) => Number(x.toFixed(1))),
      [120, 31.4, 16.6, 1.9],
    );
    // Unrounded: 16Ψ; 4Ψ + 12Ψ/64; 2Ψ + 14Ψ/64; 16Ψ/64.
    assert.deepEqual(gb, [120, 31.40625, 16.640625, 1.875]);
  });

  it('the planner reports the same numbers for a 7.5B model on 64 GPUs without model parallelism', () => {
    const report = planParallelism({ model: { params: 7.5e9 }, gpus: 64, gpuMemGiB: 80 });
    const dpOnly = report.plans.filter((p) => p.tensorParallel === 1 && p.pipelineParallel === 1);
    assert.deepEqual(dpOnly.map((p) => [p.zeroStage, Number((p.memory.modelStatesBytes / GB).toFixed(1))]).sort(), [
      [0, 120],
      [1, 31.4],
      [2, 16.6],
      [3, 1.9],
    ]);
    assert.equal(dpOnly[0].memory.activationBytes, null);
  });

  it('GPT-3 175B’s shape gives 175B parameters (Narayanan et al.: 12lh²(1 + 13/12h + (V+s)/12lh))', () => {
    assert.ok(Math.abs(transformerParams(GPT3) / 175e9 - 1) < 0.01);
  });

  it('activations per layer follow Korthikanti et al. Table 2; for GPT-3 the attention term 5as/h is 80', () => {
    const { seq: s, hidden: h } = GPT3;
    const sbh = s * h;
    const opts = { pipelineParallel: 1, microBatches: 1, microBatchSize: 1 };
    const perLayer = (t: number, sequenceParallel: boolean, recompute: 'none' | 'selective' | 'full') =>
      activationBytesPerLayer(GPT3, { ...opts, tensorParallel: t, sequenceParallel, recompute });
    assert.equal(perLayer(1, false, 'none'), sbh * (34 + 80));
    assert.equal(perLayer(8, false, 'none'), sbh * (10 + 24 / 8 + 80 / 8));
    assert.equal(perLayer(8, true, 'none'), (sbh / 8) * (34 + 80));
    assert.equal(perLayer(8, true, 'selective'), (sbh / 8) * 34);
    assert.equal(perLayer(8, true, 'full'), (2 * sbh) / 8);
  });
});

describe('planner', () => {
  const gpt3 = planParallelism({ model: GPT3, gpus: 1024, gpuMemGiB: 80, microBatches: 16 });
  const layout = (t: number, p: number) => gpt3.plans.filter((x) => x.tensorParallel === t && x.pipelineParallel === p);

  it('GPT-3 175B does not fit on 80 GB GPUs without model parallelism, whatever the ZeRO stage', () => {
    const dpOnly = layout(1, 1);
    assert.equal(dpOnly.length, 4);
    for (const plan of dpOnly) assert.equal(plan.memory.fits, false, `ZeRO-${plan.zeroStage} should not fit`);
  });

  it('GPT-3 175B fits with TP = 8 and PP = 16 (model states and activations within 80 GiB)', () => {
    const plans = layout(8, 16);
    assert.deepEqual(plans.map((p) => p.zeroStage).sort(), [0, 1]);
    for (const plan of plans) {
      assert.ok(plan.memory.fits);
      assert.ok(plan.memory.totalBytes < 80 * GiB);
      assert.ok(plan.memory.activationBytes! > 10 * GiB, 'activations are counted');
    }
    assert.ok(gpt3.recommended && gpt3.recommended.tensorParallel * gpt3.recommended.pipelineParallel > 1);
  });

  it('keeps Megatron’s divisibility rules and DeepSpeed’s ZeRO/pipeline rule', () => {
    for (const plan of gpt3.plans) {
      const { tensorParallel: t, pipelineParallel: p, dataParallel: d } = plan;
      assert.equal(t * p * d, 1024);
      assert.equal(GPT3.heads % t, 0);
      assert.equal(GPT3.layers % p, 0);
      assert.ok(t <= 8 && 8 % t === 0, 'TP inside a node');
      assert.ok(p === 1 || plan.zeroStage <= 1);
      assert.equal(plan.globalBatch % (plan.microBatchSize * d), 0);
    }
    const reasons = new Set(gpt3.rejected.map((r) => r.reason));
    assert.ok(reasons.has('tensor parallelism 16 does not fit in a node of 8 GPUs'));
    assert.ok(reasons.has('pipeline parallelism 64 does not divide 96 layers'));
    assert.ok(reasons.has('ZeRO-2 and ZeRO-3 are incompatible with pipeline parallelism'));
  });

  it('a global batch must divide into micro batch × DP', () => {
    const report = planParallelism({ model: { ...GPT3, layers: 24 }, gpus: 32, gpuMemGiB: 80, globalBatch: 48 });
    for (const plan of report.plans) assert.equal(plan.microBatches * plan.microBatchSize * plan.dataParallel, 48);
    assert.ok(report.rejected.some((r) => r.reason === 'global batch 48 is not divisible by micro batch 1 × DP 32'));
  });

  it('heads that TP cannot divide rule those TP sizes out', () => {
    const report = planParallelism({
      model: { layers: 12, hidden: 768, heads: 12, vocab: 50257, seq: 1024 },
      gpus: 8,
      gpuMemGiB: 16,
    });
    assert.deepEqual([...new Set(report.plans.map((p) => p.tensorParallel))].sort(), [1, 2, 4]);
    assert.ok(report.rejected.some((r) => r.reason === 'tensor parallelism 8 does not divide 12 attention heads'));
  });

  it('ranks plans that fit first, then by estimated time per token', () => {
    const firstMiss = gpt3.plans.findIndex((p) => !p.memory.fits);
    assert.ok(firstMiss > 0);
    assert.ok(gpt3.plans.slice(firstMiss).every((p) => !p.memory.fits));
    const fitting = gpt3.plans.slice(0, firstMiss);
    for (let i = 1; i < fitting.length; i++)
      assert.ok(fitting[i - 1].time!.secondsPerToken <= fitting[i].time!.secondsPerToken);
    assert.equal(gpt3.recommended, gpt3.plans[0]);
  });

  it('recommends nothing when nothing fits', () => {
    const report = planParallelism({ model: { params: 175e9 }, gpus: 8, gpuMemGiB: 80 });
    assert.equal(report.recommended, null);
    assert.ok(report.plans.length > 0);
  });

  it('the recommended plan’s DeepSpeed config passes DeepSpeed’s checks', () => {
    const plan = gpt3.recommended as ParallelPlan;
    const config = deepSpeedConfigForPlan(plan);
    assert.equal(config.train_batch_size, plan.microBatchSize * plan.microBatches * plan.dataParallel);
    assert.equal(config.gradient_accumulation_steps, 16);
    assert.equal(config.zero_optimization?.stage, plan.zeroStage);
    assert.deepEqual(
      checkDeepSpeedConfig(config, {
        dataParallelSize: plan.dataParallel,
        pipelineParallelSize: plan.pipelineParallel,
      }),
      [],
    );
  });

  it('a bad request names every bad field', () => {
    const problems = problemsOf(() =>
      planParallelism({ model: { layers: 32, hidden: 4096 }, gpus: 0, gpuMemGiB: -1, gpusPerNode: 8 }),
    );
    assert.deepEqual(problems.map((p) => p.field).sort(), ['gpuMemGiB', 'gpus', 'model']);
    assert.match(problems.find((p) => p.field === 'model')!.message, /also needs heads, vocab, seq/);
  });
});

describe('pipeline bubble and communication', () => {
  it('bubble is (p − 1)/(m + p − 1); interleaving v chunks shrinks the bubble time v-fold', () => {
    assert.equal(pipelineBubble(1, 8), 0);
    assert.equal(pipelineBubble(4, 4), 3 / 7);
    assert.equal(pipelineBubble(8, 32), 7 / 39);
    assert.equal(pipelineBubble(2, 1), 1 / 2);
    assert.equal(pipelineBubble(8, 32, 2), 7 / 71);
    assert.ok(pipelineBubble(16, 1e6) < 1e-4);
  });

  it('data-parallel traffic: 2Ψ for ZeRO 0–2 and 3Ψ for ZeRO-3 with one micro-batch (ZeRO paper §7)', () => {
    const psi = 1e9;
    const n = 64;
    const allReduce = 2 * (2 * psi) * ((n - 1) / n); // 16-bit gradients, ring all-reduce
    assert.equal(dataParallelBytes(psi, n, 0, 1), allReduce);
    assert.equal(dataParallelBytes(psi, n, 1, 1), allReduce);
    assert.equal(dataParallelBytes(psi, n, 2, 1), allReduce);
    assert.equal(dataParallelBytes(psi, n, 3, 1), 1.5 * allReduce);
    // ZeRO-2 and ZeRO-3 communicate at every micro-batch.
    assert.ok(dataParallelBytes(psi, n, 2, 8) > dataParallelBytes(psi, n, 1, 8));
  });

  it('links follow Megatron’s rank order: TP on NVLink, DP and PP over InfiniBand once they span nodes', () => {
    assert.deepEqual(layoutLinks(8, 4, 2, 8), {
      tensorParallel: 'nvlink',
      dataParallel: 'infiniband',
      pipeline: 'infiniband',
    });
    assert.deepEqual(layoutLinks(2, 4, 1, 8), { tensorParallel: 'nvlink', dataParallel: 'nvlink', pipeline: 'nvlink' });
    assert.deepEqual(layoutLinks(2, 2, 4, 8), {
      tensorParallel: 'nvlink',
      dataParallel: 'nvlink',
      pipeline: 'infiniband',
    });
    for (const plan of planParallelism({ model: GPT3, gpus: 64, gpuMemGiB: 80 }).plans)
      if (plan.comm.tensorParallel.link) assert.equal(plan.comm.tensorParallel.link, 'nvlink');
  });
});
