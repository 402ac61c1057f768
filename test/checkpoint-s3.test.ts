import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  CheckpointManager,
  CorruptCheckpoint,
  keepEveryNSteps,
  keepLastN,
  type CheckpointWarning,
} from '../lib/checkpoint';
import { createS3Client, FsStore, S3Store, TieredStore } from '../lib/storage';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';

let server: TestS3Server;
let client: S3Client;
const root = mkdtempSync(join(tmpdir(), 'flywheel-checkpoint-s3-'));
let runs = 0;

before(async () => {
  server = await startS3Server();
  client = createS3Client(s3ClientOptions(server));
});
after(async () => {
  client?.destroy();
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});

async function s3Fixture(): Promise<{
  manager: CheckpointManager;
  hotDir: string;
  tiered: TieredStore;
  warnings: CheckpointWarning[];
}> {
  const n = ++runs;
  const warm = new S3Store({ bucket: `flywheel-ckpt-${Date.now().toString(36)}-${n}`, prefix: 'warm', client });
  await warm.ensureBucket();
  const hotDir = join(root, `hot-${n}`);
  const tiered = new TieredStore({ hot: new FsStore(hotDir), warm, cold: new FsStore(join(root, `cold-${n}`)) });
  const warnings: CheckpointWarning[] = [];
  const manager = new CheckpointManager({
    store: tiered,
    runPrefix: 'runs/s3run/checkpoints',
    onWarning: (w) => warnings.push(w),
  });
  return { manager, hotDir, tiered, warnings };
}

const META = { runId: 's3run', epoch: 1, specDigest: 'spec-s3' };

describe('checkpoints with an S3 warm tier', () => {
  it('commits to S3 and restores byte-identical after the hot tier is lost', async () => {
    const { manager, hotDir } = await s3Fixture();
    const weights = randomBytes(3 * 1024 * 1024 + 17);
    await manager.save(100, { 'model.bin': weights, 'rng.json': Buffer.from('{"seed":1}') }, META);
    const committed = await manager.commitToWarm(100);
    assert.equal(committed.manifest.uri, 'warm://runs/s3run/checkpoints/step-000000000100/manifest.json');
    assert.equal((await manager.readLatest())?.step, 100);
    rmSync(hotDir, { recursive: true, force: true });
    const restored = await manager.restoreLatest({ expect: { specDigest: 'spec-s3' } });
    assert.equal(restored.tier, 'warm');
    assert.ok(restored.files['model.bin'].equals(weights));
    assert.equal(restored.files['rng.json'].toString(), '{"seed":1}');
  });

  it('skips a corrupt object in S3 and restores the previous checkpoint', async () => {
    const { manager, hotDir, tiered, warnings } = await s3Fixture();
    for (const step of [100, 200]) {
      await manager.save(step, { 'model.bin': Buffer.from(`weights at ${step}`) }, META);
      await manager.commitToWarm(step);
    }
    rmSync(hotDir, { recursive: true, force: true });
    await tiered.put('warm://runs/s3run/checkpoints/step-000000000200/files/model.bin', 'bit rot');
    const restored = await manager.restoreLatest();
    assert.equal(restored.step, 100);
    assert.equal(restored.files['model.bin'].toString(), 'weights at 100');
    assert.equal(warnings.length, 1);
    assert.ok(warnings[0].error instanceof CorruptCheckpoint);
  });

  it('applies retention across an S3 warm tier and a cold folder', async () => {
    const { manager } = await s3Fixture();
    for (const step of [100, 200, 300, 400]) {
      await manager.save(step, { 'model.bin': Buffer.from(`weights at ${step}`) }, META);
      await manager.commitToWarm(step);
    }
    await manager.applyRetention([keepLastN(2), keepEveryNSteps(200)]);
    assert.deepEqual(
      (await manager.list()).map((c) => [c.step, c.tiers]),
      [
        [200, ['cold']],
        [300, ['hot', 'warm']],
        [400, ['hot', 'warm', 'cold']],
      ],
    );
    assert.equal((await manager.restore(200)).files['model.bin'].toString(), 'weights at 200');
  });
});
