import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { inspect } from 'node:util';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { DefaultLogger, NativeConnection, Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect';
import { loadConfig, type FlywheelConfig } from '../lib/config';
import { S3Store, createS3Client } from '../lib/storage';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';
import { temporalAddress } from './support/temporal';

/** Everything the worker process says: SDK and core logs at DEBUG, and whatever reaches stdout and stderr. */
const logs: string[] = [];
Runtime.install({
  logger: new DefaultLogger('DEBUG', (entry) => {
    logs.push(`${entry.level} ${entry.message} ${inspect(entry.meta, { depth: 8 })}`);
  }),
  telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'DEBUG' }), forward: {} } },
});
for (const stream of [process.stdout, process.stderr]) {
  const write = stream.write.bind(stream) as (...args: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) => {
    logs.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    return write(chunk, ...rest);
  }) as typeof stream.write;
}

/** Every string, number and byte array (decoded as UTF-8, gunzipped when gzip) inside `value`, for searching. */
function textOf(value: unknown, out: string[] = [], seen = new Set<unknown>()): string[] {
  if (value === null || value === undefined) return out;
  if (typeof value === 'string') out.push(value);
  else if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean')
    out.push(String(value));
  else if (value instanceof Uint8Array) out.push(...decodedForms(Buffer.from(value)));
  else if (typeof value === 'object' && !seen.has(value)) {
    seen.add(value);
    if (typeof (value as { toJSON?: unknown }).toJSON === 'function') out.push(JSON.stringify(value));
    for (const [key, child] of Object.entries(value)) {
      out.push(key);
      textOf(child, out, seen);
    }
  }
  return out;
}

function decodedForms(bytes: Buffer): string[] {
  const forms = [bytes.toString('utf8'), bytes.toString('latin1')];
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      forms.push(gunzipSync(bytes).toString('utf8'));
    } catch {
      // not a complete gzip stream: the raw forms are searched
    }
  }
  return forms;
}

function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true, recursive: true }).flatMap((entry) => {
    const file = path.join(entry.parentPath ?? entry.path, entry.name);
    return entry.isFile() ? [file] : [];
  });
}

async function objectsIn(client: S3Client, bucket: string): Promise<{ key: string; bytes: Buffer }[]> {
  const found: { key: string; bytes: Buffer }[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }));
    for (const { Key } of page.Contents ?? []) {
      if (!Key) continue;
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key }));
      found.push({ key: Key, bytes: Buffer.from(await res.Body!.transformToByteArray()) });
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return found;
}

