import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { FlywheelClient, PipelineAlreadyRunning } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect';
import { decodeJsonlGz } from '../lib/document';
import type { DatasetMeta } from '../lib/pipeline/commit-dataset';
import type { PipelineInput } from '../lib/contracts/pipeline';
import type { ArtifactRef } from '../lib/contracts/pipeline-results';
import { readManifest, tieredStoreFromConfig, verifyManifest } from '../lib/storage';
import { findTemporalCli } from '../temporal/dev-server';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { readShards } from './support/read-shards';
import { temporalAddress, testConfig } from './support/temporal';
import { runCli } from './support/cli';

/** A folder of inputs in several formats, with bad records the pipeline must quarantine and go on. */
function makeInputs(dir: string) {
  // Real prose that passes the quality filters: chapters of the bundled corpus beyond the ones the sample source reads.
  const paragraphs = sampleCorpus('moby-dick')
    .documents.slice(60, 68)
    .map((d) => d.text);
  fs.mkdirSync(path.join(dir, 'notes'), { recursive: true });
  paragraphs.slice(0, 4).forEach((p, i) => fs.writeFileSync(path.join(dir, 'notes', `note-${i}.txt`), p));
  // An exact duplicate (after normalization) of note-0.
  fs.writeFileSync(
    path.join(dir, 'notes', 'note-copy.md'),
    `  ${paragraphs[0].replace(/ /g, '   ').replace(/^\S+/, (w) => w.toLowerCase())}\n`,
  );
  const lines = paragraphs.slice(4, 8).map((p, i) => JSON.stringify({ uuid: `rec-${i}`, body: p, author: 'x' }));
  lines.splice(2, 0, '{"uuid": "broken", "body": ');
  fs.writeFileSync(path.join(dir, 'records.jsonl.gz'), gzipSync(lines.join('\n') + '\n'));
}

