import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect/sample-corpus';
import { ExternalTrainerError, localizeDataset, runEvaluationCommand } from '../lib/external-trainer';
import { ExternalTrainerSpec } from '../lib/external-trainer/spec';
import { exportHfGpt2, ModelNotExportable, ModelRegistry, type ModelVersion } from '../lib/registry';
import type { TrainingInput, TrainingResult } from '../lib/contracts/training';
import { trainingWorkflowId } from '../lib/contracts/training';
import { tieredStoreFromConfig } from '../lib/storage';
import { toSafetensors } from '../lib/train/safetensors';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { runCli } from './support/cli';
import { temporalAddress, testConfig } from './support/temporal';

const root = path.join(__dirname, '..');
const torchGpt = path.join(root, 'examples', 'torch-gpt');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-torch-test-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

/**
 * The real-model tests need python3 with torch, transformers, webdataset and safetensors
 * (examples/torch-gpt/requirements.txt). Without them they are skipped with the reason printed; CI sets
 * FLYWHEEL_REQUIRE_TORCH=1 after installing them, and there a missing library fails instead.
 */
function torchMissing(): string | undefined {
  const probe = spawnSync('python3', ['-c', 'import torch, transformers, webdataset, safetensors'], {
    encoding: 'utf8',
  });
  if (probe.status === 0) return undefined;
  const reason = `python3 cannot import torch, transformers, webdataset and safetensors (pip install -r examples/torch-gpt/requirements.txt): ${(probe.stderr || String(probe.error)).trim().split('\n').at(-1)}`;
  if (process.env.FLYWHEEL_REQUIRE_TORCH === '1') throw new Error(reason);
  console.error(`[flywheel test] torch tests skipped: ${reason}`);
  return reason;
}

/** A tiny GPT, so two ranks train 40 steps in seconds on two cores. */
const MODEL_ARGS = ['--n-layer', '1', '--n-head', '2', '--n-embd', '32', '--n-positions', '32'];
const trainerCommand = (args: string[] = MODEL_ARGS) => [
  'python3',
  '-m',
  'torch.distributed.run',
  '--standalone',
  '--nproc-per-node',
  '2',
  path.join(torchGpt, 'train.py'),
  '--seed',
  '5',
  ...args,
  '--micro-batch',
  '4',
  '--lr',
  '0.01',
  '--warmup-steps',
  '5',
];
const EVALUATE = ['python3', path.join(torchGpt, 'evaluate.py')];
const EVAL_TOKENS = 2048;

const corpus = sampleCorpus('moby-dick').documents;

