import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import {
  CheckpointManager,
  CheckpointNotFound,
  CorruptCheckpoint,
  IncompatibleCheckpoint,
  keepBestN,
  keepEveryNSteps,
  keepLastN,
  type CheckpointWarning,
} from '../lib/checkpoint';
import { FsStore, TieredStore, type ObjectStore, type Tier } from '../lib/storage';

const root = mkdtempSync(join(tmpdir(), 'flywheel-checkpoint-'));
after(() => rmSync(root, { recursive: true, force: true }));
let dirs = 0;

interface Fixture {
  tiered: TieredStore;
  dirs: Record<Tier, string>;
  manager: CheckpointManager;
  warnings: CheckpointWarning[];
}

const PREFIX = 'runs/r1/checkpoints';
const META = { runId: 'r1', epoch: 0, specDigest: 'spec-abc' };

function fixture(wrap: Partial<Record<Tier, (s: ObjectStore) => ObjectStore>> = {}): Fixture {
  const n = ++dirs;
  const paths = { hot: join(root, `hot-${n}`), warm: join(root, `warm-${n}`), cold: join(root, `cold-${n}`) };
  const store = (tier: Tier): ObjectStore => {
    const fs = new FsStore(paths[tier]);
    return wrap[tier]?.(fs) ?? fs;
  };
  const tiered = new TieredStore({ hot: store('hot'), warm: store('warm'), cold: store('cold') });
  const warnings: CheckpointWarning[] = [];
  const manager = new CheckpointManager({ store: tiered, runPrefix: PREFIX, onWarning: (w) => warnings.push(w) });
  return { tiered, dirs: paths, manager, warnings };
}

/** An ObjectStore that runs `before` ahead of every put: to fail (a crash) or to wait (a slow network). */
function interceptPuts(inner: ObjectStore, before: (key: string) => Promise<void>): ObjectStore {
  return {
    name: inner.name,
    put: async (key, body, opts) => {
      await before(key);
      return inner.put(key, body, opts);
    },
    get: (key, opts) => inner.get(key, opts),
    getBytes: (key) => inner.getBytes(key),
    head: (key) => inner.head(key),
    list: (prefix, opts) => inner.list(prefix, opts),
    listAll: (prefix) => inner.listAll(prefix),
    exists: (key) => inner.exists(key),
    delete: (key) => inner.delete(key),
    copy: (from, to) => inner.copy(from, to),
    uri: (key) => inner.uri(key),
  };
}

function stateAt(step: number): Record<string, Buffer> {
  const seed = Buffer.from(`step-${step}`);
  return {
    'model.bin': Buffer.concat([seed, randomBytes(64 * 1024)]),
    'optimizer/adam-m.bin': Buffer.concat([seed, randomBytes(4096)]),
    'rng.json': Buffer.from(JSON.stringify({ seed: 42, step })),
    'cursor.json': Buffer.from(JSON.stringify({ shard: 3, offset: step * 128 })),
  };
}

