import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { barDisplay, lineDisplay, meterOf } from '../app/commands/follow';
import { failureMessage } from '../app/commands/status';
import { FlywheelClient } from '../client/flywheel-client';
import { loadConfig, type FlywheelConfig } from '../lib/config';
import { freePort } from '../temporal/dev-server';
import { launchChromium, screenshotInk, screenshotPath } from './support/browser';
import { temporalAddress } from './support/temporal';
import { runCli } from './support/cli';

const root = path.join(__dirname, '..');

/** A terminal's stderr, as cli-progress sees one: a TTY 110 columns wide that keeps what is written. */
function fakeTerminal(): { stream: NodeJS.WritableStream; screen: () => string[] } {
  let written = '';
  const stream = Object.assign(
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        written += chunk.toString();
        callback();
      },
    }),
    { isTTY: true, columns: 140 },
  );
  // What stays on screen: per line, the last redraw (cli-progress returns to column 1 and clears the rest).
  const screen = () =>
    written
      .split('\n')
      .map((line) =>
        line
          // eslint-disable-next-line no-control-regex
          .replace(/\x1b(7|8|\[\?7[lh]|\[0K)/g, '')
          .split('\x1b[1G')
          .filter(Boolean)
          .at(-1),
      )
      .filter((line): line is string => line !== undefined && line.length > 0);
  return { stream: stream as unknown as NodeJS.WritableStream, screen };
}

describe('progress display', () => {
  it('reads stage, done/total and a detail from pipeline and training progress', () => {
    assert.deepEqual(meterOf({ stage: 'tokenize', done: 3, total: 8, documents: 120, stages: {} }), {
      stage: 'tokenize',
      done: 3,
      total: 8,
      unit: 'partitions',
      detail: '120 documents collected',
    });
    assert.deepEqual(meterOf({ stage: 'train', step: 40, steps: 100, loss: 4.91, valLoss: 4.8, paused: false }), {
      stage: 'train',
      done: 40,
      total: 100,
      unit: 'steps',
      detail: 'loss 4.910, validation loss 4.800',
    });
    assert.equal(meterOf({ stage: 'write', objects: 3, bytes: 10 }), undefined);
  });

  it('prints plain lines when not on a terminal, with rate and ETA once the stage has moved', () => {
    let now = 0;
    const lines: string[] = [];
    const display = lineDisplay(
      (l) => lines.push(l),
      () => now,
    );
    const at = (seconds: number, done: number) => {
      now = seconds * 1000;
      display.update({ stage: 'collect', done, total: 10, documents: 0, stages: {} }, `[pipeline] collect ${done}/10`);
    };
    at(0, 0);
    at(1, 0); // nothing new: no line
    at(2, 4);
    at(3, 4);
    at(4, 8);
    assert.deepEqual(lines, [
      '[pipeline] collect 0/10',
      '[pipeline] collect 4/10 (2.0 batches/s, ETA 3s)',
      '[pipeline] collect 8/10 (2.0 batches/s, ETA 1s)',
    ]);
  });

  it('draws a bar per stage on a terminal: stage, done/total, rate, ETA', async (t) => {
    let now = 0;
    const terminal = fakeTerminal();
    const display = barDisplay(terminal.stream, () => now);
    const pipeline = (stage: string, done: number, total: number, documents = 1840) => {
      now += 1000;
      display.update({ stage, done, total, documents, stages: {} }, `[pipeline] ${stage}`);
    };
    pipeline('plan', 0, 0, 0);
    for (let i = 0; i <= 12; i += 3) pipeline('collect', i, 12, i * 160);
    pipeline('filter', 0, 12);
    pipeline('filter', 12, 12);
    pipeline('dedup', 1, 1);
    pipeline('tokenize', 1, 8);
    pipeline('tokenize', 4, 8);
    display.stop();
    terminal.stream.write('$ npx flywheel train run --spec examples/sample-training.json --wait\n');
    const training = barDisplay(terminal.stream, () => now);
    now += 1000;
    training.update({ stage: 'train', step: 100, steps: 300, loss: 5.2, paused: false }, '');
    now += 25_000;
    training.update({ stage: 'train', step: 200, steps: 300, loss: 4.912, valLoss: 4.801, paused: false }, '');
    training.stop();

    const screen = terminal.screen();
    assert.equal(screen[0], '[pipeline] plan');
    assert.match(screen[3], /^dedup {4}\|█+\| 1\/1 steps \| … steps\/s \| ETA 0s/);
    assert.match(
      screen[1],
      /^collect {2}\|█+\| 12\/12 batches \| 3\.0 batches\/s \| ETA 0s \| 1920 documents collected/,
    );
    assert.match(
      screen.at(-3)!,
      /^tokenize \|█+░+\| 4\/8 partitions \| 3\.0 partitions\/s \| ETA 1s \| 1840 documents collected/,
    );
    assert.match(
      screen.at(-1)!,
      /^train {4}\|█+░+\| 200\/300 steps \| 4\.0 steps\/s \| ETA 25s \| loss 4\.912, validation loss 4\.801/,
    );

    // The README's picture of it: the screen as a terminal shows it, drawn by the tests' own browser.
    const { browser, skip } = await launchChromium();
    if (!browser) return t.skip(skip);
    try {
      const page = await browser.newPage({ viewport: { width: 1040, height: 300 } });
      const escape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
      await page.setContent(
        '<body style="margin:0;background:#1e1e1e"><pre style="margin:0;padding:16px;color:#d4d4d4;' +
          'font:13px/1.5 DejaVu Sans Mono,monospace">' +
          escape(['$ npx flywheel status pipeline-sample-v1 --follow', ...screen].join('\n')) +
          '</pre></body>',
      );
      const png = await page.locator('pre').screenshot({ path: screenshotPath('progress.png') });
      assert.ok((await screenshotInk(page, png)).inked > 0.02);
    } finally {
      await browser.close();
    }
  });
});

describe('flywheel status, against a worker process with metrics and JSON logs', () => {
  let connection: Connection;
  let client: Client;
  let flywheel: FlywheelClient;
  let config: FlywheelConfig;
  let worker: ChildProcess;
  let workerLog = '';
  let metricsPort: number;
  let env: Record<string, string>;

  before(async () => {
    const address = await temporalAddress();
    // The settings only: this process runs no worker, so it does not install the SDK runtime (which would keep it
    // alive, waiting for workers that never come).
    config = loadConfig({
      TEMPORAL_ADDRESS: address,
      FLYWHEEL_HOME: fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-status-')),
      FLYWHEEL_TASK_QUEUE_PREFIX: `flywheel-test-${process.pid}-status`,
    });
    metricsPort = await freePort();
    env = {
      TEMPORAL_ADDRESS: address,
      FLYWHEEL_HOME: config.home,
      FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
    };
    worker = spawn(process.execPath, [path.join(root, 'bin', 'flywheel.js'), 'worker'], {
      cwd: root,
      env: {
        ...process.env,
        ...env,
        FLYWHEEL_METRICS_PORT: String(metricsPort),
        FLYWHEEL_LOG_FORMAT: 'json',
        FLYWHEEL_LOG_LEVEL: 'DEBUG',
        FLYWHEEL_REACH_UNRESTRICTED: '1',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stderr!.on('data', (c: Buffer) => (workerLog += c.toString()));
    await new Promise<void>((resolve, reject) => {
      let out = '';
      worker.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('[flywheel] worker on')) resolve();
      });
      worker.once('exit', (code) => reject(new Error(`the worker exited (${code}): ${workerLog.slice(-2000)}`)));
    });
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    flywheel = new FlywheelClient(client, { taskQueuePrefix: config.worker.taskQueuePrefix });
  });

  after(async () => {
    const exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.kill('SIGTERM');
    const timer = setTimeout(() => {
      console.error(
        `[status-cli test] the worker did not stop in 20 s:\n${workerLog.split('\n').slice(-20).join('\n')}`,
      );
      worker.kill('SIGKILL');
    }, 20_000);
    await exited;
    clearTimeout(timer);
    await connection.close();
    fs.rmSync(config.home, { recursive: true, force: true });
  });

  it('has --help, and exits 2 without an id or for an unknown one, 3 when Temporal is unreachable', async () => {
    const help = await runCli(['status', '--help'], env);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--follow/);
    assert.match(help.stdout, /Exit codes/);
    assert.equal((await runCli(['status'], env)).status, 2);
    const unknown = await runCli(['status', 'pipeline-nothing-v9'], env);
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /no workflow pipeline-nothing-v9 in namespace default/);
    const unreachable = await runCli(['status', 'x'], { ...env, TEMPORAL_ADDRESS: `127.0.0.1:${await freePort()}` });
    assert.equal(unreachable.status, 3);
    assert.match(unreachable.stderr, /Cannot reach Temporal/);
  });

  it('follows a pipeline to the end with progress lines, then shows it as JSON', { timeout: 180_000 }, async () => {
    const handle = await flywheel.startPipeline({
      dataset: 'status-demo',
      sources: [{ type: 'sample', limit: 40 }],
      unitsPerBatch: 1,
      shards: { targetBytes: 64 * 1024, validationFraction: 0.1 },
    });
    const followed = await runCli(['status', handle.workflowId, '--follow'], env);
    assert.equal(followed.status, 0, followed.stderr);
    // Not a terminal: plain lines, the stage with done/total, then the outcome.
    assert.match(followed.stdout, /^pipeline-status-demo-v1 {2}dataPipeline {2}RUNNING/);
    assert.match(
      followed.stdout,
      /\[pipeline\] (collect|filter|dedup|tokenize|shard) \d+\/\d+ (batches|steps|partitions|shards)/,
    );
    assert.match(followed.stdout, /pipeline-status-demo-v1 {2}dataPipeline {2}COMPLETED/);
    assert.match(followed.stdout, /dataset status-demo\/v1: \d+ documents/);

    const shown = await runCli(['status', handle.workflowId, '--json'], env);
    assert.equal(shown.status, 0);
    const status = JSON.parse(shown.stdout);
    assert.equal(status.status, 'COMPLETED');
    assert.equal(status.type, 'dataPipeline');
    assert.equal(status.searchAttributes.FlywheelKind, 'pipeline');
    assert.equal(status.searchAttributes.FlywheelDataset, 'status-demo/v1');
    assert.equal(status.memo.dataset, 'status-demo');
    assert.ok(status.result.documents > 0);
  });

  it('exits 1 for a workflow that failed, saying why', async () => {
    const handle = await client.workflow.start('dataPipeline', {
      args: [{ dataset: 'Not A Name', sources: [] }],
      taskQueue: `${config.worker.taskQueuePrefix}-io`,
      workflowId: 'pipeline-status-bad-v1',
    });
    await handle.result().catch(() => undefined);
    const shown = await runCli(['status', handle.workflowId], env);
    assert.equal(shown.status, 1);
    assert.match(shown.stdout, /FAILED/);
    assert.match(shown.stderr, /pipeline-status-bad-v1 failed: Invalid dataPipeline spec[\s\S]*dataset: lowercase/);
  });

  it("serves Flywheel's metrics beside the SDK's, and logs JSON lines with workflow and activity ids", async () => {
    const dataset = await client.workflow.getHandle('pipeline-status-demo-v1').result();
    const trained = flywheel.runTraining({
      run: 'status-metrics',
      dataset: (dataset as { manifest: { uri: string } }).manifest.uri,
      trainer: {
        model: { contextTokens: 3, embeddingDim: 8, hiddenDim: 16, maxVocab: 256 },
        sequenceTokens: 16,
        batch: { microBatchSizePerGpu: 2, gradientAccumulationSteps: 1 },
      },
      steps: 20,
      segmentSteps: 10,
      checkpointEvery: 10,
      evalTokens: 2000,
      register: false,
    });
    await trained.catch((err: Error) => assert.fail(failureMessage(err)));
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(metrics, /^temporal_\w+/m, "the SDK's own metrics");
    assert.match(metrics, /^flywheel_stage_seconds_bucket\{[^}]*stage="collect"/m);
    assert.match(metrics, /^flywheel_documents\{[^}]*activityType="collectBatch"[^}]*\} \d+/m);
    assert.match(metrics, /^flywheel_documents_per_second\{[^}]*stage="filter"/m);
    assert.match(metrics, /^flywheel_tokens\{[^}]*stage="tokenize"[^}]*\} [1-9]\d*/m);
    assert.match(metrics, /^flywheel_tokens_per_second\{[^}]*stage="tokenize"/m);
    assert.match(metrics, /^flywheel_tokens_per_second\{[^}]*stage="train"[^}]*\} [1-9]/m);
    assert.match(metrics, /^flywheel_checkpoint_bytes_count\{[^}]*tier="hot"[^}]*\} 2$/m);
    assert.match(metrics, /^flywheel_checkpoint_bytes_sum\{[^}]*\} [1-9]\d{3,}/m);
    assert.match(metrics, /^flywheel_checkpoint_seconds_bucket\{[^}]*le="0\.01"/m);

    const lines = workerLog
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(lines.length > 0, `JSON log lines on stderr: ${workerLog.slice(0, 500)}`);
    const activity = lines.find((l) => l.activityId && l.workflowId === 'pipeline-status-demo-v1');
    assert.ok(activity, 'an activity line names its activity and workflow');
    assert.equal(typeof activity.activityType, 'string');
    assert.equal(typeof activity.time, 'string');
    assert.ok(lines.some((l) => l.workflowId && l.runId && l.workflowType === 'dataPipeline' && !l.activityId));
  });
});
