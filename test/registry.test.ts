import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  codeVersion,
  CorruptModelVersion,
  ModelNotFound,
  ModelRegistry,
  NoPreviousChampion,
  type PromotionDecision,
  type RegisterInput,
} from '../lib/registry';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import { createS3Client, FsStore, S3Store, TieredStore, type ObjectStore } from '../lib/storage';
import { createTrainer } from '../lib/train';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';

const root = mkdtempSync(join(tmpdir(), 'flywheel-registry-'));
let stores = 0;
let server: TestS3Server | undefined;
let client: S3Client | undefined;
after(async () => {
  client?.destroy();
  await server?.stop();
  rmSync(root, { recursive: true, force: true });
});

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

function input(over: Partial<RegisterInput> = {}): RegisterInput {
  const run = over.run ?? 'run-a';
  const step = over.step ?? 100;
  return {
    model: 'tiny',
    run,
    dataset: 'warm://datasets/web/v1/manifest.json',
    step,
    specDigest: 'abc123',
    spec: { trainer: { seed: 1 }, steps: step },
    metrics: { valLoss: 2.5, perplexity: Math.exp(2.5) },
    files: {
      'weights.f32': Buffer.from(`weights of ${run} at ${step}`),
      'state.json': Buffer.from('{"format":"test"}'),
    },
    ...over,
  };
}