function gate(): { wait: Promise<void>; open: () => void } {
  let open = (): void => undefined;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('checkpoint save and restore', () => {
  it('round-trips every file byte for byte, streams included', async () => {
    const { manager } = fixture();
    const files = stateAt(10);
    const saved = await manager.save(
      10,
      { ...files, 'big.bin': Readable.from([files['model.bin'].subarray(0, 10), files['model.bin'].subarray(10)]) },
      { ...META, metrics: { valLoss: 2.5 } },
    );
    assert.equal(saved.tier, 'hot');
    assert.equal(saved.manifest.uri, `hot://${PREFIX}/step-000000000010/manifest.json`);
    const restored = await manager.restoreLatest();
    assert.equal(restored.step, 10);
    assert.equal(restored.tier, 'hot');
    assert.deepEqual(restored.meta.metrics, { valLoss: 2.5 });
    assert.equal(restored.meta.specDigest, 'spec-abc');
    for (const [name, bytes] of Object.entries(files)) assert.ok(restored.files[name].equals(bytes), name);
    assert.ok(restored.files['big.bin'].equals(files['model.bin']));
    assert.deepEqual(restored.skipped, []);
  });

  it('leaves no visible checkpoint when it crashes between the files and the manifest', async () => {
    const { manager, dirs: paths } = fixture({
      hot: (s) =>
        interceptPuts(s, async (key) => {
          if (key.endsWith('step-000000000020/manifest.json')) throw new Error('simulated crash before the manifest');
        }),
    });
    await manager.save(10, stateAt(10), META);
    await assert.rejects(manager.save(20, stateAt(20), META), /simulated crash/);
    assert.ok(existsSync(join(paths.hot, PREFIX, 'step-000000000020/files/model.bin')), 'the files were written');
    assert.deepEqual(
      (await manager.list()).map((c) => c.step),
      [10],
    );
    assert.equal((await manager.restoreLatest()).step, 10);
    await assert.rejects(manager.restore(20), CheckpointNotFound);
    // Retention clears the leftovers once a newer checkpoint is committed.
    await manager.save(30, stateAt(30), META);
    const outcome = await manager.applyRetention([keepLastN(2)]);
    assert.deepEqual(outcome.orphansRemoved, [{ step: 20, tier: 'hot' }]);
    assert.equal(existsSync(join(paths.hot, PREFIX, 'step-000000000020/files/model.bin')), false);
  });

  it('commits to warm in the background and moves latest only after the warm manifest', async () => {
    const slow = gate();
    const { manager, tiered } = fixture({
      warm: (s) =>
        interceptPuts(s, async (key) => {
          if (key.includes('step-000000000020/')) await slow.wait;
        }),
    });
    await manager.save(10, stateAt(10), META);
    await manager.commitToWarm(10);
    assert.equal((await manager.readLatest())?.step, 10);

    await manager.save(20, stateAt(20), META);
    const committing = manager.commitToWarm(20);
    // Training goes on while the commit waits on the network: the next save completes.
    await manager.save(30, stateAt(30), META);
    assert.equal((await manager.readLatest())?.step, 10, 'not moved before the warm commit');
    assert.equal(await tiered.exists(`warm://${PREFIX}/step-000000000020/manifest.json`), false);
    slow.open();
    const committed = await committing;
    assert.equal(committed.tier, 'warm');
    const latest = await manager.readLatest();
    assert.equal(latest?.step, 20);
    assert.deepEqual(latest?.manifest, committed.manifest);
    assert.deepEqual(
      (await manager.list()).map((c) => [c.step, c.tiers]),
      [
        [10, ['hot', 'warm']],
        [20, ['hot', 'warm']],
        [30, ['hot']],
      ],
    );
  });

  it('does not move latest when the warm commit fails', async () => {
    const { manager } = fixture({
      warm: (s) =>
        interceptPuts(s, async (key) => {
          if (key.endsWith('step-000000000020/manifest.json')) throw new Error('warm store went away');
        }),
    });
    await manager.save(10, stateAt(10), META);
    await manager.commitToWarm(10);
    await manager.save(20, stateAt(20), META);
    await assert.rejects(manager.commitToWarm(20), /warm store went away/);
    await manager.drain();
    assert.equal((await manager.readLatest())?.step, 10);
  });

  it('skips a corrupt newest checkpoint with a warning and restores the one before', async () => {
    const { manager, tiered, warnings } = fixture();
    const good = stateAt(10);
    await manager.save(10, good, META);
    await manager.save(20, stateAt(20), META);
    const corruptUri = `hot://${PREFIX}/step-000000000020/files/optimizer/adam-m.bin`;
    await tiered.put(corruptUri, randomBytes(4096 + 20));
    const restored = await manager.restoreLatest();
    assert.equal(restored.step, 10);
    assert.ok(restored.files['model.bin'].equals(good['model.bin']));
    assert.equal(restored.skipped.length, 1);
    assert.equal(warnings.length, 1);
    const error = warnings[0].error;
    assert.ok(error instanceof CorruptCheckpoint);
    assert.equal(error.uri, corruptUri);
    assert.equal(error.file, 'optimizer/adam-m.bin');
    assert.match(error.message, /expected sha256 [0-9a-f]{64} \(4103 bytes\), got sha256 [0-9a-f]{64} \(4116 bytes\)/);
    await assert.rejects(manager.restore(20), CorruptCheckpoint);
  });

  it('treats a missing file as corruption and falls back to the warm copy of the same step', async () => {
    const { manager, tiered, warnings } = fixture();
    const files = stateAt(10);
    await manager.save(10, files, META);
    await manager.commitToWarm(10);
    await tiered.delete(`hot://${PREFIX}/step-000000000010/files/rng.json`);
    const restored = await manager.restoreLatest();
    assert.equal(restored.step, 10);
    assert.equal(restored.tier, 'warm');
    assert.ok(restored.files['rng.json'].equals(files['rng.json']));
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].message, /rng\.json.*the file is missing/);
  });

  it('restores from warm when the hot tier is wiped (a new machine)', async () => {
    const { manager, dirs: paths } = fixture();
    const files = stateAt(40);
    await manager.save(30, stateAt(30), META);
    await manager.save(40, files, { ...META, epoch: 2 });
    await manager.commitToWarm(30);
    await manager.commitToWarm(40);
    rmSync(paths.hot, { recursive: true, force: true });
    const restored = await manager.restoreLatest();
    assert.equal(restored.step, 40);
    assert.equal(restored.tier, 'warm');
    assert.equal(restored.meta.epoch, 2);
    for (const [name, bytes] of Object.entries(files)) assert.ok(restored.files[name].equals(bytes), name);
    assert.equal((await manager.restore(30)).tier, 'warm');
  });

  it('refuses to copy a hot checkpoint that no longer verifies to warm', async () => {
    const { manager, tiered } = fixture();
    await manager.save(10, stateAt(10), META);
    await tiered.put(`hot://${PREFIX}/step-000000000010/files/model.bin`, 'garbage');
    await assert.rejects(manager.commitToWarm(10), CorruptCheckpoint);
    assert.equal(await manager.readLatest(), undefined);
    assert.equal(await tiered.exists(`warm://${PREFIX}/step-000000000010/manifest.json`), false);
  });

  it('restores by step and reports a missing step as CheckpointNotFound', async () => {
    const { manager } = fixture();
    await assert.rejects(manager.restoreLatest(), CheckpointNotFound);
    const files = stateAt(5);
    await manager.save(5, files, META);
    await manager.save(6, stateAt(6), META);
    const restored = await manager.restore(5);
    assert.ok(restored.files['cursor.json'].equals(files['cursor.json']));
    await assert.rejects(manager.restore(7), (err: unknown) => err instanceof CheckpointNotFound && err.step === 7);
  });

  it('refuses a checkpoint of another spec or file set, naming the difference', async () => {
    const { manager } = fixture();
    await manager.save(10, stateAt(10), META);
    await assert.rejects(
      manager.restoreLatest({ expect: { specDigest: 'spec-xyz' } }),
      (err: unknown) =>
        err instanceof IncompatibleCheckpoint && /specDigest is spec-abc, this run's is spec-xyz/.test(err.message),
    );
    await assert.rejects(
      manager.restore(10, { expect: { files: ['model.bin', 'rng.json', 'cursor.json', 'optimizer/adam-v.bin'] } }),
      (err: unknown) =>
        err instanceof IncompatibleCheckpoint &&
        err.differences.includes('missing files optimizer/adam-v.bin') &&
        err.differences.includes('unexpected files optimizer/adam-m.bin'),
    );
    const ok = await manager.restoreLatest({ expect: { specDigest: 'spec-abc', files: Object.keys(stateAt(0)) } });
    assert.equal(ok.step, 10);
  });

  it('re-saving a step replaces it whole', async () => {
    const { manager } = fixture();
    await manager.save(10, { 'a.bin': Buffer.from('old'), 'stale.bin': Buffer.from('x') }, META);
    await manager.save(10, { 'a.bin': Buffer.from('new') }, META);
    const restored = await manager.restore(10);
    assert.deepEqual(Object.keys(restored.files), ['a.bin']);
    assert.equal(restored.files['a.bin'].toString(), 'new');
  });
});

