import * as assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import { DocumentTokenizer } from '../lib/tokenize';
import { createTrainer, generateText, generateTokens, type Trainer, type TrainerSpecInput } from '../lib/train';

const PATTERN = [101, 202, 303, 404, 505];
const patternTokens = (n: number) => Uint32Array.from({ length: n }, (_, i) => PATTERN[i % PATTERN.length]);

const tiny: TrainerSpecInput = {
  seed: 3,
  model: { contextTokens: 2, embeddingDim: 8, hiddenDim: 16 },
  sequenceTokens: 16,
  batch: { trainBatchSize: 4 },
  optimizer: { lr: 3e-2 },
  schedule: { warmupSteps: 5, totalSteps: 80 },
};

/** Random weights over a varied stream: a spread-out next-token distribution to sample from. */
function untrained(): Trainer {
  return createTrainer(
    tiny,
    Uint32Array.from({ length: 600 }, (_, i) => (i * 7919) % 23),
  );
}

function softmaxOverKnown(logits: Float64Array): number[] {
  const known = Array.from(logits).slice(1);
  const max = Math.max(...known);
  const e = known.map((l) => Math.exp(l - max));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / sum);
}

describe('text generation', () => {
  let patterned: Trainer;
  before(async () => {
    patterned = createTrainer(tiny, patternTokens(1000));
    await patterned.trainSteps(80);
  });

  it('continues the pattern it was trained on', () => {
    assert.deepEqual(
      generateTokens(patterned, [101, 202], { maxTokens: 8, temperature: 0 }),
      [303, 404, 505, 101, 202, 303, 404, 505],
    );
    const sampled = generateTokens(patterned, [404], { maxTokens: 40, temperature: 0.7, seed: 5, padToken: 303 });
    const expected = Array.from({ length: 40 }, (_, i) => PATTERN[(4 + i) % 5]);
    const agree = sampled.filter((id, i) => id === expected[i]).length;
    assert.ok(agree >= 36, `sampled ${sampled.join(' ')} follows the pattern at only ${agree} of 40 positions`);
  });

  it('is greedy at temperature 0: each token is the argmax of the logits', () => {
    const model = untrained();
    const prompt = [7, 14, 0];
    const out = generateTokens(model, prompt, { maxTokens: 12, temperature: 0 });
    const rows = prompt.map((id) => model.vocabulary.row(id));
    for (const id of out) {
      const logits = model.nextTokenLogits(rows.slice(-2));
      let best = 1;
      for (let r = 2; r < logits.length; r++) if (logits[r] > logits[best]) best = r;
      assert.equal(id, model.vocabulary.ids[best - 1]);
      rows.push(best);
    }
  });

  it('gives the same tokens for the same seed, and others for another seed', () => {
    const model = untrained();
    const run = (seed: number) => generateTokens(model, [3], { maxTokens: 30, seed });
    assert.deepEqual(run(11), run(11));
    assert.notDeepEqual(run(11), run(12));
  });

  it('with top-k = 1, or a tiny top-p, picks what greedy picks', () => {
    const model = untrained();
    const greedy = generateTokens(model, [5, 6], { maxTokens: 15, temperature: 0 });
    assert.deepEqual(generateTokens(model, [5, 6], { maxTokens: 15, topK: 1, seed: 9 }), greedy);
    assert.deepEqual(generateTokens(model, [5, 6], { maxTokens: 15, topP: 1e-9, seed: 9 }), greedy);
  });

  it('samples the next token with the softmax probabilities, never the unknown row', () => {
    const model = untrained();
    const prompt = [1, 2];
    const probs = softmaxOverKnown(model.nextTokenLogits(prompt.map((id) => model.vocabulary.row(id))));
    const N = 3000;
    const counts = new Map<number, number>();
    for (let seed = 0; seed < N; seed++) {
      const [id] = generateTokens(model, prompt, { maxTokens: 1, seed });
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    for (const id of counts.keys()) assert.ok(model.vocabulary.row(id) > 0, `sampled unknown id ${id}`);
    probs.forEach((p, i) => {
      const freq = (counts.get(model.vocabulary.ids[i]) ?? 0) / N;
      const tolerance = 5 * Math.sqrt((p * (1 - p)) / N) + 1e-3;
      assert.ok(Math.abs(freq - p) < tolerance, `row ${i + 1}: frequency ${freq} vs probability ${p}`);
    });
  });

  it('keeps only the k most likely tokens with top-k, and the nucleus with top-p', () => {
    const model = untrained();
    const prompt = [4, 8];
    const probs = softmaxOverKnown(model.nextTokenLogits(prompt.map((id) => model.vocabulary.row(id))));
    const ranked = probs.map((p, i) => ({ p, id: model.vocabulary.ids[i] })).sort((a, b) => b.p - a.p);
    const first = (opts: { topK?: number; topP?: number }) =>
      new Set(
        Array.from({ length: 400 }, (_, seed) => generateTokens(model, prompt, { maxTokens: 1, seed, ...opts })[0]),
      );
    assert.deepEqual(first({ topK: 3 }), new Set(ranked.slice(0, 3).map((r) => r.id)));
    let nucleus = 0;
    let mass = 0;
    while (mass < 0.5) mass += ranked[nucleus++].p;
    assert.deepEqual(first({ topP: 0.5 }), new Set(ranked.slice(0, nucleus).map((r) => r.id)));
  });

  it('computes the same logits as training and evaluation', () => {
    const stream = patternTokens(60);
    const rows = patterned.vocabulary.encode(stream);
    let loss = 0;
    for (let t = 2; t < rows.length; t++) {
      const logits = patterned.nextTokenLogits(rows.subarray(t - 2, t));
      const max = Math.max(...logits);
      const sum = logits.reduce((s, l) => s + Math.exp(l - max), 0);
      loss += Math.log(sum) - (logits[rows[t]] - max);
    }
    assert.ok(Math.abs(loss / (rows.length - 2) - patterned.evaluate(stream).loss) < 1e-9);
  });

  it('stops before the stop token, and generates nothing for maxTokens 0', () => {
    assert.deepEqual(
      generateTokens(patterned, [101, 202], { maxTokens: 10, temperature: 0, stopToken: 505 }),
      [303, 404],
    );
    assert.deepEqual(generateTokens(patterned, [101, 202], { maxTokens: 0 }), []);
  });

  it('reads unknown prompt ids as the unknown row, and pads a short prompt', () => {
    const out = generateTokens(patterned, [999_999], { maxTokens: 5, temperature: 0 });
    assert.equal(out.length, 5);
    for (const id of out) assert.ok(PATTERN.includes(id));
  });

  it('rejects bad options, naming every bad field', () => {
    assert.throws(
      () => generateTokens(patterned, [1], { maxTokens: -1, temperature: -0.5, topK: 0, topP: 1.5, seed: 1.5 }),
      (err: unknown) =>
        err instanceof InvalidSpec &&
        ['maxTokens', 'temperature', 'topK', 'topP', 'seed'].every((f) => err.problems.some((p) => p.field === f)),
    );
    assert.throws(() => generateTokens(patterned, [1], { maxTokens: 1, topP: 0 }), /topP/);
    assert.throws(() => generateTokens(patterned, [1, -2], { maxTokens: 1 }), /prompt\.1/);
    assert.throws(() => generateText(patterned, 'x', 'no-such-encoding', { maxTokens: 1 }), /unknown encoding/);
  });

  it('continues text through the tiktoken encoding, starting after and stopping at end-of-text', async () => {
    const tokenizer = new DocumentTokenizer('cl100k_base');
    const documents = Array.from({ length: 80 }, () => tokenizer.encodeDocument('the cat sat on the mat.'));
    tokenizer.free();
    const tokens = Uint32Array.from(documents.flatMap((d) => Array.from(d)));
    const model = createTrainer(tiny, tokens);
    await model.trainSteps(80);
    const greedy = { maxTokens: 20, temperature: 0 };
    assert.equal(generateText(model, 'the cat sat on', 'cl100k_base', greedy), ' the mat.');
    assert.equal(generateText(model, '', 'cl100k_base', greedy), 'the cat sat on the mat.');
    const seeded = (seed: number) =>
      generateText(model, 'the', 'cl100k_base', { maxTokens: 10, temperature: 1.5, seed });
    assert.equal(seeded(4), seeded(4));
  });
});