describe('credentials stay out of workflow inputs, histories, logs and outputs', () => {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-secrets-'));
  const suffix = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const buckets = { warm: `secrets-warm-${suffix}`, corpus: `secrets-corpus-${suffix}` };
  const apiKey = `flywheel-test-api-key-${randomBytes(12).toString('hex')}`;
  const workflowIds: string[] = [];
  let s3: TestS3Server;
  let s3Client: S3Client;
  let config: FlywheelConfig;
  let nativeConnection: NativeConnection;
  let connection: Connection;
  let client: Client;
  let workers: FlywheelWorkers;
  let running: Promise<void>;

  before(async () => {
    s3 = await startS3Server();
    s3Client = createS3Client(s3ClientOptions(s3));
    for (const bucket of Object.values(buckets)) await new S3Store({ bucket, client: s3Client }).ensureBucket();
    const chapters = sampleCorpus('moby-dick').documents.slice(50, 54);
    const corpus = new S3Store({ bucket: buckets.corpus, client: s3Client });
    for (const [i, chapter] of chapters.entries()) {
      await corpus.put(`books/chapter-${i}.jsonl`, `${JSON.stringify({ id: chapter.id, text: chapter.text })}\n`);
    }

    const address = await temporalAddress();
    // Credentials come from the environment only, as in production.
    config = loadConfig({
      TEMPORAL_ADDRESS: address,
      TEMPORAL_API_KEY: apiKey,
      FLYWHEEL_HOME: home,
      FLYWHEEL_WARM: `s3://${buckets.warm}/warm`,
      FLYWHEEL_S3_ENDPOINT: s3.endpoint,
      FLYWHEEL_S3_CHECKSUMS: s3.checksums,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      FLYWHEEL_S3_MAX_ATTEMPTS: '2',
      FLYWHEEL_TASK_QUEUE_PREFIX: `flywheel-secrets-${suffix}`,
      FLYWHEEL_METRICS_PORT: '0',
      FLYWHEEL_LOG_LEVEL: 'DEBUG',
    });
    assert.equal(config.temporal.apiKey, apiKey);
    assert.equal(config.s3.credentials?.secretAccessKey, s3.secretAccessKey);
    // The dev server speaks no TLS, which an API key otherwise turns on: the key still goes with every call.
    nativeConnection = await NativeConnection.connect({ address, apiKey, tls: false });
    workers = await createWorkers(config, { connection: nativeConnection });
    running = workers.run();
    connection = await Connection.connect({ address, apiKey, tls: false });
    client = new Client({ connection });
  });

  after(async () => {
    await workers?.shutdown();
    await running;
    await nativeConnection?.close();
    await connection?.close();
    s3Client?.destroy();
    await s3?.stop();
    fs.rmSync(home, { recursive: true, force: true });
  });

  it('a pipeline over S3 that succeeds, and one that fails, leave the secret key and API key nowhere', async () => {
    const flywheel = new FlywheelClient(client, { taskQueuePrefix: config.worker.taskQueuePrefix });
    const ok = await flywheel.startPipeline({
      dataset: 'secrets',
      sources: [
        { type: 's3', uri: `s3://${buckets.corpus}/books` },
        { type: 'sample', limit: 4 },
      ],
    });
    workflowIds.push(ok.workflowId);
    const summary = await ok.result();
    assert.ok(summary.documents > 0);

    const failing = await flywheel.startPipeline({
      dataset: 'secrets-missing',
      sources: [{ type: 's3', uri: `s3://${buckets.corpus}-missing/books` }],
    });
    workflowIds.push(failing.workflowId);
    await assert.rejects(failing.result(), WorkflowFailedError);

    const searched: { where: string; text: string[] }[] = [];
    const listed: string[] = [];
    for await (const execution of client.workflow.list({
      query: `TaskQueue = '${config.worker.taskQueuePrefix}-io'`,
    })) {
      listed.push(execution.workflowId);
    }
    for (const id of new Set([...workflowIds, ...listed])) {
      const handle = client.workflow.getHandle(id);
      searched.push({ where: `history of ${id}`, text: textOf(await handle.fetchHistory()) });
      searched.push({ where: `description of ${id}`, text: textOf((await handle.describe()).raw) });
    }
    searched.push({ where: 'the summary', text: textOf(summary) });
    searched.push({ where: 'worker logs and output', text: logs });
    for (const file of filesUnder(home)) {
      searched.push({ where: file, text: decodedForms(fs.readFileSync(file)) });
    }
    for (const { key, bytes } of await objectsIn(s3Client, buckets.warm)) {
      searched.push({ where: `s3://${buckets.warm}/${key}`, text: decodedForms(bytes) });
    }

    assert.ok(
      searched.some((s) => s.where.startsWith('history')),
      'histories were searched',
    );
    assert.ok(searched.filter((s) => s.where.startsWith('s3://')).length > 3, 'the run wrote its outputs to S3');
    assert.ok(logs.length > 10, 'the worker logged at DEBUG');
    const secrets = { 'S3 secret access key': s3.secretAccessKey, 'Temporal API key': apiKey };
    for (const [name, secret] of Object.entries(secrets)) {
      const leaks = searched.filter(({ text }) => text.some((t) => t.includes(secret))).map((s) => s.where);
      assert.deepEqual(leaks, [], `the ${name} appears in: ${leaks.join(', ')}`);
    }
  });
});