describe('real models: a PyTorch GPT trained by torchrun through the registry, the gate and export', () => {
  const skip = torchMissing();
  let connection: Connection;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let flywheel: FlywheelClient;
  let dataset: string;
  let plain: Promise<TrainingResult> | undefined;
  const registry = () => new ModelRegistry(tieredStoreFromConfig(config));
  const config_ = () => config;
  const spec = (run: string, extra: Partial<TrainingInput> = {}, env: Record<string, string> = {}): TrainingInput => ({
    run,
    model: 'tg',
    dataset,
    external: {
      command: trainerCommand(),
      evaluate: EVALUATE,
      env: { OMP_NUM_THREADS: '1', ...env },
      stallTimeoutSeconds: 120,
      killGraceSeconds: 5,
    },
    steps: 40,
    segmentSteps: 20,
    checkpointEvery: 10,
    evalEvery: 10,
    evalTokens: EVAL_TOKENS,
    retention: { keepLast: 2 },
    ...extra,
  });
  const trainPlain = () => (plain ??= flywheel.runTraining(spec('tg-plain')));
  const failureOf = async (promise: Promise<unknown>) => {
    const err = await promise.then(
      () => assert.fail('the run must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    // The first failure in the chain that has a type: the activity's, under the activity task's wrapper.
    let cause = err.cause as (Error & { type?: string; cause?: unknown }) | undefined;
    while (cause && cause.type === undefined) cause = cause.cause as typeof cause;
    assert.ok(cause, 'a typed failure');
    return cause;
  };

  before(async () => {
    if (skip) return;
    const address = await temporalAddress();
    config = testConfig(address);
    workers = await createWorkers(config);
    running = workers.run();
    connection = await Connection.connect({ address });
    flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: config.worker.taskQueuePrefix });
    const data = await flywheel.runPipeline({
      dataset: 'torch-data',
      sources: [{ type: 'sample', limit: 12 }],
      tokenizer: { encoding: 'gpt2' },
      dedup: { exact: true, near: {} },
      shards: { targetBytes: 1 << 16, validationFraction: 0.2 },
    });
    dataset = data.manifest.uri;
  });

  after(async () => {
    if (skip) return;
    await workers.shutdown();
    await running;
    await connection.close();
  });

  it(
    'trains on 2 gloo ranks, the loss falls, and the run registers its model files with lineage',
    { skip, timeout: 300_000 },
    async () => {
      const result = await trainPlain();
      assert.equal(result.step, 40);
      assert.equal(result.segments, 2);
      assert.ok(result.firstLoss! > result.loss + 1, `loss ${result.firstLoss} → ${result.loss}`);
      assert.deepEqual(result.model, { name: 'tg', version: 'v1' });
      const v1 = await registry().get('tg', 'v1');
      assert.deepEqual(
        v1.files.map((f) => f.name),
        ['model-config.json', 'model.safetensors'],
        'the model files, not the optimizer shards',
      );
      assert.equal(v1.run, 'tg-plain');
      assert.equal(v1.dataset, dataset);
      assert.equal(v1.step, 40);
      assert.match(v1.specDigest, /^[0-9a-f]{64}$/);
      assert.ok(v1.codeVersion.length > 0);
      assert.equal(v1.metrics.valLoss, result.valLoss);
      assert.equal((await registry().aliases('tg')).champion, 'v1', 'the first version is the champion');
    },
  );

  it(
    'a rank SIGKILLed mid-segment is retried from the last checkpoint and ends on bitwise-identical weights',
    { skip, timeout: 300_000 },
    async () => {
      const marker = path.join(scratch, 'rank-killed');
      const handle = await flywheel.startTraining(
        spec('tg-crash', { register: false }, { TORCH_GPT_CRASH_AT_STEP: '15', TORCH_GPT_CRASH_MARKER: marker }),
      );
      const result = await handle.result();
      assert.ok(fs.existsSync(marker), 'a rank was killed');
      assert.equal(result.step, 40);
      assert.equal(result.weightsSha256, (await trainPlain()).weightsSha256, 'resumed equals uninterrupted');
      const retried = ((await handle.fetchHistory()).events ?? []).flatMap((e) =>
        (e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1 ? [e.activityTaskStartedEventAttributes!] : [],
      );
      assert.equal(retried.length, 1, 'one segment was retried');
      const failure = retried[0].lastFailure;
      assert.equal(
        failure?.applicationFailureInfo?.type ?? failure?.cause?.applicationFailureInfo?.type,
        'ExternalTrainerCrashed',
        JSON.stringify(failure, (k, v: unknown) => (k === 'stackTrace' ? undefined : v)).slice(0, 2000),
      );
    },
  );

  it(
    'exports a Hugging Face directory that transformers loads, scoring the validation shards as the registry did',
    { skip, timeout: 300_000 },
    async () => {
      const trained = await trainPlain();
      const out = path.join(scratch, 'hf');
      const cli = await runCli(['models', 'export', 'tg', 'v1', '--format', 'hf', '--out', out], {
        TEMPORAL_ADDRESS: config.temporal.address,
        FLYWHEEL_HOME: config.home,
      });
      assert.equal(cli.status, 0, cli.stderr);
      assert.deepEqual(fs.readdirSync(out).sort(), ['config.json', 'generation_config.json', 'model.safetensors']);
      const hfConfig = JSON.parse(fs.readFileSync(path.join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(hfConfig.architectures, ['GPT2LMHeadModel']);
      assert.equal(hfConfig.vocab_size, 50257);
      const local = await localizeDataset(
        tieredStoreFromConfig(config),
        dataset,
        path.join(scratch, 'shards'),
        path.join(scratch, 'dataset.json'),
      );
      const check = spawnSync(
        'python3',
        [
          path.join(torchGpt, 'hf_check.py'),
          '--model-dir',
          out,
          '--shards',
          local.splits.validation.shards.join('::'),
          '--tokens',
          String(EVAL_TOKENS),
        ],
        { encoding: 'utf8', env: { ...process.env, HF_HUB_OFFLINE: '1', OMP_NUM_THREADS: '1' } },
      );
      assert.equal(check.status, 0, check.stderr);
      const hf = JSON.parse(check.stdout.trim().split('\n').at(-1)!) as { valLoss: number; class: string };
      assert.equal(hf.class, 'GPT2LMHeadModel');
      const registered = (await registry().get('tg', 'v1')).metrics.valLoss;
      assert.equal(registered, trained.valLoss);
      assert.ok(
        Math.abs(hf.valLoss - registered) / registered < 0.01,
        `transformers scores ${hf.valLoss}, the registry ${registered}`,
      );
    },
  );

  it(
    'trains from the DeepSpeed config `flywheel plan --emit-deepspeed` writes (batch, AdamW, clipping)',
    { skip, timeout: 120_000 },
    async () => {
      const ds = path.join(scratch, 'ds_config.json');
      const plan = await runCli([
        'plan',
        ...['--layers', '1', '--hidden', '32', '--heads', '2', '--vocab', '50257', '--seq', '32'],
        ...['--gpus', '1', '--gpu-mem', '16', '--micro-batches', '4', '--emit-deepspeed', ds],
      ]);
      assert.equal(plan.status, 0, plan.stderr);
      const config = JSON.parse(fs.readFileSync(ds, 'utf8')) as Record<string, number>;
      const local = await localizeDataset(
        tieredStoreFromConfig(config_()),
        dataset,
        path.join(scratch, 'shards'),
        path.join(scratch, 'ds-dataset.json'),
      );
      const run = spawnSync('python3', [path.join(torchGpt, 'train.py'), ...MODEL_ARGS, '--deepspeed-config', ds], {
        encoding: 'utf8',
        timeout: 100_000,
        env: {
          ...process.env,
          OMP_NUM_THREADS: '1',
          FLYWHEEL_TRAIN_SHARDS: local.splits.train.shards.join('::'),
          FLYWHEEL_VALIDATION_SHARDS: local.splits.validation.shards.join('::'),
          FLYWHEEL_VOCAB_SIZE: '50257',
          FLYWHEEL_CHECKPOINT_DIR: path.join(scratch, 'ds-checkpoints'),
          FLYWHEEL_START_STEP: '0',
          FLYWHEEL_UNTIL_STEP: '2',
          FLYWHEEL_TOTAL_STEPS: '2',
          FLYWHEEL_EVAL_TOKENS: '256',
        },
      });
      assert.equal(run.status, 0, run.stderr);
      const events = run.stdout
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line) as { event: string; step?: number });
      assert.deepEqual(
        events.map((e) => e.event),
        ['step', 'step', 'eval', 'checkpoint', 'done'],
      );
      assert.ok(config.train_batch_size >= 1, 'the plan wrote a batch size');
      assert.match(run.stderr, new RegExp(`global batch ${config.train_batch_size}\\b`));
    },
  );

  it(
    'a flywheel turn fine-tunes the champion with torchrun, scores both with the evaluation command, and decides',
    { skip, timeout: 600_000 },
    async () => {
      await trainPlain();
      const events = [60, 61, 62, 63, 64, 65, 66, 67].map((c, i) => {
        const text = corpus[c].text;
        const cut = text.indexOf(' ', 200);
        const base = {
          id: `torch-${c}`,
          ts: `2026-11-25T${String(10 + i).padStart(2, '0')}:00:00Z`,
          modelVersion: 'tg@v1',
          prompt: text.slice(0, cut),
          user: 'b'.repeat(64),
        };
        return i % 2
          ? { ...base, response: text.slice(cut), rating: { score: 0.9 } }
          : { ...base, response: 'I do not know.', rating: { thumbs: 'down' as const }, correction: text.slice(cut) };
      });
      const receipt = await flywheel.submitFeedback(events, { ledger: { flushIntervalMs: 200 } });
      await flywheel.waitFeedbackFlushed(receipt.ledgers);
      const result = await flywheel.runFlywheel({
        model: 'tg',
        training: { steps: 20, segmentSteps: 20, checkpointEvery: 10 },
        gate: { evalTokens: EVAL_TOKENS, minImprovement: 0.0001, guards: [] },
      });
      assert.ok(['promote', 'reject'].includes(result.decision), `${result.decision}: ${result.reasons.join('; ')}`);
      assert.equal(result.champion, 'v1');
      const { champion, challenger } = result.scores!;
      for (const s of [champion, challenger]) {
        assert.ok(Number.isFinite(s['heldout.valLoss']) && s['heldout.valLoss'] > 0);
        assert.ok(Number.isFinite(s['feedback.valLoss']));
      }
      assert.equal(result.championAfter, result.decision === 'promote' ? result.challenger : 'v1');
      const v2 = await registry().get('tg', result.challenger!);
      assert.deepEqual(v2.parent, { model: 'tg', version: 'v1' });
      const decisions = await registry().decisions('tg');
      assert.equal(decisions.at(-1)?.challenger, result.challenger);
      // Started from the champion's weights, the fine-tune's first loss is far below a fresh model's (ln 50257 ≈ 10.8).
      const fineTune = await flywheel.client.workflow.getHandle(trainingWorkflowId({ run: v2.run })).result();
      assert.ok(
        (fineTune as TrainingResult).firstLoss! < (await trainPlain()).firstLoss! - 1,
        `fine-tune starts at ${(fineTune as TrainingResult).firstLoss}`,
      );
    },
  );

  it(
    'weights whose shapes do not match the model a fine-tune starts from fail the run at once, naming the tensor',
    { skip, timeout: 300_000 },
    async () => {
      await trainPlain();
      const wider = trainerCommand(['--n-layer', '1', '--n-head', '2', '--n-embd', '48', '--n-positions', '32']);
      const base = spec('tg-bad-init', { init: { model: 'tg', version: 'v1' }, register: false });
      const failure = await failureOf(
        flywheel.runTraining({ ...base, external: { ...base.external!, command: wider } }),
      );
      assert.equal(failure.type, 'ExternalTrainerConfigError', failure.message);
      assert.match(failure.message, /transformer\.\w+/);
      assert.equal((await registry().aliases('tg')).champion !== undefined, true, 'the champion is untouched');
    },
  );
});

describe('evaluation commands and exports refuse bad input clearly', () => {
  const external = ExternalTrainerSpec.parse({
    command: ['true'],
    evaluate: ['python3', '-c', 'print("scoring..."); print("done")'],
    stallTimeoutSeconds: 30,
  });

  it('an evaluation command that prints no eval line is a protocol error naming the model', async () => {
    const err = await runEvaluationCommand({
      external,
      weightsDir: scratch,
      shards: [],
      evalTokens: 10,
      vocabSize: 10,
      label: 'm@v3',
    }).then(
      () => assert.fail('must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ExternalTrainerError, String(err));
    assert.equal(err.type, 'ExternalTrainerProtocolError');
    assert.match(err.message, /m@v3.*printed no \{"event":"eval"/);
  });

  it('an evaluation command exiting with a configuration code is not retried, and carries its stderr', async () => {
    const err = await runEvaluationCommand({
      external: {
        ...external,
        evaluate: ['sh', '-c', 'echo "no model.safetensors in $FLYWHEEL_EVAL_WEIGHTS_DIR" >&2; exit 2'],
      },
      weightsDir: '/nowhere',
      shards: ['a.tar', 'b.tar'],
      evalTokens: 10,
      vocabSize: 10,
      label: 'm@v3',
    }).then(
      () => assert.fail('must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ExternalTrainerError);
    assert.equal(err.type, 'ExternalTrainerConfigError');
    assert.equal(err.retryable, false);
    assert.deepEqual(err.stderrTail, ['no model.safetensors in /nowhere']);
  });

  it('a version without an evaluation command cannot be scored', async () => {
    await assert.rejects(
      runEvaluationCommand({
        external: { ...external, evaluate: undefined },
        weightsDir: scratch,
        shards: [],
        evalTokens: 1,
        vocabSize: 1,
        label: 'm@v1',
      }),
      /m@v1 was trained by an external command without external\.evaluate/,
    );
  });

  const version = { model: 'm', version: 'v2', run: 'r', step: 10, dataset: 'warm://d', weightsSha256: 'x' };
  const gptConfig = {
    architecture: 'gpt2',
    nLayer: 1,
    nHead: 2,
    nEmbd: 4,
    nPositions: 8,
    vocabSize: 10,
    tiedHead: true,
  };
  const tensor = (name: string, shape: number[]) => ({
    name,
    shape,
    data: new Float32Array(shape.reduce((a, b) => a * b, 1)),
  });
  const gptTensors = () => [
    tensor('transformer.wte.weight', [10, 4]),
    tensor('transformer.wpe.weight', [8, 4]),
    tensor('transformer.ln_f.weight', [4]),
    tensor('transformer.ln_f.bias', [4]),
    ...[
      ['ln_1.weight', [4]],
      ['ln_1.bias', [4]],
      ['attn.c_attn.weight', [4, 12]],
      ['attn.c_attn.bias', [12]],
      ['attn.c_proj.weight', [4, 4]],
      ['attn.c_proj.bias', [4]],
      ['ln_2.weight', [4]],
      ['ln_2.bias', [4]],
      ['mlp.c_fc.weight', [4, 16]],
      ['mlp.c_fc.bias', [16]],
      ['mlp.c_proj.weight', [16, 4]],
      ['mlp.c_proj.bias', [4]],
    ].map(([n, s]) => tensor(`transformer.h.0.${n as string}`, s as number[])),
  ];
  const files = (config: unknown, tensors = gptTensors()) => ({
    'model-config.json': Buffer.from(JSON.stringify(config)),
    'model.safetensors': toSafetensors(tensors),
  });

  it('exports a GPT-2-shaped model as config.json, model.safetensors and generation_config.json', () => {
    const out = exportHfGpt2(version as ModelVersion, files(gptConfig), { eot: 9, encoding: 'gpt2' });
    assert.deepEqual(Object.keys(out).sort(), ['config.json', 'generation_config.json', 'model.safetensors']);
    const config = JSON.parse(out['config.json'].toString()) as Record<string, unknown>;
    assert.equal(config.n_embd, 4);
    assert.equal(config.tie_word_embeddings, true);
    assert.equal(config.eos_token_id, 9);
  });

  it('refuses a built-in model, a wrong shape and a stray tensor, naming model, version and tensor', () => {
    const refuses = (f: Record<string, Buffer>, pattern: RegExp) =>
      assert.throws(
        () => exportHfGpt2(version as ModelVersion, f),
        (e: unknown) => e instanceof ModelNotExportable && /model m v2/.test(e.message) && pattern.test(e.message),
      );
    refuses(
      { 'weights.f32': Buffer.alloc(4), 'shape.json': Buffer.from('{}') },
      /no model-config\.json or model\.safetensors/,
    );
    refuses(files({ ...gptConfig, architecture: 'llama' }), /architecture/);
    const wrong = gptTensors();
    wrong[0] = tensor('transformer.wte.weight', [11, 4]);
    refuses(files(gptConfig, wrong), /transformer\.wte\.weight has shape \[11, 4\], the config needs \[10, 4\]/);
    refuses(files(gptConfig, [...gptTensors(), tensor('extra', [1])]), /extra is not a GPT2LMHeadModel tensor/);
    refuses(files({ ...gptConfig, tiedHead: false }), /lm_head\.weight is missing/);
  });
});