describe('checkpoint retention across tiers', () => {
  const filesUnder = (dir: string): string[] =>
    existsSync(dir)
      ? readdirSync(dir, { recursive: true, withFileTypes: true })
          .filter((d) => d.isFile())
          .map((d) => d.name)
      : [];

  it('keeps the last N and best N, moves milestones to cold and deletes the rest everywhere', async () => {
    const { manager, dirs: paths } = fixture();
    const valLoss: Record<number, number> = {
      100: 3,
      200: 1.5,
      300: 2.5,
      400: 2.8,
      500: 2.9,
      600: 2.7,
      700: 2.6,
      800: 2.4,
    };
    for (const step of [100, 200, 300, 400, 500, 600, 700, 800]) {
      await manager.save(step, stateAt(step), { ...META, metrics: { valLoss: valLoss[step] } });
      await manager.commitToWarm(step);
    }
    const outcome = await manager.applyRetention([keepLastN(2), keepEveryNSteps(500), keepBestN(1, 'valLoss', 'min')]);
    assert.deepEqual(outcome.plan, { keep: [200, 700, 800], milestonesToCold: [500], delete: [100, 300, 400, 600] });
    assert.deepEqual(outcome.copiedToCold, [500]);
    assert.deepEqual(
      (await manager.list()).map((c) => [c.step, c.tiers]),
      [
        [200, ['hot', 'warm']],
        [500, ['cold']],
        [700, ['hot', 'warm']],
        [800, ['hot', 'warm']],
      ],
    );
    for (const step of [100, 300, 400, 600]) {
      for (const tier of ['hot', 'warm', 'cold'] as const) {
        const dir = join(paths[tier], PREFIX, `step-${String(step).padStart(12, '0')}`);
        assert.deepEqual(filesUnder(dir), [], `${tier} step ${step} fully deleted`);
      }
    }
    const milestone = await manager.restore(500);
    assert.equal(milestone.tier, 'cold');
    assert.ok(milestone.files['rng.json'].equals(Buffer.from(JSON.stringify({ seed: 42, step: 500 }))));
    // Idempotent: a second pass changes nothing.
    const again = await manager.applyRetention([keepLastN(2), keepEveryNSteps(500), keepBestN(1, 'valLoss', 'min')]);
    assert.deepEqual(again.copiedToCold, []);
    assert.deepEqual(again.removed, []);
  });

  it('never deletes the checkpoint latest names, even when no policy keeps it', async () => {
    const { manager } = fixture({});
    await manager.save(100, stateAt(100), META);
    await manager.commitToWarm(100);
    for (const step of [200, 300, 400]) await manager.save(step, stateAt(step), META);
    const outcome = await manager.applyRetention([keepLastN(2)]);
    assert.deepEqual(outcome.plan.delete, [200]);
    assert.deepEqual(
      (await manager.list()).map((c) => c.step),
      [100, 300, 400],
    );
    assert.equal((await manager.readLatest())?.step, 100);
  });

  it('keeps a milestone that is also among the last N in hot and warm as well as cold', async () => {
    const { manager, tiered } = fixture({});
    for (const step of [100, 200]) {
      await manager.save(step, stateAt(step), META);
      await manager.commitToWarm(step);
    }
    const manager2 = new CheckpointManager({
      store: tiered,
      runPrefix: PREFIX,
      policy: [keepLastN(2), keepEveryNSteps(200)],
    });
    await manager2.applyRetention();
    assert.deepEqual(
      (await manager2.list()).map((c) => [c.step, c.tiers]),
      [
        [100, ['hot', 'warm']],
        [200, ['hot', 'warm', 'cold']],
      ],
    );
  });

  it('defers deleting a step whose warm commit is still in flight', async () => {
    const slow = gate();
    const { manager } = fixture({
      warm: (s) =>
        interceptPuts(s, async (key) => {
          if (key.includes('step-000000000100/')) await slow.wait;
        }),
    });
    for (const step of [100, 200, 300]) await manager.save(step, stateAt(step), META);
    const committing = manager.commitToWarm(100);
    const outcome = await manager.applyRetention([keepLastN(2)]);
    assert.deepEqual(outcome.deferred, [{ step: 100, reason: 'a warm commit is in flight' }]);
    slow.open();
    await committing;
    assert.equal((await manager.readLatest())?.step, 100);
  });
});
