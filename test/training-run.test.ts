import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { CheckpointManager, keepLastN } from '../lib/checkpoint';
import { ModelRegistry } from '../lib/registry';
import { tieredStoreFromConfig } from '../lib/storage';
import { FlywheelClient } from '../client/flywheel-client';
import type { TrainingInput, TrainingProgress } from '../lib/contracts/training';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { temporalAddress, testConfig } from './support/temporal';

const root = path.join(__dirname, '..');

describe('the trainingRun workflow', () => {
  let connection: Connection;
  let client: Client;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let flywheel: FlywheelClient;
  let dataset: string;

  const registry = () => new ModelRegistry(tieredStoreFromConfig(config));
  const spec = (run: string): TrainingInput => ({
    run,
    dataset,
    trainer: {
      seed: 7,
      model: { contextTokens: 3, embeddingDim: 16, hiddenDim: 32, maxVocab: 512 },
      sequenceTokens: 32,
      batch: { microBatchSizePerGpu: 4, gradientAccumulationSteps: 2 },
      schedule: { warmupSteps: 5 },
    },
    steps: 60,
    segmentSteps: 20,
    checkpointEvery: 10,
    heartbeatTimeoutSeconds: 4,
    retention: { keepLast: 2 },
  });

  before(async () => {
    const address = await temporalAddress();
    config = testConfig(address);
    // io and cpu here; train in the same process for the plain run, in a child process for the kill test.
    workers = await createWorkers(config, { roles: ['io', 'cpu'] });
    running = workers.run();
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    flywheel = new FlywheelClient(client, { taskQueuePrefix: config.worker.taskQueuePrefix });
    const data = await flywheel.runPipeline({
      dataset: 'train-data',
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

  function trainWorkerProcess(): ChildProcess {
    return spawn(process.execPath, [path.join(root, 'bin', 'flywheel.js'), 'worker', '--queues', 'train'], {
      cwd: root,
      env: {
        ...process.env,
        TEMPORAL_ADDRESS: config.temporal.address,
        FLYWHEEL_HOME: config.home,
        FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
        FLYWHEEL_METRICS_PORT: '0',
        FLYWHEEL_REACH_UNRESTRICTED: '1',
      },
      stdio: 'ignore',
    });
  }

  it('trains in segments with checkpoints, and the loss goes down', { timeout: 180_000 }, async () => {
    const trainWorkers = await createWorkers(config, { roles: ['train'] });
    const trainRunning = trainWorkers.run();
    try {
      const result = await flywheel.runTraining({ ...spec('plain'), evalEvery: 10 });
      assert.equal(result.step, 60);
      assert.equal(result.segments, 3);
      assert.ok(result.firstLoss! > result.loss, `loss ${result.firstLoss} → ${result.loss}`);
      assert.ok(Number.isFinite(result.valLoss));
      assert.deepEqual(
        result.evaluations.map((e) => e.step),
        [10, 20, 30, 40, 50, 60],
      );
      assert.ok(result.evaluations.every((e) => Math.abs(e.perplexity - Math.exp(e.valLoss)) < 1e-6 * e.perplexity));
      assert.equal(result.valLoss, result.evaluations.at(-1)!.valLoss);
      assert.deepEqual(result.checkpoints, [10, 20, 30, 40, 50, 60]);
      assert.equal(result.stoppedEarly, false);
      assert.deepEqual(result.model, { name: 'plain', version: 'v1' });
      const registered = await registry().get('plain', 'v1');
      assert.equal(registered.step, 60);
      assert.equal(registered.weightsSha256, result.weightsSha256);
      assert.equal(registered.dataset, dataset);
      assert.equal(registered.metrics.valLoss, result.valLoss);

      // Started again after it finished, the run trains nothing, reports the same model and registers no new version.
      const again = await flywheel.runTraining({ ...spec('plain'), evalEvery: 10 });
      assert.equal(again.step, 60);
      assert.equal(again.weightsSha256, result.weightsSha256);
      assert.equal(again.loss, result.loss);
      assert.deepEqual(again.model, { name: 'plain', version: 'v1' });

      // Fine-tuning from the registered model starts where it ended: its first loss is the base's last, not 7+.
      const tuned = await flywheel.runTraining({
        ...spec('tuned'),
        model: 'plain',
        init: { model: 'plain' },
        steps: 20,
      });
      assert.deepEqual(tuned.model, { name: 'plain', version: 'v2' });
      assert.ok(
        tuned.firstLoss! < result.firstLoss! - 0.5,
        `tuned first loss ${tuned.firstLoss} vs ${result.firstLoss}`,
      );
      assert.deepEqual((await registry().get('plain', 'v2')).parent, { model: 'plain', version: 'v1' });

      // In two segments (the second builds from the first's checkpoint, not from the base) it ends on the same weights.
      const inTwo = await flywheel.runTraining({
        ...spec('tuned-in-two'),
        init: { model: 'plain', version: 'v1' },
        steps: 20,
        segmentSteps: 10,
        register: false,
      });
      assert.equal(inTwo.segments, 2);
      assert.equal(inTwo.weightsSha256, tuned.weightsSha256);
      assert.equal(inTwo.loss, tuned.loss);
    } finally {
      await trainWorkers.shutdown();
      await trainRunning;
    }
  });

  it('stops early when validation loss stops improving, and continues as new', { timeout: 180_000 }, async () => {
    const trainWorkers = await createWorkers(config, { roles: ['train'] });
    const trainRunning = trainWorkers.run();
    try {
      // No drop of 100 nats ever counts as improvement: patience 2 stops after the third evaluation.
      const stopped = await flywheel.runTraining({
        ...spec('early'),
        evalEvery: 10,
        earlyStopping: { patience: 2, minDelta: 100 },
        register: false,
      });
      assert.equal(stopped.stoppedEarly, true);
      assert.equal(stopped.step, 30);
      assert.equal(stopped.evaluations.length, 3);
      assert.equal(stopped.model, undefined);

      const handle = await flywheel.startTraining({ ...spec('renewed'), segmentsPerExecution: 1, register: false });
      const renewed = await handle.result();
      assert.equal(renewed.step, 60);
      assert.equal(renewed.segments, 3);
      assert.deepEqual(renewed.checkpoints, [10, 20, 30, 40, 50, 60]);
      const first = await client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).fetchHistory();
      assert.ok(
        first.events?.some((e) => e.workflowExecutionContinuedAsNewEventAttributes),
        'the first execution continued as new',
      );
    } finally {
      await trainWorkers.shutdown();
      await trainRunning;
    }
  });

  it(
    'pauses at a segment boundary, resumes, and a cancel leaves a committed checkpoint',
    { timeout: 180_000 },
    async () => {
      const trainWorkers = await createWorkers(config, { roles: ['train'] });
      const trainRunning = trainWorkers.run();
      try {
        const paused = await flywheel.startTraining({ ...spec('paused'), register: false });
        await paused.signal('pause');
        let progress: TrainingProgress;
        for (;;) {
          progress = await paused.query<TrainingProgress>('progress');
          if (progress.stage === 'paused') break;
          await new Promise((r) => setTimeout(r, 100));
        }
        assert.ok(progress.step % 20 === 0 && progress.step < 60, `paused at segment end, step ${progress.step}`);
        await new Promise((r) => setTimeout(r, 1500));
        assert.equal(
          (await paused.query<TrainingProgress>('progress')).step,
          progress.step,
          'no training while paused',
        );
        await paused.signal('resume');
        assert.equal((await paused.result()).step, 60);

        const cancelled = await flywheel.startTraining({ ...spec('cancelled'), steps: 100_000, segmentSteps: 100_000 });
        for (;;) {
          const described = await cancelled.describe();
          const details = described.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0]?.data;
          const step = details ? (JSON.parse(Buffer.from(details).toString()) as { step: number }).step : 0;
          if (step >= 13) break;
          await new Promise((r) => setTimeout(r, 100));
        }
        await cancelled.cancel();
        const err = await cancelled.result().then(
          () => assert.fail('a cancelled run must not complete'),
          (e: unknown) => e,
        );
        assert.ok(err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure, String(err));
        const checkpoints = new CheckpointManager({
          store: tieredStoreFromConfig(config),
          runPrefix: 'runs/cancelled/checkpoints',
          policy: [keepLastN(2)],
        });
        const latest = await checkpoints.restoreLatest();
        assert.equal(latest.step % 10, 0, `stopped at a checkpoint step, got ${latest.step}`);
        assert.ok(latest.step >= 20, `the checkpoint after the cancel is there, got ${latest.step}`);
        assert.deepEqual(latest.skipped, []);
      } finally {
        await trainWorkers.shutdown();
        await trainRunning;
      }
    },
  );

  it(
    'bad batch numbers and a dataset too small fail at once, non-retryably, with the reason',
    { timeout: 120_000 },
    async () => {
      const trainWorkers = await createWorkers(config, { roles: ['train'] });
      const trainRunning = trainWorkers.run();
      try {
        const failure = async (input: TrainingInput) => {
          const err = await flywheel.runTraining(input).then(
            () => assert.fail('must fail'),
            (e: unknown) => e,
          );
          assert.ok(err instanceof WorkflowFailedError);
          const cause = err.cause?.cause instanceof ApplicationFailure ? err.cause.cause : err.cause;
          assert.ok(cause instanceof ApplicationFailure);
          assert.equal(cause.nonRetryable, true);
          return cause;
        };
        const base = spec('x').trainer!;
        const batch = await failure({
          ...spec('bad-batch'),
          trainer: { ...base, batch: { trainBatchSize: 10, microBatchSizePerGpu: 3, gradientAccumulationSteps: 1 } },
        });
        assert.equal(batch.type, 'InvalidSpec');
        assert.match(batch.message, /train_batch_size is not equal to/);
        const small = await failure({ ...spec('too-small'), trainer: { ...base, sequenceTokens: 1_000_000 } });
        assert.equal(small.type, 'DatasetTooSmall');
      } finally {
        await trainWorkers.shutdown();
        await trainRunning;
      }
    },
  );

  it(
    'survives SIGKILL of the worker twice mid-segment and ends with byte-identical weights',
    { timeout: 300_000 },
    async () => {
      const trainWorkers = await createWorkers(config, { roles: ['train'] });
      const trainRunning = trainWorkers.run();
      const reference = await flywheel.runTraining(spec('reference'));
      await trainWorkers.shutdown();
      await trainRunning;

      const handle = await flywheel.startTraining(spec('killed'));
      const progressPast = async (step: number) => {
        for (;;) {
          const described = await handle.describe();
          const details = described.raw.pendingActivities?.[0]?.heartbeatDetails?.payloads?.[0]?.data;
          const heartbeat = details ? (JSON.parse(Buffer.from(details).toString()) as { step: number }) : undefined;
          const progress = (await handle.query('progress')) as TrainingProgress;
          if ((heartbeat?.step ?? 0) >= step || progress.step >= step) return;
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      for (const killAt of [15, 35]) {
        const child = trainWorkerProcess();
        await progressPast(killAt);
        child.kill('SIGKILL');
        await new Promise((r) => child.once('exit', r));
      }
      const last = trainWorkerProcess();
      try {
        const result = await handle.result();
        assert.equal(result.step, 60);
        assert.equal(result.weightsSha256, reference.weightsSha256, 'resumed run must equal the uninterrupted one');
        const history = (await handle.fetchHistory()).events ?? [];
        const retries = history.filter(
          (e) => e.activityTaskStartedEventAttributes && (e.activityTaskStartedEventAttributes.attempt ?? 1) > 1,
        );
        assert.ok(retries.length >= 1, 'at least one segment was retried after a kill');
      } finally {
        last.kill('SIGTERM');
      }
    },
  );
});
