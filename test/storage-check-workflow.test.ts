import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { createActivities } from '../activities';
import { FlywheelClient } from '../client/flywheel-client';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import { specDigest } from '../lib/contracts/digest';
import { StorageCheckSpec } from '../lib/contracts/storage-check';
import { S3Store, tieredStoreFromConfig, type ArtifactRef } from '../lib/storage';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { startS3Server } from './support/s3-server';
import { temporalAddress, testConfig } from './support/temporal';

describe('the storageCheck workflow on a real Temporal server', () => {
  let connection: Connection;
  let client: Client;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let flywheel: FlywheelClient;

  before(async () => {
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
  });

  it('writes objects, commits the manifest last and verifies every checksum', async () => {
    const handle = await flywheel.startStorageCheck({ name: 'local-tiers', objects: 4, objectBytes: 100_000 });
    const result = await handle.result();
    assert.equal(result.verified, true);
    assert.equal(result.objects, 4);
    assert.equal(result.bytes, 400_000);
    assert.match(result.manifest.uri, /^warm:\/\/checks\/local-tiers\/[0-9a-f]{16}\/manifest\.json$/);
    const manifestFile = path.join(config.tiers.warm, result.manifest.uri.slice('warm://'.length));
    const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
    assert.equal(manifest.objects.length, 4);
    assert.equal(fs.statSync(manifestFile).size, result.manifest.bytes);

    const progress = await flywheel.storageCheckProgress(handle.workflowId);
    assert.equal(progress.stage, 'done');
    const description = await handle.describe();
    assert.deepEqual(description.searchAttributes.FlywheelKind, ['storage-check']);
    assert.deepEqual(description.searchAttributes.FlywheelStage, ['done']);
  });

  it('the same spec writes the same bytes: a rerun reuses the workflow id and yields the same manifest', async () => {
    const spec = { name: 'idempotent', objects: 2, objectBytes: 10_000 };
    const first = await flywheel.runStorageCheck(spec);
    const second = await flywheel.runStorageCheck(spec);
    assert.deepEqual(second.manifest, first.manifest);
  });

  it('a bad spec from the UI or a raw client fails at once, non-retryably, naming every bad field', async () => {
    const handle = await client.workflow.start('storageCheck', {
      args: [{ objects: 0, tier: 'lukewarm', name: 'Bad Name', surprise: true }],
      taskQueue: `${config.worker.taskQueuePrefix}-io`,
      workflowId: `bad-spec-${Date.now()}`,
    });
    const err = await handle.result().then(
      () => assert.fail('a bad spec must fail the run'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowFailedError);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'InvalidSpec');
    assert.equal(err.cause.nonRetryable, true);
    for (const field of ['objects', 'tier', 'name', 'surprise']) assert.match(err.cause.message, new RegExp(field));
    const events = (await handle.fetchHistory()).events ?? [];
    assert.ok(!events.some((e) => e.activityTaskScheduledEventAttributes), 'no activity runs for a bad spec');
  });

  it('the typed client rejects a bad spec before starting anything', async () => {
    await assert.rejects(
      flywheel.startStorageCheck({ objects: -1, objectBytes: 1.5 }),
      (e: unknown) =>
        e instanceof InvalidSpec &&
        e.problems
          .map((p) => p.field)
          .sort()
          .join() === 'objectBytes,objects',
    );
  });

  it('runs with the warm tier on a real S3-compatible server', async () => {
    const s3 = await startS3Server();
    after(() => s3.stop());
    const bucket = `flywheel-wf-${Date.now()}`;
    const s3Env = {
      FLYWHEEL_WARM: `s3://${bucket}/warm`,
      FLYWHEEL_S3_ENDPOINT: s3.endpoint,
      FLYWHEEL_S3_CHECKSUMS: s3.checksums,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      FLYWHEEL_S3_MAX_ATTEMPTS: '2',
    };
    const s3Config = testConfig(await temporalAddress(), s3Env);
    const store = tieredStoreFromConfig(s3Config);
    const warm = store.tier('warm');
    assert.ok(warm instanceof S3Store);
    await warm.ensureBucket();
    const s3Workers = await createWorkers(s3Config);
    const s3Running = s3Workers.run();
    try {
      const s3Flywheel = new FlywheelClient(client, { taskQueuePrefix: s3Config.worker.taskQueuePrefix });
      const result = await s3Flywheel.runStorageCheck({ name: 's3-warm', objects: 3, objectBytes: 3 * 1024 * 1024 });
      assert.equal(result.bytes, 9 * 1024 * 1024);
      const head = await store.head(result.manifest.uri);
      assert.equal(head.bytes, result.manifest.bytes);
    } finally {
      await s3Workers.shutdown();
      await s3Running;
    }
  });

  it('a corrupted object fails verification with a non-retryable ChecksumMismatch naming the object', async () => {
    const store = tieredStoreFromConfig(config);
    const activities = createActivities({ store });
    const env = new MockActivityEnvironment();
    const spec = StorageCheckSpec.parse({ name: 'corrupt', objects: 2, objectBytes: 5000 });
    const manifest: ArtifactRef = await env.run(activities.writeSampleObjects, { ...spec, digest: specDigest(spec) });
    const victim = manifest.uri.replace('manifest.json', 'object-000001.bin');
    const file = path.join(config.tiers.warm, victim.slice('warm://'.length));
    const bytes = fs.readFileSync(file);
    bytes[100] ^= 0xff;
    fs.writeFileSync(file, bytes);
    await assert.rejects(env.run(activities.verifyArtifact, { manifest }), (e: unknown) => {
      assert.ok(e instanceof ApplicationFailure);
      assert.equal(e.type, 'ChecksumMismatch');
      assert.equal(e.nonRetryable, true);
      assert.match(e.message, /object-000001\.bin/);
      return true;
    });
  });
});
