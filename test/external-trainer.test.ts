import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { CheckpointManager, keepLastN } from '../lib/checkpoint';
import {
  ExternalTrainerError,
  exitFailure,
  LineTail,
  localizeDataset,
  parseProtocolLine,
  prepareWorkDir,
  ProcessGroup,
  recordTrainer,
  removeWorkDir,
  runExternalTrainer,
  SegmentProgress,
} from '../lib/external-trainer';
import type { TrainingInput, TrainingResult } from '../lib/contracts/training';
import {
  commitManifest,
  createS3Client,
  FsStore,
  readManifest,
  S3Store,
  TieredStore,
  tieredStoreFromConfig,
} from '../lib/storage';
import { FlywheelClient } from '../client/flywheel-client';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { s3ClientOptions, startS3Server } from './support/s3-server';
import { temporalAddress, testConfig } from './support/temporal';

const root = path.join(__dirname, '..');
const referenceTrainer = path.join(root, 'examples', 'reference_trainer.py');
/**
 * Processes of a process group that are still running (exited ones waiting to be reaped do not count), polled until
 * none are left or `ms` pass.
 */
async function groupMembersAfter(pgid: number, ms: number): Promise<number[]> {
  const live = () =>
    fs.readdirSync('/proc').flatMap((entry) => {
      if (!/^\d+$/.test(entry)) return [];
      try {
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so parse after its closing parenthesis.
        const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
        const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        return Number(pgrp) === pgid && state !== 'Z' && state !== 'X' ? [Number(entry)] : [];
      } catch {
        return [];
      }
    });
  const deadline = Date.now() + ms;
  let members = live();
  while (members.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    members = live();
  }
  return members;
}

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-external-test-'));
after(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('the external trainer protocol', () => {
  it('reads events (also behind a launcher prefix) and treats every other line as text', () => {
    assert.deepEqual(parseProtocolLine('{"event":"step","step":3,"loss":2.5,"tokensPerSecond":900}'), {
      kind: 'event',
      event: { event: 'step', step: 3, loss: 2.5, tokensPerSecond: 900 },
    });
    assert.deepEqual(parseProtocolLine('[default0]:{"event":"done","step":40}'), {
      kind: 'event',
      event: { event: 'done', step: 40 },
    });
    for (const line of ['loading shards', '{"not": "ours"}', '{"event":"log","message":"hi"}', '{"event": broken'])
      assert.deepEqual(parseProtocolLine(line), { kind: 'text', line });
  });

  it('refuses a malformed event, naming the field', () => {
    assert.throws(
      () => parseProtocolLine('{"event":"checkpoint","step":-1,"files":["../x"]}'),
      (err: unknown) =>
        err instanceof ExternalTrainerError &&
        err.type === 'ExternalTrainerProtocolError' &&
        !err.retryable &&
        /malformed checkpoint event.*step/.test(err.message),
    );
  });

  it('keeps the last lines of stderr, each cut to a bounded length', () => {
    const tail = new LineTail(50, 20);
    for (let i = 1; i <= 120; i++) tail.push(`line ${i}`);
    tail.push('x'.repeat(100));
    const lines = tail.lines();
    assert.equal(lines.length, 50);
    assert.equal(lines[0], 'line 72');
    assert.equal(lines.at(-1), `${'x'.repeat(20)}…`);
  });

  it('maps exits: done is success, a crash is retried, a configuration code and a silent exit 0 are not', () => {
    const opts = { nonRetryableExitCodes: [2], stderrTail: ['boom'] };
    assert.equal(exitFailure({ code: 0, signal: null }, { ...opts, sawDone: true }), undefined);
    const cases = [
      [{ code: 1, signal: null }, 'ExternalTrainerCrashed', true],
      [{ code: null, signal: 'SIGKILL' }, 'ExternalTrainerCrashed', true],
      [{ code: 2, signal: null }, 'ExternalTrainerConfigError', false],
      [{ code: 0, signal: null }, 'ExternalTrainerProtocolError', false],
    ] as const;
    for (const [exit, type, retryable] of cases) {
      const failure = exitFailure(exit, { ...opts, sawDone: false })!;
      assert.equal(failure.type, type);
      assert.equal(failure.retryable, retryable);
      assert.deepEqual(failure.stderrTail, ['boom']);
      assert.match(failure.message, /Last 1 line of the trainer's stderr:\n {2}boom$/);
    }
  });

  it('holds a segment to its plan: nothing past its end, done only after the final checkpoint', () => {
    const spec = { steps: 100, segmentSteps: 20, earlyStopping: undefined };
    const progress = new SegmentProgress(
      spec,
      { step: 20, evaluations: [] },
      { earlyStop: { sinceBest: 0 }, from: 20 },
    );
    assert.equal(progress.until, 40);
    progress.step({ event: 'step', step: 21, loss: 3, tokensPerSecond: 1 });
    assert.throws(() => progress.step({ event: 'step', step: 21, loss: 3, tokensPerSecond: 1 }), /must increase/);
    assert.throws(() => progress.step({ event: 'step', step: 41, loss: 3, tokensPerSecond: 1 }), /past this segment/);
    progress.checkpoint({ event: 'checkpoint', step: 40 });
    assert.throws(() => progress.done({ event: 'done', step: 40 }), /without its checkpoint/);
    progress.committed(40);
    progress.done({ event: 'done', step: 40 });
    assert.equal(progress.finished, true);
  });

  it('kills a silent trainer as stalled (retryable) with its stderr tail, and its whole group', async () => {
    let pid = 0;
    const started = Date.now();
    const err = await runExternalTrainer({
      launch: { argv: ['sh', '-c', 'echo warming up >&2; sleep 600 & sleep 600'], env: process.env },
      stallTimeoutMs: 500,
      killGraceMs: 200,
      nonRetryableExitCodes: [2],
      onStart: (trainer) => void (pid = trainer.pid),
      onEvent: () => undefined,
    }).then(
      () => assert.fail('a stalled trainer must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ExternalTrainerError, String(err));
    assert.equal(err.type, 'ExternalTrainerStalled');
    assert.equal(err.retryable, true);
    assert.deepEqual(err.stderrTail, ['warming up']);
    assert.ok(Date.now() - started < 10_000);
    assert.deepEqual(await groupMembersAfter(pid, 2_000), [], 'no process of the group is left');
  });

  it('a trainer left running by a killed worker is killed by the next attempt on that machine', async () => {
    const root = path.join(scratch, 'work');
    const first = await prepareWorkDir(root);
    const leftover = await ProcessGroup.start({
      argv: ['sh', '-c', 'sleep 600 & sleep 600'],
      env: { ...process.env, FLYWHEEL_TRAINER_ID: first.trainerId },
    });
    await recordTrainer(first, leftover.pid);
    const second = await prepareWorkDir(root);
    assert.deepEqual(await groupMembersAfter(leftover.pid, 2_000), []);
    assert.equal(fs.existsSync(first.attempt), false, "the dead attempt's folder is removed");
    await removeWorkDir(second);
    assert.equal(fs.existsSync(root), false);
  });

  it('a fatal event fails for good with its message, whatever the exit code (torchrun exits 1)', async () => {
    const line = JSON.stringify({ event: 'fatal', message: 'init: tensor transformer.wte.weight has shape [9, 4]' });
    await assert.rejects(
      runExternalTrainer({
        launch: { argv: ['sh', '-c', `echo '[default1]:${line}'; exit 1`], env: process.env },
        stallTimeoutMs: 10_000,
        killGraceMs: 0,
        nonRetryableExitCodes: [2],
        onEvent: () => undefined,
      }),
      (err: unknown) =>
        err instanceof ExternalTrainerError &&
        err.type === 'ExternalTrainerConfigError' &&
        !err.retryable &&
        /refused its configuration: init: tensor transformer\.wte\.weight/.test(err.message),
    );
  });

  it('a command that cannot start is a configuration error', async () => {
    await assert.rejects(
      runExternalTrainer({
        launch: { argv: ['/nonexistent/trainer'], env: process.env },
        stallTimeoutMs: 1000,
        killGraceMs: 0,
        nonRetryableExitCodes: [2],
        onEvent: () => undefined,
      }),
      (err: unknown) =>
        err instanceof ExternalTrainerError && err.type === 'ExternalTrainerConfigError' && /ENOENT/.test(err.message),
    );
  });
});

describe('trainingRun with an external trainer', () => {
  let connection: Connection;
  let client: Client;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let flywheel: FlywheelClient;
  let dataset: string;
  let uninterrupted: Promise<TrainingResult> | undefined;

  const spec = (run: string, external: Partial<NonNullable<TrainingInput['external']>> = {}): TrainingInput => ({
    run,
    dataset,
    external: {
      command: ['python3', referenceTrainer, '--seed', '7', '--dim', '8', '--max-vocab', '256'],
      stallTimeoutSeconds: 60,
      killGraceSeconds: 5,
      ...external,
    },
    steps: 40,
    segmentSteps: 20,
    checkpointEvery: 10,
    evalEvery: 10,
    heartbeatTimeoutSeconds: 4,
    retention: { keepLast: 2 },
  });
  const checkpointsOf = (run: string) =>
    new CheckpointManager({
      store: tieredStoreFromConfig(config),
      runPrefix: `runs/${run}/checkpoints`,
      policy: [keepLastN(2)],
    });
  const failureOf = async (handle: WorkflowHandle): Promise<unknown> => {
    const err = await handle.result().then(
      () => assert.fail('the run must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError, String(err));
    return err.cause?.cause ?? err.cause;
  };
  const attempts = async (handle: WorkflowHandle) =>
    ((await handle.fetchHistory()).events ?? []).flatMap((e) =>
      e.activityTaskStartedEventAttributes ? [e.activityTaskStartedEventAttributes] : [],
    );
  const heartbeatOf = async (handle: WorkflowHandle) => {
    const data = (await handle.describe()).raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0]?.data;
    return data ? (JSON.parse(Buffer.from(data).toString()) as { step: number; pid?: number }) : undefined;
  };
  const runUninterrupted = () => (uninterrupted ??= flywheel.runTraining(spec('ext-plain')));

  before(async () => {
    const python = spawnSync('python3', ['-c', 'import numpy, webdataset'], { encoding: 'utf8' });
    assert.equal(python.status, 0, `the reference trainer needs python3 with numpy and webdataset: ${python.stderr}`);
    const address = await temporalAddress();
    config = testConfig(address);
    workers = await createWorkers(config, { roles: ['io', 'cpu', 'train'] });
    running = workers.run();
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    flywheel = new FlywheelClient(client, { taskQueuePrefix: config.worker.taskQueuePrefix });
    const data = await flywheel.runPipeline({
      dataset: 'external-data',
      sources: [{ type: 'sample', limit: 16 }],
      shards: { targetBytes: 1 << 20, validationFraction: 0.1 },
    });
    dataset = data.manifest.uri;
  });

  after(async () => {
    await workers.shutdown();
    await running;
    await connection.close();
  });

  it(
    'trains in segments, commits its checkpoints with manifests to warm, and the loss goes down',
    { timeout: 180_000 },
    async () => {
      const result = await runUninterrupted();
      assert.equal(result.step, 40);
      assert.equal(result.segments, 2);
      assert.ok(result.firstLoss! > result.loss + 0.5, `loss ${result.firstLoss} → ${result.loss}`);
      assert.deepEqual(
        result.evaluations.map((e) => e.step),
        [10, 20, 30, 40],
      );
      assert.equal(result.valLoss, result.evaluations.at(-1)!.valLoss);
      assert.deepEqual(result.checkpoints, [10, 20, 30, 40]);
      assert.match(result.weightsSha256, /^[0-9a-f]{64}$/);
      assert.deepEqual(result.model, { name: 'ext-plain', version: 'v1' }, 'external runs are registered');

      const checkpoints = checkpointsOf('ext-plain');
      const kept = await checkpoints.list();
      assert.deepEqual(
        kept.map((c) => c.step),
        [30, 40],
        'retention keeps the last 2',
      );
      for (const c of kept) {
        assert.ok(c.tiers.includes('warm'), `step ${c.step} is committed to warm`);
        const manifest = await readManifest(tieredStoreFromConfig(config), c.manifests.warm!);
        assert.deepEqual(manifest.objects.map((o) => o.uri.split('/files/')[1]).sort(), [
          '.flywheel/evaluations.json',
          '.flywheel/progress.json',
          'model.npz',
          'state.json',
        ]);
      }
      assert.equal((await checkpoints.readLatest())?.step, 40);
    },
  );

  it(
    'a trainer crash mid-segment is retried and resumes from the last checkpoint to the same weights',
    { timeout: 180_000 },
    async () => {
      const marker = path.join(scratch, 'crashed-once');
      const handle = await flywheel.startTraining(
        spec('ext-crash', { env: { REFERENCE_TRAINER_CRASH_AT_STEP: '25', REFERENCE_TRAINER_CRASH_MARKER: marker } }),
      );
      const result = await handle.result();
      assert.ok(fs.existsSync(marker), 'the trainer crashed');
      assert.equal(result.step, 40);
      assert.equal(result.segments, 2);
      assert.deepEqual(
        result.evaluations.map((e) => e.step),
        [10, 20, 30, 40],
      );
      assert.equal(result.weightsSha256, (await runUninterrupted()).weightsSha256, 'resumed equals uninterrupted');
      const retried = (await attempts(handle)).filter((a) => (a.attempt ?? 1) > 1);
      assert.equal(retried.length, 1, 'one segment was retried');
      assert.equal(retried[0].lastFailure?.applicationFailureInfo?.type, 'ExternalTrainerCrashed');
      assert.match(retried[0].lastFailure?.message ?? '', /killed by SIGKILL/);
    },
  );

  it(
    'a bad configuration exit code fails the run at once, carrying the tail of stderr',
    { timeout: 180_000 },
    async () => {
      const handle = await flywheel.startTraining({
        ...spec('ext-bad-config'),
        external: { command: ['python3', referenceTrainer, '--dim', '0'] },
      });
      const cause = await failureOf(handle);
      assert.ok(cause instanceof ApplicationFailure, String(cause));
      assert.equal(cause.type, 'ExternalTrainerConfigError');
      assert.equal(cause.nonRetryable, true);
      assert.match(cause.message, /exited with code 2/);
      assert.match(cause.message, /--dim must be at least 1, got 0/);
      const [details] = cause.details as [{ exitCode: number; stderrTail: string[] }];
      assert.equal(details.exitCode, 2);
      assert.ok(details.stderrTail.some((line) => /--dim must be at least 1/.test(line)));
      assert.deepEqual(
        (await attempts(handle)).map((a) => a.attempt),
        [1],
        'never retried',
      );
    },
  );

  it('stops the trainer at the checkpoint after validation loss stops improving', { timeout: 180_000 }, async () => {
    // No drop of 100 nats counts as improvement: patience 1 is spent at the second evaluation (step 20).
    // Steps of 50 ms: the stop sent after step 20's checkpoint is committed lands before the trainer reaches step 40.
    const result = await flywheel.runTraining({
      ...spec('ext-early', { env: { REFERENCE_TRAINER_STEP_SECONDS: '0.05' } }),
      segmentSteps: 40,
      earlyStopping: { patience: 1, minDelta: 100 },
    });
    assert.equal(result.stoppedEarly, true);
    assert.ok(result.step >= 20 && result.step < 40, `stopped at step ${result.step}`);
    assert.equal(result.checkpoints.at(-1), result.step);
    assert.deepEqual(
      result.evaluations.slice(0, 2).map((e) => e.step),
      [10, 20],
    );
  });

  it(
    'cancelling the run terminates the trainer process group and keeps its last checkpoint',
    { timeout: 180_000 },
    async () => {
      const handle = await flywheel.startTraining({
        ...spec('ext-cancel', {
          report: 'file',
          killGraceSeconds: 2,
          env: { REFERENCE_TRAINER_HELPER: '1', REFERENCE_TRAINER_STEP_SECONDS: '0.02' },
        }),
        steps: 100_000,
        segmentSteps: 100_000,
      });
      let pid = 0;
      for (;;) {
        assert.equal((await handle.describe()).status.name, 'RUNNING', 'the run is still going');
        const beat = await heartbeatOf(handle);
        if (beat?.pid !== undefined && beat.step >= 15) {
          pid = beat.pid;
          break;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok((await groupMembersAfter(pid, 0)).length >= 2, 'the trainer and its helper run before the cancel');
      await handle.cancel();
      const err = await handle.result().then(
        () => assert.fail('a cancelled run must not complete'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
      assert.deepEqual(await groupMembersAfter(pid, 2_000), [], 'the helper that ignored SIGTERM is gone too');
      const latest = await checkpointsOf('ext-cancel').restoreLatest();
      assert.ok(latest.step >= 15, `the trainer checkpointed on SIGTERM, at step ${latest.step}`);
      assert.deepEqual(latest.skipped, []);
    },
  );
});

describe('the dataset an external trainer reads', () => {
  it('downloads shards from an S3 tier once, verified, and names them in FLYWHEEL_DATASET_FILE', async () => {
    const s3 = await startS3Server();
    after(() => s3.stop());
    const bucket = `flywheel-external-${Date.now().toString(36)}`;
    const warm = new S3Store({ bucket, prefix: 'warm', client: createS3Client(s3ClientOptions(s3)) });
    await warm.ensureBucket();
    const local = new FsStore(path.join(scratch, 'tiers'));
    const store = new TieredStore({ hot: local, warm, cold: local });
    const shard = Buffer.from('a shard stand-in');
    const put = await store.put('warm://datasets/d/v1/shard-000000.tar', shard);
    const meta = {
      tokenizer: { encoding: 'gpt2', dtype: 'uint16', eot: 50256, vocabSize: 50257 },
      splits: {
        train: { documents: 1, tokens: 4, shards: [{ uri: put.uri, samples: 1, tokens: 4 }] },
        validation: { documents: 0, tokens: 0, shards: [] },
      },
    };
    const manifest = await commitManifest(store, 'warm://datasets/d/v1/manifest.json', {
      kind: 'dataset',
      name: 'd/v1',
      objects: [put],
      meta,
    });
    const cache = path.join(scratch, 'shard-cache');
    const file = path.join(scratch, 'dataset.json');
    const local1 = await localizeDataset(store, manifest.uri, cache, file);
    const [downloaded] = local1.splits.train.shards;
    assert.equal(path.dirname(downloaded), cache);
    assert.deepEqual(fs.readFileSync(downloaded), shard);
    assert.deepEqual(JSON.parse(fs.readFileSync(file, 'utf8')), local1);
    const mtime = fs.statSync(downloaded).mtimeMs;
    await localizeDataset(store, manifest.uri, cache, file);
    assert.equal(fs.statSync(downloaded).mtimeMs, mtime, 'a cached shard is not downloaded again');

    await store.put(put.uri, Buffer.from('another shard, not the one the manifest names'));
    fs.rmSync(cache, { recursive: true });
    await assert.rejects(localizeDataset(store, manifest.uri, cache, file), { name: 'ChecksumMismatch' });
    assert.deepEqual(fs.readdirSync(cache), [], 'nothing half-downloaded is left');
  });
});