describe('the dataPipeline workflow', () => {
  let connection: Connection;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let flywheel: FlywheelClient;
  let client: Client;
  const inputs = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-inputs-'));

  before(async () => {
    makeInputs(inputs);
    const address = await temporalAddress();
    config = testConfig(address);
    workers = await createWorkers(config);
    running = workers.run();
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    flywheel = new FlywheelClient(client, { taskQueuePrefix: config.worker.taskQueuePrefix });
  });

  after(async () => {
    await workers.shutdown();
    await running;
    await connection.close();
    fs.rmSync(inputs, { recursive: true, force: true });
  });

  const spec = (): PipelineInput => ({
    dataset: 'mixed',
    version: 'v1',
    sources: [
      { type: 'sample', limit: 12 },
      { type: 'path', path: path.join(inputs, 'notes') },
      {
        type: 'path',
        path: path.join(inputs, 'records.jsonl.gz'),
        fields: { id: 'uuid', text: 'body', metadata: ['author'] },
      },
    ],
    quality: {},
    shards: { targetBytes: 256 * 1024, validationFraction: 0.2 },
    unitsPerBatch: 2,
  });

  it('turns sources into verified WebDataset shards, with stats and rejected records for every drop', async () => {
    const handle = await flywheel.startPipeline(spec());
    assert.equal(handle.workflowId, 'pipeline-mixed-v1');
    const summary = await handle.result();
    assert.equal(summary.reused, false);
    assert.ok(summary.documents > 0);
    assert.ok(summary.tokens > summary.documents);
    assert.ok((summary.stages.collect?.input ?? 0) >= 12 + 5 + 5);
    assert.ok(Object.keys(summary.stages.collect?.dropped ?? {}).length >= 1, 'the broken JSONL line is quarantined');
    assert.equal(summary.stages.dedup?.dropped['dedup.exact'], 1, 'the normalized copy of note-0 is dropped');
    assert.equal(summary.splits.train.documents + summary.splits.validation.documents, summary.documents);

    const store = tieredStoreFromConfig(config);
    const manifest = await readManifest(store, summary.manifest);
    assert.equal(manifest.kind, 'dataset');
    const verified = await verifyManifest(store, manifest);
    assert.equal(verified.objects, summary.splits.train.shards + summary.splits.validation.shards);
    const meta = manifest.meta as unknown as DatasetMeta;
    assert.equal(meta.specDigest, summary.specDigest);

    // Every shard read back by an independent reader agrees with the manifest, sample by sample.
    for (const split of ['train', 'validation'] as const) {
      const files = meta.splits[split].shards.map((s) => path.join(config.tiers.warm, s.uri.slice('warm://'.length)));
      if (files.length === 0) continue;
      const samples = await readShards(files);
      assert.equal(samples.length, meta.splits[split].documents);
      assert.equal(
        samples.reduce((n: number, s: { count: number }) => n + s.count, 0),
        meta.splits[split].tokens,
      );
      for (const s of samples) assert.equal(s.count, s.meta.tokens);
    }

    // Rejected records keep their reasons: the broken line is findable by file and line number.
    const rejectedText: string[] = [];
    for (const ref of summary.rejected) {
      const rejectedManifest = await readManifest(store, ref);
      for (const part of rejectedManifest.objects) {
        for await (const rec of decodeJsonlGz(await store.get(part.uri))) rejectedText.push(JSON.stringify(rec));
      }
    }
    assert.ok(
      rejectedText.some((r) => r.includes('records.jsonl.gz') && /line|:3/.test(r)),
      rejectedText.join('\n'),
    );
    assert.ok(rejectedText.some((r) => r.includes('dedup.exact')));
  });

  it('a long run continues as new with the work it finished and writes the same shards as one execution', async () => {
    const store = tieredStoreFromConfig(config);
    const shardsOf = async (manifest: ArtifactRef) =>
      (await readManifest(store, manifest)).objects.map((o) => `${path.basename(o.uri)} ${o.sha256} ${o.bytes}`);
    const whole = await flywheel.runPipeline({ ...spec(), dataset: 'split-whole' });
    const handle = await client.workflow.start('dataPipeline', {
      args: [{ ...spec(), dataset: 'split-many' }, { maxActivitiesPerExecution: 4 }],
      taskQueue: `${config.worker.taskQueuePrefix}-io`,
      workflowId: 'pipeline-split-many-v1',
    });
    const many = (await handle.result()) as typeof whole;

    // Follow the chain of executions: each but the last ended by continuing as new.
    const executions: { activities: number; carryPages: number; continued: boolean }[] = [];
    for (let runId: string | undefined = handle.firstExecutionRunId; runId;) {
      const history: temporal.api.history.v1.IHistory = await client.workflow
        .getHandle(handle.workflowId, runId)
        .fetchHistory();
      const events = history.events ?? [];
      const next: string | undefined =
        events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
      const scheduled = events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
      executions.push({
        // Saving and loading the carried results are the hand-over itself, not stage work.
        activities: scheduled.filter((name) => !/^(save|load)PipelineCarryPage$/.test(name!)).length,
        carryPages: scheduled.filter((name) => name === 'savePipelineCarryPage').length,
        continued: next !== undefined,
      });
      runId = next;
    }
    // Nothing ran twice: the executions together ran exactly the stage activities of the run in one execution.
    const wholeHistory = await client.workflow.getHandle('pipeline-split-whole-v1').fetchHistory();
    const wholeActivities = (wholeHistory.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).length;
    assert.equal(
      executions.reduce((n, e) => n + e.activities, 0),
      wholeActivities,
    );
    assert.ok(executions.length >= Math.ceil(wholeActivities / 4), JSON.stringify(executions));
    assert.ok(
      executions.every((e) => e.activities >= 1 && e.activities <= 4),
      JSON.stringify(executions),
    );
    assert.deepEqual(
      executions.map((e) => e.continued),
      executions.map((_, i) => i < executions.length - 1),
    );
    assert.ok(executions.slice(0, -1).every((e) => e.carryPages === 1));
    assert.equal(many.documents, whole.documents);
    assert.equal(many.tokens, whole.tokens);
    assert.deepEqual(many.stages, whole.stages);
    assert.deepEqual(await shardsOf(many.manifest), await shardsOf(whole.manifest));
  });

  it('with one batch, exact dedup is one step and drops what the fanned-out steps drop', async () => {
    const fanned = await flywheel.runPipeline({ ...spec(), dataset: 'dedup-fanned' });
    const handle = await flywheel.startPipeline({ ...spec(), dataset: 'dedup-one', unitsPerBatch: 1000 });
    const one = await handle.result();
    const scheduled = ((await handle.fetchHistory()).events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
      .filter((name): name is string => Boolean(name));
    assert.equal(scheduled.filter((name) => name === 'collectBatch').length, 1);
    assert.deepEqual(
      scheduled.filter((name) => /dedup/i.test(name)),
      ['exactDedupOnePassStage'],
    );
    assert.deepEqual(one.stages.dedup, fanned.stages.dedup);
    assert.equal(one.stages.dedup?.dropped['dedup.exact'], 1);
    assert.equal(one.documents, fanned.documents);
    assert.equal(one.tokens, fanned.tokens);
  });

  it('with exact dedup off, the dedup stage passes on every filtered document and drops none', async () => {
    const summary = await flywheel.runPipeline({ ...spec(), dataset: 'no-exact', dedup: { exact: false } });
    assert.deepEqual(summary.stages.dedup?.dropped, {});
    assert.equal(summary.stages.dedup?.input, summary.stages.filter?.kept);
    assert.equal(summary.stages.dedup?.kept, summary.stages.filter?.kept);
    assert.equal(summary.documents, summary.stages.filter?.kept, 'the normalized copy of note-0 stays');
  });

  it('a rerun of the same spec reuses the committed dataset; a changed spec under the same version is refused', async () => {
    const first = await flywheel.runPipeline(spec());
    assert.equal(first.reused, true);
    const changed = { ...spec(), tokenizer: { encoding: 'gpt2' as const } };
    const err = await flywheel.runPipeline(changed).then(
      () => assert.fail('a different spec must not overwrite a committed version'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    const cause = err.cause instanceof ApplicationFailure ? err.cause : (err.cause?.cause as ApplicationFailure);
    assert.equal(cause.type, 'DatasetVersionExists');
    assert.match(cause.message, /new version/);
  });

  it('runs from the command line with --wait --json, printing the dataset summary', { timeout: 120_000 }, async () => {
    const specFile = path.join(inputs, 'cli-spec.json');
    fs.writeFileSync(
      specFile,
      JSON.stringify({ dataset: 'cli', sources: [{ type: 'sample', limit: 8 }], shards: { targetBytes: 65536 } }),
    );
    // Asynchronous: the worker serving this run lives in this process, so it must not be blocked while we wait.
    const run = await runCli(['pipeline', 'run', '--spec', specFile, '--wait', '--json'], {
      TEMPORAL_ADDRESS: await temporalAddress(),
      FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /started pipeline-cli-v1/);
    const summary = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    assert.equal(summary.dataset, 'cli');
    assert.ok(summary.documents > 0 && summary.documents <= 8);

    const bad = spawnSync(
      process.execPath,
      [path.join(__dirname, '..', 'bin', 'flywheel.js'), 'pipeline', 'run', '--spec', specFile + '.missing'],
      {
        encoding: 'utf8',
      },
    );
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /cannot read spec file/);
  });

  it(
    'starts from the temporal CLI with one JSON input, as the Web UI form sends it',
    { timeout: 120_000 },
    async (t) => {
      const cli = await findTemporalCli().catch(() => undefined);
      if (!cli) return t.skip('no temporal CLI installed');
      const workflowId = `pipeline-from-cli-${Date.now()}`;
      const input = JSON.stringify({ dataset: 'form', version: 'v1', sources: [{ type: 'sample', limit: 4 }] });
      const started = spawnSync(
        cli.path,
        [
          'workflow',
          'start',
          '--address',
          await temporalAddress(),
          '--type',
          'dataPipeline',
          '--task-queue',
          `${config.worker.taskQueuePrefix}-io`,
          '--workflow-id',
          workflowId,
          '--input',
          input,
        ],
        { encoding: 'utf8' },
      );
      assert.equal(started.status, 0, started.stderr);
      const summary = (await client.workflow.getHandle(workflowId).result()) as { dataset: string; documents: number };
      assert.equal(summary.dataset, 'form');
      assert.ok(summary.documents > 0);
    },
  );

  it(
    'with FLYWHEEL_COLLECT_ROOTS set, a spec cannot read outside the allowed folders',
    { timeout: 120_000 },
    async () => {
      const fenced = testConfig(await temporalAddress(), { FLYWHEEL_COLLECT_ROOTS: inputs });
      const fencedWorkers = await createWorkers(fenced);
      const fencedRunning = fencedWorkers.run();
      try {
        const fencedClient = new FlywheelClient(client, { taskQueuePrefix: fenced.worker.taskQueuePrefix });
        const err = await fencedClient
          .runPipeline({ dataset: 'fenced', sources: [{ type: 'path', path: '/etc/passwd' }] })
          .then(
            () => assert.fail('reading /etc/passwd must be refused'),
            (e: unknown) => e,
          );
        assert.ok(err instanceof WorkflowFailedError);
        const cause = err.cause?.cause instanceof ApplicationFailure ? err.cause.cause : err.cause;
        assert.ok(cause instanceof ApplicationFailure);
        assert.equal(cause.type, 'SourceForbidden');
        assert.equal(cause.nonRetryable, true);
        const inside = await fencedClient.runPipeline({
          dataset: 'fenced-ok',
          sources: [{ type: 'path', path: path.join(inputs, 'notes') }],
        });
        assert.ok(inside.documents > 0);
      } finally {
        await fencedWorkers.shutdown();
        await fencedRunning;
      }
    },
  );

  it('refuses to attach to a running run of another spec under the same dataset version', async () => {
    // No worker polls this prefix, so the first run stays open.
    const idle = new FlywheelClient(client, { taskQueuePrefix: `${config.worker.taskQueuePrefix}-idle` });
    const first = await idle.startPipeline({ dataset: 'contended', sources: [{ type: 'sample', limit: 2 }] });
    try {
      const again = await idle.startPipeline({ dataset: 'contended', sources: [{ type: 'sample', limit: 2 }] });
      assert.equal(again.workflowId, first.workflowId, 'the same spec attaches to its running run');
      await assert.rejects(
        idle.startPipeline({ dataset: 'contended', sources: [{ type: 'sample', limit: 3 }] }),
        (e: unknown) => e instanceof PipelineAlreadyRunning && /already running with another spec/.test(e.message),
      );
    } finally {
      await first.terminate('test over');
    }
  });

  it('a bad spec fails at once naming every bad field', async () => {
    const handle = await client.workflow.start('dataPipeline', {
      args: [{ dataset: 'Bad Name', sources: [{ type: 'ftp', path: 'x' }], shards: { validationFraction: 2 } }],
      taskQueue: `${config.worker.taskQueuePrefix}-io`,
      workflowId: `pipeline-bad-${Date.now()}`,
    });
    const err = await handle.result().then(
      () => assert.fail('must fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError && err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'InvalidSpec');
    for (const field of ['dataset', 'sources.0', 'shards.validationFraction'])
      assert.match(err.cause.message, new RegExp(field.replace('.', '\\.')));
  });
});
