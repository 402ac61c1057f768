import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { main } from '../app/cli';
import { FlywheelClient } from '../client/flywheel-client';
import type { FlywheelResult } from '../lib/contracts/flywheel';
import { fromSafetensors } from '../lib/train/safetensors';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { temporalAddress, testConfig } from './support/temporal';

/** Runs `flywheel ...` in process against the test's server and storage: exit code and output. */
async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const log = mock.method(console, 'log', (...parts: unknown[]) => out.push(parts.join(' ')));
  const error = mock.method(console, 'error', (...parts: unknown[]) => err.push(parts.join(' ')));
  try {
    const code = await main(['node', 'flywheel', ...args]);
    return { code, stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    log.mock.restore();
    error.mock.restore();
  }
}

describe('flywheel models, flywheel run and schedule commands', () => {
  let connection: Connection;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  const saved = { ...process.env };
  let specFile: string;

  before(async () => {
    const address = await temporalAddress();
    config = testConfig(address);
    Object.assign(process.env, {
      TEMPORAL_ADDRESS: address,
      FLYWHEEL_HOME: config.home,
      FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
      FLYWHEEL_METRICS_PORT: '0',
    });
    workers = await createWorkers(config);
    running = workers.run();
    connection = await Connection.connect({ address });
    const flywheel = new FlywheelClient(new Client({ connection }), {
      taskQueuePrefix: config.worker.taskQueuePrefix,
    });
    const data = await flywheel.runPipeline({
      dataset: 'cli-data',
      sources: [{ type: 'sample', limit: 12 }],
      shards: { targetBytes: 1 << 20, validationFraction: 0.1 },
    });
    const trainingSpec = path.join(config.home, 'training.json');
    fs.writeFileSync(
      trainingSpec,
      JSON.stringify({
        run: 'cli-run',
        model: 'cli',
        dataset: data.manifest.uri,
        trainer: {
          model: { contextTokens: 3, embeddingDim: 8, hiddenDim: 16, maxVocab: 256 },
          sequenceTokens: 16,
          batch: { microBatchSizePerGpu: 4 },
        },
        steps: 10,
        segmentSteps: 10,
        checkpointEvery: 5,
      }),
    );
    const trained = await cli('train', 'run', '--spec', trainingSpec, '--wait', '--json');
    assert.equal(trained.code, 0, trained.stderr);
    assert.deepEqual(JSON.parse(trained.stdout).model, { name: 'cli', version: 'v1' });
    specFile = path.join(config.home, 'flywheel.json');
    fs.writeFileSync(specFile, JSON.stringify({ model: 'cli', schedule: { cron: '0 2 * * *', timezone: 'UTC' } }));
  });

  after(async () => {
    process.env = saved;
    await workers.shutdown();
    await running;
    await connection.close();
  });

  it('models list, show, export (safetensors) and generate (seeded)', { timeout: 60_000 }, async () => {
    const list = await cli('models', 'list', '--json');
    assert.equal(list.code, 0, list.stderr);
    const versions = JSON.parse(list.stdout) as { model: string; version: string; champion: boolean }[];
    assert.deepEqual(
      versions.map((v) => [v.model, v.version, v.champion]),
      [['cli', 'v1', true]],
    );
    const table = await cli('models', 'list');
    assert.match(table.stdout, /cli\tv1\t.*champion/);

    const show = await cli('models', 'show', 'cli');
    assert.equal(show.code, 0, show.stderr);
    assert.match(show.stdout, /cli v1 \(champion\)/);
    assert.match(show.stdout, /run {10}cli-run \(step 10\)/);

    const missing = await cli('models', 'show', 'cli', 'v9');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /v9/);
    assert.match(missing.stderr, /v1/, 'names the versions that exist');

    const out = path.join(config.home, 'cli.safetensors');
    const exported = await cli('models', 'export', 'cli', '--out', out);
    assert.equal(exported.code, 0, exported.stderr);
    const file = fromSafetensors(fs.readFileSync(out));
    assert.deepEqual(file.tensors.map((t) => t.name).sort(), [
      'embedding.weight',
      'hidden.bias',
      'hidden.weight',
      'output.bias',
      'output.weight',
    ]);
    assert.equal(file.metadata.version, 'v1');

    const a = await cli(
      'models',
      'generate',
      'cli',
      '--prompt',
      'Call me',
      '--seed',
      '4',
      '--max-tokens',
      '12',
      '--json',
    );
    const b = await cli(
      'models',
      'generate',
      'cli',
      '--prompt',
      'Call me',
      '--seed',
      '4',
      '--max-tokens',
      '12',
      '--json',
    );
    assert.equal(a.code, 0, a.stderr);
    assert.equal(JSON.parse(a.stdout).text, JSON.parse(b.stdout).text, 'same seed, same text');
    assert.ok(JSON.parse(a.stdout).text.length > 0);
  });

  it('models promote and rollback move the champion; a rollback with no previous one says so', async () => {
    const none = await cli('models', 'rollback', 'cli');
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no earlier one to roll back to/);
    const bad = await cli('models', 'promote', 'cli', 'v7');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /v7/);
  });

  it('flywheel run with no feedback decides no-data', { timeout: 60_000 }, async () => {
    const run = await cli('flywheel', 'run', '--spec', specFile, '--wait', '--json');
    assert.equal(run.code, 0, run.stderr);
    const result = JSON.parse(run.stdout) as FlywheelResult;
    assert.equal(result.decision, 'no-data');
    assert.equal(result.championAfter, 'v1');
    const text = await cli('flywheel', 'run', '--spec', specFile, '--wait');
    assert.match(text.stdout, /NO-DATA/);
  });

  it('schedule create, describe, pause, resume, backfill and delete', { timeout: 120_000 }, async () => {
    const created = await cli('schedule', 'create', '--spec', specFile, '--json');
    assert.equal(created.code, 0, created.stderr);
    assert.deepEqual(JSON.parse(created.stdout), { scheduleId: 'flywheel-cli' });
    const describe = async () => {
      const d = await cli('schedule', 'describe', 'cli', '--json');
      assert.equal(d.code, 0, d.stderr);
      return JSON.parse(d.stdout) as {
        paused: boolean;
        cron: string;
        recent: unknown[];
        policies: { overlap: string };
      };
    };
    let d = await describe();
    assert.equal(d.cron, '0 2 * * *');
    assert.equal(d.paused, false);
    assert.equal(d.policies.overlap, 'SKIP');
    assert.equal((await cli('schedule', 'pause', 'cli', '--note', 'maintenance')).code, 0);
    assert.equal((await describe()).paused, true);
    assert.equal((await cli('schedule', 'resume', 'cli')).code, 0);
    assert.equal((await describe()).paused, false);

    // One 02:00 UTC inside the window: one run, which finds no feedback.
    const backfill = await cli(
      'schedule',
      'backfill',
      'cli',
      '--start',
      '2026-11-20T01:00:00Z',
      '--end',
      '2026-11-20T03:00:00Z',
    );
    assert.equal(backfill.code, 0, backfill.stderr);
    for (let i = 0; i < 100 && (d = await describe()).recent.length === 0; i++)
      await new Promise((r) => setTimeout(r, 200));
    assert.equal(d.recent.length, 1, 'the backfill started one run');

    assert.equal((await cli('schedule', 'delete', 'cli')).code, 0);
    const gone = await cli('schedule', 'describe', 'cli');
    assert.equal(gone.code, 1);
  });

  it('every command answers --help', async () => {
    for (const args of [
      ['models'],
      ['models', 'list'],
      ['models', 'show'],
      ['models', 'promote'],
      ['models', 'rollback'],
      ['models', 'export'],
      ['models', 'generate'],
      ['flywheel'],
      ['flywheel', 'run'],
      ['flywheel', 'approve'],
      ['schedule'],
      ['schedule', 'create'],
      ['schedule', 'backfill'],
      ['train', 'pause'],
      ['train', 'cancel'],
    ]) {
      const mocked = mock.method(process.stdout, 'write', () => true);
      try {
        assert.equal(await main(['node', 'flywheel', ...args, '--help']), 0, args.join(' '));
      } finally {
        mocked.mock.restore();
      }
    }
  });
});