/** The same behaviour, whatever store the registry sits on. */
function registryBehaviour(backend: string, warmStore: () => Promise<ObjectStore>): void {
  describe(`model registry (${backend})`, () => {
    async function fixture(wrapWarm?: (s: ObjectStore) => ObjectStore) {
      const n = ++stores;
      const warm = await warmStore();
      const tiered = new TieredStore({
        hot: new FsStore(join(root, `hot-${n}`)),
        warm: wrapWarm ? wrapWarm(warm) : warm,
        cold: new FsStore(join(root, `cold-${n}`)),
      });
      return { tiered, registry: new ModelRegistry(tiered) };
    }

    it('registers a version and gets, lists and loads it back verified', async () => {
      const { registry } = await fixture();
      const tokens = Uint32Array.from({ length: 300 }, (_, i) => [3, 1, 4, 1, 5][i % 5]);
      const trainer = createTrainer({ sequenceTokens: 8, batch: { trainBatchSize: 2 } }, tokens);
      const files = trainer.serialize();
      const registered = await registry.register(input({ files }));
      assert.equal(registered.version, 'v1');
      assert.equal(registered.model, 'tiny');
      assert.equal(registered.weightsSha256, sha256(files['weights.f32']));
      assert.equal(registered.codeVersion, codeVersion());
      assert.equal(registered.manifest, 'warm://models/tiny/versions/v1/manifest.json');
      assert.deepEqual(
        registered.files.map((f) => [f.name, f.uri, f.sha256, f.bytes]),
        Object.keys(files)
          .sort()
          .map((name) => [
            name,
            `warm://models/tiny/versions/v1/files/${name}`,
            sha256(files[name]),
            files[name].length,
          ]),
      );
      assert.ok(!Number.isNaN(Date.parse(registered.createdAt)));

      assert.deepEqual(await registry.get('tiny', 'v1'), registered);
      assert.deepEqual(await registry.list('tiny'), [registered]);
      assert.deepEqual(await registry.list(), [registered]);
      assert.deepEqual(await registry.models(), ['tiny']);
      const loaded = await registry.loadFiles(registered);
      assert.deepEqual(Object.keys(loaded).sort(), Object.keys(files).sort());
      for (const name of Object.keys(files)) assert.ok(loaded[name].equals(files[name]), name);
    });

    it('returns the existing version when the same run, step and weights are registered again', async () => {
      const { registry } = await fixture();
      const first = await registry.register(input());
      const again = await registry.register(input({ metrics: { valLoss: 9 } }));
      assert.deepEqual(again, first);
      const next = await registry.register(input({ step: 200 }));
      assert.equal(next.version, 'v2');
      assert.deepEqual(
        (await registry.list('tiny')).map((v) => v.version),
        ['v1', 'v2'],
      );
    });

    it('allocates versions in order and resolves latest, champion and the default', async () => {
      const { registry } = await fixture();
      for (let step = 1; step <= 11; step++) await registry.register(input({ step }));
      const versions = await registry.list('tiny');
      assert.deepEqual(
        versions.map((v) => v.version),
        Array.from({ length: 11 }, (_, i) => `v${i + 1}`),
      );
      assert.deepEqual(
        versions.map((v) => v.step),
        Array.from({ length: 11 }, (_, i) => i + 1),
      );
      assert.equal((await registry.get('tiny')).version, 'v11');
      assert.equal((await registry.get('tiny', 'latest')).version, 'v11');
      await registry.promote('tiny', 'v3', 'best so far');
      assert.equal((await registry.get('tiny')).version, 'v3');
      assert.equal((await registry.get('tiny', 'champion')).version, 'v3');
    });

    it('records lineage: a fine-tune names its registered parent, which must exist', async () => {
      const { registry } = await fixture();
      const base = await registry.register(input());
      const tuned = await registry.register(
        input({ model: 'tiny-tuned', run: 'ft', parent: { model: base.model, version: base.version } }),
      );
      assert.deepEqual(tuned.parent, { model: 'tiny', version: 'v1' });
      assert.equal(tuned.version, 'v1');
      assert.deepEqual(await registry.models(), ['tiny', 'tiny-tuned']);
      await assert.rejects(
        registry.register(input({ model: 'other', parent: { model: 'tiny', version: 'v7' } })),
        ModelNotFound,
      );
    });

    it('promotes and rolls back the champion with a history of every change', async () => {
      const { registry } = await fixture();
      for (const step of [1, 2, 3]) await registry.register(input({ step }));
      assert.deepEqual(await registry.aliases('tiny'), { model: 'tiny', history: [] });
      await assert.rejects(registry.rollback('tiny'), NoPreviousChampion);
      await registry.promote('tiny', 'v1', 'first');
      await registry.promote('tiny', 'v2', 'better');
      const again = await registry.promote('tiny', 'v2', 'retried');
      assert.equal(again.history.length, 2, 'a repeated promotion adds no event');
      await registry.promote('tiny', 'v3', 'best');

      const back = await registry.rollback('tiny', 'v3 regressed');
      assert.equal(back.champion, 'v2');
      assert.deepEqual(
        await registry.rollback('tiny', 'retried', { from: 'v3' }),
        back,
        'a retried rollback is a no-op',
      );
      assert.equal((await registry.rollback('tiny', 'v2 too')).champion, 'v1');
      await assert.rejects(registry.rollback('tiny'), (err: unknown) => {
        assert.ok(err instanceof NoPreviousChampion);
        assert.match(err.message, /only one champion \(v1\)/);
        return true;
      });

      const state = await registry.aliases('tiny');
      assert.equal(state.champion, 'v1');
      assert.deepEqual(
        state.history.map(({ action, version, previous, reason }) => ({ action, version, previous, reason })),
        [
          { action: 'promote', version: 'v1', previous: undefined, reason: 'first' },
          { action: 'promote', version: 'v2', previous: 'v1', reason: 'better' },
          { action: 'promote', version: 'v3', previous: 'v2', reason: 'best' },
          { action: 'rollback', version: 'v2', previous: 'v3', reason: 'v3 regressed' },
          { action: 'rollback', version: 'v1', previous: 'v2', reason: 'v2 too' },
        ],
      );
      await assert.rejects(registry.promote('tiny', 'v9', 'missing'), ModelNotFound);
    });

    it('says what exists when a model, version or champion is missing', async () => {
      const { registry } = await fixture();
      await assert.rejects(registry.get('tiny'), /no model 'tiny' in the registry at warm:\/\/models \(models: none/);
      await registry.register(input());
      await registry.register(input({ step: 2 }));
      await registry.register(input({ model: 'small' }));
      await assert.rejects(registry.get('tinny'), (err: unknown) => {
        assert.ok(err instanceof ModelNotFound);
        assert.equal(err.retryable, false);
        assert.deepEqual(err.available, ['small', 'tiny']);
        assert.match(err.message, /no model 'tinny'.*\(models: small, tiny\)/);
        return true;
      });
      await assert.rejects(registry.get('tiny', 'v5'), /model 'tiny' has no version 'v5' \(versions: v1, v2\)/);
      await assert.rejects(registry.get('tiny', 'champion'), /model 'tiny' has no champion yet \(versions: v1, v2\)/);
      await assert.rejects(registry.get('../etc'), InvalidSpec);
    });

    it('detects a corrupted or missing file when loading', async () => {
      const { registry, tiered } = await fixture();
      const mv = await registry.register(input());
      const weights = mv.files.find((f) => f.name === 'weights.f32')!;
      await tiered.put(weights.uri, 'bit rot');
      await assert.rejects(registry.loadFiles(mv), (err: unknown) => {
        assert.ok(err instanceof CorruptModelVersion);
        assert.equal(err.file, 'weights.f32');
        assert.match(err.message, /model tiny v1: file 'weights\.f32' .* has sha256 [0-9a-f]{64} \(7 bytes\)/);
        return true;
      });
      await tiered.delete(weights.uri);
      await assert.rejects(registry.loadFiles(mv), /weights\.f32.*is missing/);
    });

    it('records each promotion decision once, by id', async () => {
      const { registry } = await fixture();
      const decision = (id: string, at: string, over: Partial<PromotionDecision> = {}): PromotionDecision => ({
        id,
        at,
        model: 'tiny',
        champion: 'v1',
        challenger: 'v2',
        decision: 'reject',
        reason: 'challenger perplexity 12.1 ≥ champion 11.9',
        metrics: { champion: { perplexity: 11.9 }, challenger: { perplexity: 12.1 } },
        ...over,
      });
      await registry.recordDecision(decision('flywheel/2025-01-02', '2025-01-02T03:00:00.000Z'));
      await registry.recordDecision(decision('nightly-1', '2025-01-01T03:00:00.000Z', { decision: 'promote' }));
      await registry.recordDecision(
        decision('nightly-1', '2025-01-05T03:00:00.000Z', { decision: 'failed', reason: 'a retry' }),
      );
      const recorded = await registry.decisions('tiny');
      assert.deepEqual(
        recorded.map((d) => [d.id, d.decision]),
        [
          ['nightly-1', 'promote'],
          ['flywheel/2025-01-02', 'reject'],
        ],
      );
      assert.deepEqual(recorded[1], decision('flywheel/2025-01-02', '2025-01-02T03:00:00.000Z'));
      assert.deepEqual(await registry.decisions('small'), []);
      await assert.rejects(registry.recordDecision({ ...decision('x', 'yesterday') }), InvalidSpec);
    });

    it('gives racing registrations distinct versions, each with its own files', async () => {
      const { registry } = await fixture();
      const runs = ['r1', 'r2', 'r3', 'r4', 'r5'];
      const registered = await Promise.all(runs.map((run) => registry.register(input({ run }))));
      // Distinct numbers are guaranteed; a registration that backed off may leave a gap.
      assert.equal(new Set(registered.map((v) => v.version)).size, runs.length);
      assert.deepEqual((await registry.list('tiny')).map((v) => v.run).sort(), runs);
      for (const mv of await registry.list('tiny')) {
        const files = await registry.loadFiles(mv);
        assert.equal(files['weights.f32'].toString(), `weights of ${mv.run} at 100`);
      }
    });

    it('refuses an invalid registration, naming every bad field', async () => {
      const { registry } = await fixture();
      await assert.rejects(
        registry.register({ ...input({ model: 'bad/name', step: -1, files: {} }), metrics: { loss: NaN } }),
        (err: unknown) =>
          err instanceof InvalidSpec &&
          ['model', 'step', 'files', 'metrics.loss'].every((f) => err.problems.some((p) => p.field === f)),
      );
      await assert.rejects(registry.register(input({ files: { '../escape': Buffer.from('x') } })), InvalidSpec);
    });
  });
}

registryBehaviour('folder', async () => new FsStore(join(root, `warm-${++stores}`)));

registryBehaviour('S3', async () => {
  server ??= await startS3Server();
  client ??= createS3Client(s3ClientOptions(server));
  const warm = new S3Store({
    bucket: `flywheel-registry-${Date.now().toString(36)}-${++stores}`,
    prefix: 'warm',
    client,
  });
  await warm.ensureBucket();
  return warm;
});

describe('model registry on a failing store', () => {
  it('resumes a registration that crashed after its claim with the same version number', async () => {
    const warm = new FsStore(join(root, `warm-crash-${++stores}`));
    let failManifest = true;
    const crashing: ObjectStore = {
      name: warm.name,
      put: async (key, body, opts) => {
        if (failManifest && key.endsWith('/manifest.json')) {
          failManifest = false;
          throw new Error('worker lost before the manifest');
        }
        return warm.put(key, body, opts);
      },
      get: (key, opts) => warm.get(key, opts),
      getBytes: (key) => warm.getBytes(key),
      head: (key) => warm.head(key),
      list: (prefix, opts) => warm.list(prefix, opts),
      listAll: (prefix) => warm.listAll(prefix),
      exists: (key) => warm.exists(key),
      delete: (key) => warm.delete(key),
      copy: (from, to) => warm.copy(from, to),
      uri: (key) => warm.uri(key),
    };
    const tiered = new TieredStore({ hot: warm, warm: crashing, cold: warm });
    const registry = new ModelRegistry(tiered);
    await assert.rejects(registry.register(input()), /worker lost/);
    assert.deepEqual(await registry.list('tiny'), []);
    const other = await registry.register(input({ run: 'other' }));
    assert.equal(other.version, 'v2', 'the claimed number is not taken by another registration');
    const retried = await registry.register(input());
    assert.equal(retried.version, 'v1');
  });
});

describe('code version', () => {
  it("is package.json's version plus the checkout's commit", () => {
    const pkg = JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string };
    let commit: string | undefined;
    try {
      commit = execFileSync('git', ['rev-parse', 'HEAD'], { cwd: join(__dirname, '..'), encoding: 'utf8' }).trim();
    } catch {
      commit = undefined;
    }
    assert.equal(codeVersion(), commit ? `${pkg.version}+${commit.slice(0, 12)}` : pkg.version);
    assert.equal(codeVersion(), codeVersion());
  });
});
