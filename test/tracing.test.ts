import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, mock } from 'node:test';
import { ConfigError, loadConfig } from '../lib/config';
import { sampleCorpus } from '../lib/collect';
import { stepSpanAttributes } from '../lib/pipeline/step-attributes';
import { S3Store, tieredStoreFromConfig } from '../lib/storage';
import { freePort } from '../temporal/dev-server';
import { flushTracing, shutdownTracing } from '../temporal/tracing';
import { createWorkers } from '../worker/workers';
import { runCli } from './support/cli';
import { startS3Server, type TestS3Server } from './support/s3-server';
import { temporalAddress, testConfig } from './support/temporal';

/** One span as an OTLP/HTTP JSON export carries it, with its resource's service name. */
interface ExportedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  status: number;
  attributes: Record<string, string | number | boolean>;
}

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpAttribute {
  key: string;
  value: OtlpValue;
}
interface OtlpExport {
  resourceSpans: {
    resource?: { attributes?: OtlpAttribute[] };
    scopeSpans: {
      spans: {
        traceId: string;
        spanId: string;
        parentSpanId?: string;
        name: string;
        status?: { code?: number };
        attributes?: OtlpAttribute[];
      }[];
    }[];
  }[];
}

function attributesOf(list: OtlpAttribute[] = []): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const { key, value } of list) {
    const v = value.stringValue ?? value.boolValue ?? value.doubleValue ?? value.intValue;
    if (v !== undefined) out[key] = typeof v === 'string' && value.intValue !== undefined ? Number(v) : v;
  }
  return out;
}

/** A local OTLP/HTTP receiver: what a collector or Jaeger would be sent, kept for the test to read. */
async function startReceiver(): Promise<{ url: string; spans: ExportedSpan[]; server: Server }> {
  const spans: ExportedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      assert.match(String(req.headers['content-type']), /application\/json/);
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpExport;
      for (const rs of body.resourceSpans) {
        const service = String(attributesOf(rs.resource?.attributes)['service.name']);
        for (const ss of rs.scopeSpans)
          for (const s of ss.spans)
            spans.push({
              service,
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || undefined,
              name: s.name,
              status: s.status?.code ?? 0,
              attributes: attributesOf(s.attributes),
            });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server };
}

