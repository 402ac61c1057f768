import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { sampleCorpus } from '../lib/collect';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import { DocumentTokenizer } from '../lib/tokenize';
import {
  adamWStep,
  CheckpointMismatch,
  clipGradientNorm,
  createTrainer,
  DatasetTooSmall,
  InvalidBatchSizes,
  learningRateAt,
  MalformedTrainerState,
  MlpKernel,
  mlpLayout,
  resolveTrainerSpec,
  tokensFromShards,
  Xorshift128,
  type TrainerSpecInput,
} from '../lib/train';
import { encodeNpy } from '../lib/webdataset/npy';
import { TAR_END, tarHeader, tarPadding } from '../lib/webdataset/tar';

function concat(parts: Uint32Array[]): Uint32Array {
  const out = new Uint32Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Chapters of Moby-Dick as cl100k token streams: the first `trainChapters` for training, the next three for validation. */
function mobyDickTokens(trainChapters: number): { train: Uint32Array; validation: Uint32Array } {
  const chapters = sampleCorpus('moby-dick').documents.filter((d) => d.id.includes('/chapter-'));
  const tokenizer = new DocumentTokenizer('cl100k_base');
  try {
    const encode = (docs: typeof chapters) => concat(docs.map((d) => tokenizer.encodeDocument(d.text)));
    return {
      train: encode(chapters.slice(0, trainChapters)),
      validation: encode(chapters.slice(trainChapters, trainChapters + 3)),
    };
  } finally {
    tokenizer.free();
  }
}

const text = mobyDickTokens(4);

const small: TrainerSpecInput = {
  seed: 7,
  model: { contextTokens: 3, embeddingDim: 16, hiddenDim: 32, maxVocab: 1024 },
  sequenceTokens: 32,
  dataParallelRanks: 2,
  batch: { microBatchSizePerGpu: 2, gradientAccumulationSteps: 2 },
  optimizer: { lr: 1e-2 },
  schedule: { warmupSteps: 5, totalSteps: 60, minLrRatio: 0.1 },
};

const weightsSha = (files: Record<string, Buffer>) => createHash('sha256').update(files['weights.f32']).digest('hex');

describe('built-in trainer', () => {
  it('lowers training and validation loss on real text', async () => {
    const trainer = createTrainer(small, text.train);
    const before = trainer.evaluate(text.validation, { maxTokens: 2000 });
    const losses: number[] = [];
    const result = await trainer.trainSteps(60, (r) => {
      losses.push(r.loss);
    });
    const after = trainer.evaluate(text.validation, { maxTokens: 2000 });
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    assert.equal(result.step, 60);
    assert.ok(result.tokensPerSecond > 0);
    assert.ok(mean(losses.slice(-10)) < mean(losses.slice(0, 10)) - 1, `train loss ${losses[0]} → ${losses.at(-1)}`);
    assert.ok(after.loss < before.loss - 0.5, `validation loss ${before.loss} → ${after.loss}`);
    assert.ok(Math.abs(after.perplexity - Math.exp(after.loss)) < 1e-9);
    assert.equal(after.tokens, 2000);
  });

  it('gives bitwise-identical weights for the same spec, data and seed', async () => {
    const a = createTrainer(small, text.train);
    const b = createTrainer(small, text.train);
    await a.trainSteps(6);
    await b.trainSteps(6);
    assert.equal(weightsSha(a.serialize()), weightsSha(b.serialize()));
    const c = createTrainer({ ...small, seed: 8 }, text.train);
    await c.trainSteps(6);
    assert.notEqual(weightsSha(a.serialize()), weightsSha(c.serialize()));
  });

  it('computes ranks on worker threads with bitwise the same result as in turn', async () => {
    const inTurn = createTrainer(small, text.train);
    const threaded = createTrainer(small, text.train, { rankThreads: true });
    try {
      const a = await inTurn.trainSteps(4);
      const b = await threaded.trainSteps(4);
      assert.equal(a.loss, b.loss);
      const x = inTurn.serialize();
      const y = threaded.serialize();
      for (const name of Object.keys(x)) assert.ok(x[name].equals(y[name]), `${name} differs with rank threads`);
    } finally {
      await threaded.close();
    }
  });

  it('resumes exactly: N steps, serialize, restore into a fresh trainer, N more equals 2N straight', async () => {
    // A short epoch, so the resumed run also crosses an epoch boundary (a new shuffled order).
    const spec: TrainerSpecInput = { ...small, model: { ...small.model, maxVocab: 256 } };
    const tokens = text.train.subarray(0, 3 + 32 * 8 * 3);
    const straight = createTrainer(spec, tokens);
    assert.equal(straight.stepsPerEpoch, 3);
    await straight.trainSteps(8);

    const first = createTrainer(spec, tokens);
    await first.trainSteps(4);
    const saved = first.serialize();
    const resumed = createTrainer(spec, tokens);
    resumed.restore(saved);
    assert.equal(resumed.step, 4);
    await resumed.trainSteps(4);

    const x = straight.serialize();
    const y = resumed.serialize();
    assert.deepEqual(Object.keys(y).sort(), ['adam_m.f32', 'adam_v.f32', 'state.json', 'vocab.u32', 'weights.f32']);
    for (const name of Object.keys(x)) assert.ok(x[name].equals(y[name]), `${name} differs after resume`);
    assert.equal(resumed.epoch, 2);
  });

  it('averages data-parallel ranks in a fixed order: same global batch, ranks or accumulation, nearly equal', async () => {
    const byRanks = createTrainer(small, text.train);
    const byAccumulation = createTrainer(
      { ...small, dataParallelRanks: 1, batch: { microBatchSizePerGpu: 2, gradientAccumulationSteps: 4 } },
      text.train,
    );
    assert.equal(byRanks.batch.trainBatchSize, 8);
    assert.equal(byAccumulation.batch.trainBatchSize, 8);
    const a = await byRanks.trainSteps(3);
    const b = await byAccumulation.trainSteps(3);
    // Same sequences and arithmetic up to float32 summation order.
    assert.ok(Math.abs(a.loss - b.loss) < 1e-3, `${a.loss} vs ${b.loss}`);
  });

  it('computes gradients that match finite differences', () => {
    const shape = { vocabSize: 7, contextTokens: 2, embeddingDim: 3, hiddenDim: 5 };
    const rng = Xorshift128.fromSeed(3);
    const n = mlpLayout(shape).parameters;
    const params = new Float32Array(n).map(() => rng.nextFloat() - 0.5);
    const rows = Uint32Array.from({ length: 12 }, () => rng.nextBelow(7));
    const kernel = new MlpKernel(shape, 4); // several blocks per call
    const grad = new Float32Array(n);
    kernel.positions(params, rows, 2, 12, grad, 0.5);
    for (let i = 0; i < n; i++) {
      const original = params[i];
      params[i] = original + 1e-3;
      const up = kernel.positions(params, rows, 2, 12);
      const hUp = params[i] - original;
      params[i] = original - 1e-3;
      const down = kernel.positions(params, rows, 2, 12);
      const hDown = original - params[i];
      params[i] = original;
      const numeric = (0.5 * (up - down)) / (hUp + hDown);
      assert.ok(
        Math.abs(numeric - grad[i]) <= 1e-4 + 1e-3 * Math.abs(numeric),
        `parameter ${i}: backward ${grad[i]}, finite difference ${numeric}`,
      );
    }
  });

  it('refuses batch numbers that break DeepSpeed arithmetic, naming the numbers and the rule', () => {
    assert.throws(
      () => createTrainer({ ...small, batch: { trainBatchSize: 10, microBatchSizePerGpu: 3 } }, text.train),
      (error: unknown) => {
        assert.ok(error instanceof InvalidBatchSizes);
        assert.ok(error instanceof InvalidSpec);
        assert.match(error.message, /10 != 3 \* 1 \* 2/);
        assert.match(error.message, /trainBatchSize 10, microBatchSizePerGpu 3/);
        assert.match(
          error.message,
          /trainBatchSize = microBatchSizePerGpu × gradientAccumulationSteps × dataParallelRanks/,
        );
        return true;
      },
    );
    assert.throws(
      () => createTrainer({ ...small, batch: {} }, text.train),
      /Either train_batch_size or train_micro_batch_size_per_gpu needs to be provided/,
    );
    assert.deepEqual(
      resolveTrainerSpec({ dataParallelRanks: 2, batch: { trainBatchSize: 16, microBatchSizePerGpu: 2 } }).batch,
      { trainBatchSize: 16, microBatchSizePerGpu: 2, gradientAccumulationSteps: 4 },
    );
  });

  it('refuses a dataset too small for one step', () => {
    assert.throws(() => createTrainer(small, text.train.subarray(0, 200)), DatasetTooSmall);
  });

  it('refuses a checkpoint of another model shape, spec or dataset, naming each difference', async () => {
    const source = createTrainer(small, text.train);
    await source.trainSteps(1);
    const files = source.serialize();
    const other = createTrainer(
      { ...small, model: { ...small.model, hiddenDim: 16 }, optimizer: { lr: 2e-2 } },
      text.train,
    );
    assert.throws(
      () => other.restore(files),
      (error: unknown) => {
        assert.ok(error instanceof CheckpointMismatch);
        assert.deepEqual(
          error.differences.map((d) => d.field),
          ['shape.hiddenDim', 'spec.optimizer.lr'],
        );
        assert.match(error.message, /shape\.hiddenDim: checkpoint 32, trainer 16/);
        return true;
      },
    );
    const otherData = createTrainer(small, text.validation);
    assert.throws(() => otherData.restore(files), /data: checkpoint \d+ tokens/);
    assert.throws(
      () => createTrainer(small, text.train).restore({ ...files, 'adam_v.f32': files['adam_v.f32'].subarray(4) }),
      MalformedTrainerState,
    );
  });

  it('reads the token stream of WebDataset shards', () => {
    const entry = (name: string, data: Buffer) => [
      tarHeader(name, data.length, new Date(0)),
      data,
      tarPadding(data.length),
    ];
    const shard = (docs: number[][]) =>
      Buffer.concat([
        ...docs.flatMap((ids, i) => [
          ...entry(`sample-${i}.json`, Buffer.from('{}')),
          ...entry(`sample-${i}.tokens.npy`, encodeNpy(ids, 'uint16')),
        ]),
        TAR_END,
      ]);
    const tokens = tokensFromShards([
      shard([
        [5, 6, 100],
        [7, 100],
      ]),
      shard([[8, 9, 100]]),
    ]);
    assert.deepEqual([...tokens], [5, 6, 100, 7, 100, 8, 9, 100]);
  });
});

describe('optimizer pieces', () => {
  it('warms up linearly, then decays by cosine to the floor', () => {
    const s = { lr: 1, warmupSteps: 4, totalSteps: 14, minLrRatio: 0.1 };
    assert.deepEqual(
      [0, 1, 2, 3].map((i) => learningRateAt(i, s)),
      [0.25, 0.5, 0.75, 1],
    );
    assert.ok(Math.abs(learningRateAt(9, s) - 0.55) < 1e-12);
    assert.equal(learningRateAt(14, s), 0.1);
    assert.equal(learningRateAt(100, s), 0.1);
  });

  it('decouples weight decay from the adaptive step and skips biases', () => {
    const params = Float32Array.from([2, 2]);
    const zero = new Float32Array(2);
    adamWStep(params, zero, new Float32Array(2), new Float32Array(2), Uint8Array.from([1, 0]), 1, 0.1, {
      betas: [0.9, 0.999],
      eps: 1e-8,
      weightDecay: 0.5,
    });
    assert.equal(params[0], Math.fround(2 * (1 - 0.1 * 0.5)));
    assert.equal(params[1], 2);
  });

  it('clips the global gradient norm', () => {
    const grad = Float32Array.from([3, 4]);
    assert.equal(clipGradientNorm(grad, 1), 5);
    assert.ok(Math.abs(Math.hypot(grad[0], grad[1]) - 1) < 1e-5);
  });

  it('continues a random stream from its saved state', () => {
    const a = Xorshift128.fromSeed(42);
    a.nextUint32();
    const b = new Xorshift128(a.state);
    assert.deepEqual([a.nextUint32(), a.nextUint32()], [b.nextUint32(), b.nextUint32()]);
  });
});
