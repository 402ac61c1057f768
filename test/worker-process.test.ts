import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { freePort } from '../temporal/dev-server';
import { temporalAddress } from './support/temporal';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'bin', 'flywheel.js');

/** Collects a child's output and resolves when a line matches. */
function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 60_000): Promise<string> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${pattern}; output so far:\n${seen}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        resolve(seen);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (!pattern.test(seen)) reject(new Error(`exited with ${code} before ${pattern}; output:\n${seen}`));
    });
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((r) => child.once('exit', (c) => r(c)));
}

function tempHome(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-proc-'));
}

describe('worker and embedded processes', () => {
  it(
    '`flywheel worker` serves its queues, exposes Prometheus metrics and drains on SIGTERM',
    { timeout: 120_000 },
    async () => {
      const address = await temporalAddress();
      const metricsPort = await freePort();
      const prefix = `flywheel-proc-${process.pid}`;
      const home = tempHome();
      const child = spawn(process.execPath, [cli, 'worker'], {
        cwd: root,
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: address,
          FLYWHEEL_HOME: home,
          FLYWHEEL_TASK_QUEUE_PREFIX: prefix,
          FLYWHEEL_METRICS_PORT: String(metricsPort),
          // A production worker names its reach: no files, no buckets, no URLs for this one.
          FLYWHEEL_COLLECT_ROOTS: home,
          FLYWHEEL_COLLECT_BUCKETS: 'none',
          FLYWHEEL_COLLECT_HOSTS: 'none',
        },
      });
      try {
        await waitForOutput(
          child,
          /\[flywheel\] worker on .*queues flywheel-proc-\d+-io, flywheel-proc-\d+-cpu, flywheel-proc-\d+-train/,
        );
        const connection = await Connection.connect({ address });
        try {
          const flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: prefix });
          const result = await flywheel.runStorageCheck({ name: 'worker-process', objects: 2, objectBytes: 2048 });
          assert.equal(result.objects, 2);
          assert.ok(fs.existsSync(path.join(home, 'warm', result.manifest.uri.slice('warm://'.length))));
        } finally {
          await connection.close();
        }
        const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        assert.match(
          metrics,
          /temporal_worker_task_slots_available|temporal_activity_execution_latency|temporal_request/,
        );
        const stopped = waitForOutput(child, /worker stopped/);
        child.kill('SIGTERM');
        await stopped;
        assert.equal(await exitOf(child), 0);
      } finally {
        child.kill('SIGKILL');
      }
    },
  );

  it(
    '`flywheel start` runs pipeline, training, feedback and flywheel on the sample corpus with an existing server',
    { timeout: 300_000 },
    async () => {
      const address = await temporalAddress();
      const home = tempHome();
      const child = spawn(process.execPath, [cli, 'start', '--json'], {
        cwd: root,
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: address,
          FLYWHEEL_HOME: home,
          FLYWHEEL_METRICS_PORT: '0',
          FLYWHEEL_TASK_QUEUE_PREFIX: `flywheel-start-${process.pid}`,
        },
      });
      let stdout = '';
      child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
      assert.equal(await exitOf(child), 0);
      const record = JSON.parse(fs.readFileSync(path.join(home, 'last-run.json'), 'utf8'));
      assert.equal(record.ok, true);
      assert.equal(record.temporal.startedHere, false);
      assert.equal(record.job, 'dataPipeline → trainingRun → flywheelRun');
      assert.equal(record.training.steps, 100);
      assert.deepEqual(
        record.training.evaluations.map((e: { step: number }) => e.step),
        [25, 50, 75, 100],
      );
      assert.deepEqual([record.model.name, record.model.version], ['sample', 'v1']);
      assert.ok(record.model.sample.startsWith('Call me Ishmael.'));
      assert.ok(record.flywheel.events > 0, 'a day of feedback went through the client');
      assert.ok(record.flywheel.newDocs > 0 && record.flywheel.newDocs <= record.flywheel.events);
      assert.ok(['promote', 'reject'].includes(record.flywheel.decision), record.flywheel.decision);
      assert.equal(record.flywheel.champion, record.flywheel.decision === 'promote' ? 'v2' : 'v1');
      assert.ok(fs.existsSync(record.report), 'the run report is written');
      assert.ok(record.training.lastLoss < record.training.firstLoss, 'the loss goes down');
      assert.ok(Number.isFinite(record.training.valLoss));
      assert.equal(record.pipeline.dataset, 'sample');
      assert.ok(record.pipeline.documents > 0 && record.pipeline.tokens > record.pipeline.documents);
      assert.match(record.pipeline.manifest.uri, /^warm:\/\/datasets\/sample\/v1\/manifest\.json$/);
      assert.ok(fs.existsSync(path.join(home, 'warm', 'datasets', 'sample', 'v1', 'manifest.json')));
      assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1)!), record);
    },
  );

  it('`flywheel dev` starts a dev server with the Web UI and stops it on Ctrl-C', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const home = tempHome();
    const child = spawn(process.execPath, [cli, 'dev'], {
      cwd: root,
      env: { ...process.env, TEMPORAL_ADDRESS: `127.0.0.1:${port}`, FLYWHEEL_HOME: home, FLYWHEEL_METRICS_PORT: '0' },
    });
    try {
      const out = await waitForOutput(child, /Press Ctrl-C to stop/);
      assert.match(out, new RegExp(`Temporal Web UI: http://localhost:${port + 1000}`));
      const ui = await fetch(`http://127.0.0.1:${port + 1000}/`);
      assert.equal(ui.status, 200);
      assert.match(await ui.text(), /<html/i);
      assert.ok(fs.existsSync(path.join(home, 'temporal.db')), 'history is kept in FLYWHEEL_HOME/temporal.db');
      child.kill('SIGINT');
      assert.equal(await exitOf(child), 0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