/** Serves JSON lines of real prose; the first request for /flaky.jsonl answers 503, so its activity is retried. */
async function startSource(): Promise<{ url: string; server: Server }> {
  const lines = sampleCorpus('moby-dick')
    .documents.slice(70, 74)
    .map((d, i) => JSON.stringify({ id: `web-${i}`, text: d.text }))
    .join('\n');
  let flakyHits = 0;
  const server = createServer((req, res) => {
    if (req.url === '/flaky.jsonl' && ++flakyHits === 1) {
      res.writeHead(503).end('try again');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/x-ndjson' }).end(lines + '\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** Waits until `ready` holds of the spans received, flushing this process's spans each time round. */
async function waitForSpans(spans: ExportedSpan[], ready: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!ready()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; got ${spans.map((s) => s.name).join(', ')}`);
    await flushTracing();
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('trace configuration', () => {
  it('is off unless an OTLP endpoint is set', () => {
    assert.equal(loadConfig({}).tracing.tracesUrl, undefined);
    assert.equal(loadConfig({}).tracing.serviceName, 'flywheel');
  });

  it('sends to <endpoint>/v1/traces, or to the traces endpoint as given', () => {
    const base = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/', OTEL_SERVICE_NAME: 'etl' });
    assert.deepEqual(base.tracing, { tracesUrl: 'http://collector:4318/v1/traces', serviceName: 'etl' });
    const signal = loadConfig({
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example.com/otlp/v1/traces',
    });
    assert.equal(signal.tracing.tracesUrl, 'https://traces.example.com/otlp/v1/traces');
  });

  it('is off with OTEL_SDK_DISABLED=true, and a malformed endpoint is a configuration error', () => {
    const off = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' });
    assert.equal(off.tracing.tracesUrl, undefined);
    assert.throws(
      () => loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'collector:4317' }),
      (err: unknown) => err instanceof ConfigError && /OTEL_EXPORTER_OTLP_ENDPOINT/.test(err.message),
    );
  });

  it("names each pipeline step's stage, dataset and unit", () => {
    const key = { dataset: 'web', version: 'v2', digest: 'abc123' };
    assert.deepEqual(stepSpanAttributes('writeShardStage', { ...key, split: 'train', index: 3 } as never), {
      'flywheel.stage': 'shard',
      'flywheel.step': 'writeShardStage',
      'flywheel.dataset': 'web',
      'flywheel.dataset.version': 'v2',
      'flywheel.spec_digest': 'abc123',
      'flywheel.unit': 'split train, index 3',
    });
    assert.equal(stepSpanAttributes('collectBatch', { ...key, batch: 0 } as never)['flywheel.unit'], 'batch 0');
    assert.equal(stepSpanAttributes('planCollection', key as never)['flywheel.unit'], undefined);
  });
});

describe('a pipeline started from the CLI, traced', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let source: Awaited<ReturnType<typeof startSource>>;
  let s3: TestS3Server;
  let address: string;
  const bucket = `flywheel-traces-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-traces-'));

  before(async () => {
    [receiver, source, s3, address] = await Promise.all([
      startReceiver(),
      startSource(),
      startS3Server(),
      temporalAddress(),
    ]);
  });

  after(async () => {
    await shutdownTracing();
    receiver.server.close();
    source.server.close();
    await s3.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A worker in this process with the warm tier on S3, exporting its spans to `endpoint`. */
  async function startWorker(endpoint: string) {
    const config = testConfig(address, {
      FLYWHEEL_WARM: `s3://${bucket}/warm`,
      FLYWHEEL_S3_ENDPOINT: s3.endpoint,
      FLYWHEEL_S3_CHECKSUMS: s3.checksums,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      FLYWHEEL_S3_MAX_ATTEMPTS: '2',
      FLYWHEEL_COLLECT_HOSTS: '127.0.0.1',
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_SERVICE_NAME: 'flywheel-worker',
    });
    const warm = tieredStoreFromConfig(config).tier('warm');
    assert.ok(warm instanceof S3Store);
    await warm.ensureBucket();
    const workers = await createWorkers(config);
    const running = workers.run();
    return {
      config,
      async stop() {
        await workers.shutdown();
        await running;
      },
    };
  }

  function writeSpec(version: string): string {
    const file = path.join(dir, `spec-${version}.json`);
    const spec = {
      dataset: 'traced',
      version,
      sources: [
        { type: 'sample', limit: 6 },
        { type: 'url', url: `${source.url}/flaky.jsonl`, retries: 0 },
      ],
      quality: {},
      shards: { targetBytes: 256 * 1024, validationFraction: 0.2 },
      unitsPerBatch: 2,
    };
    fs.writeFileSync(file, JSON.stringify(spec));
    return file;
  }

  function cliEnv(config: { worker: { taskQueuePrefix: string } }, endpoint: string): NodeJS.ProcessEnv {
    return {
      TEMPORAL_ADDRESS: address,
      FLYWHEEL_HOME: dir,
      FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_SERVICE_NAME: 'flywheel-cli',
    };
  }

  it('yields one trace: the start, the workflow, each activity with its stage, dataset, unit and attempt, S3 calls under activities', async () => {
    const worker = await startWorker(receiver.url);
    try {
      const cli = await runCli(
        ['pipeline', 'run', '--spec', writeSpec('v1'), '--wait'],
        cliEnv(worker.config, receiver.url),
      );
      assert.equal(cli.status, 0, cli.stderr);
      assert.doesNotMatch(cli.stderr, /traces: cannot export/);
      const spans = receiver.spans;
      await waitForSpans(spans, () => spans.some((s) => s.name === 'RunWorkflow:dataPipeline'), 'the workflow span');

      const start = spans.find((s) => s.name === 'StartWorkflow:dataPipeline');
      assert.ok(start, 'the CLI exported its start span');
      assert.equal(start.service, 'flywheel-cli');
      assert.equal(start.parentSpanId, undefined, 'the start is the root of the trace');
      assert.equal(start.attributes.temporalWorkflowId, 'pipeline-traced-v1');
      const trace = spans.filter((s) => s.traceId === start.traceId);
      const byId = new Map(trace.map((s) => [s.spanId, s]));
      const parentOf = (s: ExportedSpan) => (s.parentSpanId ? byId.get(s.parentSpanId) : undefined);

      const workflow = trace.find((s) => s.name === 'RunWorkflow:dataPipeline');
      assert.ok(workflow, 'the workflow span is in the same trace');
      assert.equal(workflow.service, 'flywheel-worker');
      assert.equal(workflow.parentSpanId, start.spanId);
      assert.equal(workflow.attributes.temporalWorkflowId, 'pipeline-traced-v1');
      assert.equal(workflow.attributes.memo, undefined, 'no workflow memo leaves in span attributes');

      const activities = trace.filter((s) => s.name.startsWith('RunActivity:'));
      const names = new Set(activities.map((s) => s.name.slice('RunActivity:'.length)));
      for (const step of ['planCollection', 'collectBatch', 'filterBatch', 'tokenizePartitionStage', 'writeShardStage'])
        assert.ok(names.has(step), `an activity span for ${step}; got ${[...names].join(', ')}`);
      for (const run of activities) {
        const scheduled = parentOf(run);
        assert.equal(scheduled?.name, run.name.replace('RunActivity:', 'StartActivity:'));
        assert.equal(parentOf(scheduled!)?.spanId, workflow.spanId);
        assert.equal(run.attributes['flywheel.dataset'], 'traced');
        assert.equal(run.attributes['flywheel.dataset.version'], 'v1');
        assert.equal(typeof run.attributes['flywheel.stage'], 'string');
        assert.equal(typeof run.attributes['temporal.activity.attempt'], 'number');
      }
      const stages = new Set(activities.map((s) => s.attributes['flywheel.stage']));
      for (const stage of ['plan', 'collect', 'filter', 'dedup', 'tokenize', 'shard', 'commit'])
        assert.ok(stages.has(stage), `stage ${stage} among ${[...stages].join(', ')}`);
      assert.ok(
        activities.some((s) => s.attributes['flywheel.unit'] === 'batch 0'),
        'batch activities name their unit',
      );

      // The URL that failed once: a failed first attempt and a second that succeeded, under one activity start.
      const retried = activities.find((s) => s.attributes['temporal.activity.attempt'] === 2);
      assert.ok(retried, 'the retried activity shows attempt 2');
      const first = activities.find(
        (s) => s.parentSpanId === retried.parentSpanId && s.attributes['temporal.activity.attempt'] === 1,
      );
      assert.ok(first, 'its first attempt is a sibling span');
      assert.equal(first.status, 2, 'the failed attempt is marked as an error');
      assert.notEqual(retried.status, 2);

      const s3Spans = trace.filter((s) => s.name.startsWith('S3.'));
      assert.ok(
        s3Spans.some((s) => s.name === 'S3.PutObject'),
        'stage outputs are written to S3',
      );
      for (const call of s3Spans) {
        assert.equal(call.attributes['aws.s3.bucket'], bucket);
        assert.equal(call.attributes['rpc.system'], 'aws-api');
        let up = parentOf(call);
        while (up && !up.name.startsWith('RunActivity:')) up = parentOf(up);
        assert.ok(up, `${call.name} ${call.attributes['aws.s3.key']} runs under an activity`);
      }
      assert.ok(!trace.some((s) => s.name.startsWith('HandleQuery')), '--wait polls progress without spans');
      assert.deepEqual(
        spans.filter((s) => s.traceId !== start.traceId && s.name.startsWith('S3.')),
        [],
        'no S3 call outside the trace',
      );
    } finally {
      await worker.stop();
      await shutdownTracing();
    }
  });

  it('completes a run when the OTLP endpoint is unreachable, with one warning per process', async () => {
    const dead = `http://127.0.0.1:${await freePort()}`;
    const warn = mock.method(console, 'warn');
    const worker = await startWorker(dead);
    try {
      const cli = await runCli(['pipeline', 'run', '--spec', writeSpec('v2'), '--wait'], cliEnv(worker.config, dead));
      assert.equal(cli.status, 0, cli.stderr);
      assert.match(cli.stdout, /dataset traced\/v2/);
      assert.equal(cli.stderr.match(/traces: cannot export to .*v1\/traces/g)?.length, 1, cli.stderr);
      await flushTracing();
      await flushTracing();
      const warnings = warn.mock.calls.filter((c) => /traces: cannot export/.test(String(c.arguments[0])));
      assert.equal(warnings.length, 1, 'the worker warned once');
      assert.match(String(warnings[0].arguments[0]), /spans are dropped/);
    } finally {
      warn.mock.restore();
      await worker.stop();
      await shutdownTracing();
    }
  });
});
