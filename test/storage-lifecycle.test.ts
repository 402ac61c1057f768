import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import type { LifecyclePolicy, StorageLifecycleResult } from '../lib/contracts/storage-lifecycle';
import type { TrainingInput } from '../lib/contracts/training';
import { composeDataset } from '../lib/flywheel/compose';
import {
  applyAction,
  buildReferences,
  ColdTierIsWarm,
  coldIsWarm,
  listInventory,
  LifecyclePolicyRefused,
  moveDatasetToCold,
  planLifecycle,
  type ReferenceGraph,
  type StoredObject,
} from '../lib/lifecycle';
import { ModelRegistry } from '../lib/registry';
import { DatasetMetaSchema } from '../lib/pipeline/commit-dataset';
import {
  commitManifest,
  createS3Client,
  FsStore,
  readManifest,
  S3Store,
  TieredStore,
  tieredStoreFromConfig,
  verifyManifest,
} from '../lib/storage';
import { readSplitTokens } from '../lib/train/shard-tokens';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { runCli } from './support/cli';
import { feedbackIdsInStorage, supportFeedbackEvent } from './support/feedback-storage';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';
import { temporalAddress, testConfig } from './support/temporal';

const DAY = 86_400_000;
const NOW = new Date('2026-12-01T00:00:00Z');
const at = (daysAgo: number) => new Date(NOW.getTime() - daysAgo * DAY);
const object = (uri: string, daysAgo: number, bytes = 10): StoredObject => {
  const [tier, key] = uri.split('://') as ['warm', string];
  return { uri, tier, key, bytes, modified: at(daysAgo) };
};

describe('the lifecycle plan (pure)', () => {
  const digest = 'd1';
  const datasetManifest = 'warm://datasets/web/v1/manifest.json';
  const inventory = [
    object(datasetManifest, 20),
    object('warm://datasets/web/v1/shards-d1/train/shard-000000.tar', 20, 1000),
    object(`warm://pipelines/web/v1/${digest}/filter/manifest.json`, 20),
    object(`warm://pipelines/web/v1/${digest}/filter/part-0.jsonl.gz`, 20, 500),
    object(`warm://pipelines/web/v1/${digest}/filter/rejected.json`, 20),
    object(`warm://pipelines/web/v1/${digest}/filter/rejected-0.jsonl.gz`, 20, 70),
    object('warm://pipelines/web/v2/d2/filter/part-0.jsonl.gz', 20, 500),
    object('hot://runs/r/checkpoints/step-000000000010/files/model.bin', 30, 4000),
  ];
  const graph = (users: string[] = []): ReferenceGraph => ({
    needed: new Map([
      [datasetManifest, 'a committed dataset'],
      ['warm://datasets/web/v1/shards-d1/train/shard-000000.tar', datasetManifest],
      [`warm://pipelines/web/v1/${digest}/filter/rejected.json`, datasetManifest],
      [
        `warm://pipelines/web/v1/${digest}/filter/rejected-0.jsonl.gz`,
        `warm://pipelines/web/v1/${digest}/filter/rejected.json`,
      ],
    ]),
    datasets: [
      {
        manifestUri: datasetManifest,
        dataset: 'web',
        version: 'v1',
        specDigest: digest,
        folder: 'warm://datasets/web/v1/',
        modified: at(20),
        manifest: {
          version: 1,
          kind: 'dataset',
          name: 'web/v1',
          createdAt: at(20).toISOString(),
          objects: [
            { uri: 'warm://datasets/web/v1/shards-d1/train/shard-000000.tar', sha256: 'a'.repeat(64), bytes: 1000 },
          ],
          meta: {},
        },
      },
    ],
    datasetUsers: new Map(users.length ? [[datasetManifest, users]] : []),
    manifests: new Map(),
  });

  it("deletes a committed dataset's intermediates past their age but what its manifest lists, and no running pipeline's", () => {
    const plan = planLifecycle({ intermediates: { deleteAfterDays: 7 }, expire: [] }, inventory, graph(), NOW);
    assert.deepEqual(
      plan.actions.map((a) => [a.action, a.target, a.uris.sort(), a.kept]),
      [
        [
          'delete',
          `warm://pipelines/web/v1/${digest}/`,
          [
            `warm://pipelines/web/v1/${digest}/filter/manifest.json`,
            `warm://pipelines/web/v1/${digest}/filter/part-0.jsonl.gz`,
          ],
          2,
        ],
      ],
    );
    assert.equal(plan.deleteBytes, 510);
    const young = planLifecycle({ intermediates: { deleteAfterDays: 30 }, expire: [] }, inventory, graph(), NOW);
    assert.deepEqual(young.actions, []);
  });

  it('moves an unreferenced old dataset version to cold and keeps one a model needs, saying who needs it', () => {
    const policy: LifecyclePolicy = { datasets: { coldAfterDays: 14 }, expire: [] };
    const moved = planLifecycle(policy, inventory, graph(), NOW);
    assert.deepEqual(
      moved.actions.map((a) => [a.action, a.target, a.objects, a.bytes]),
      [['cold', datasetManifest, 1, 1000]],
    );
    const kept = planLifecycle(policy, inventory, graph(['model web v1 (champion)']), NOW);
    assert.deepEqual(kept.actions, []);
    assert.deepEqual(kept.retained, [{ target: datasetManifest, reason: 'needed by model web v1 (champion)' }]);
  });

  it('refuses an expire rule that would delete what a manifest lists, naming both', () => {
    assert.throws(
      () => planLifecycle({ expire: [{ prefix: 'warm://pipelines/', afterDays: 1 }] }, inventory, graph(), NOW),
      (err: unknown) =>
        err instanceof LifecyclePolicyRefused &&
        err.message.includes(
          `would delete warm://pipelines/web/v1/${digest}/filter/rejected.json, needed by ${datasetManifest}`,
        ),
    );
    const hot = planLifecycle({ expire: [{ prefix: 'hot://runs/', afterDays: 14 }] }, inventory, graph(), NOW);
    assert.deepEqual(
      hot.actions.map((a) => [a.rule, a.objects, a.bytes]),
      [['expire', 1, 4000]],
    );
  });
});

describe('moving a dataset version to cold on local folder tiers', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'flywheel-lifecycle-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  let n = 0;
  const manifestUri = 'warm://datasets/web/v1/manifest.json';
  const shards = ['train/shard-000000.tar', 'validation/shard-000000.tar'].map(
    (name) => `warm://datasets/web/v1/shards-d1/${name}`,
  );

  /** A committed dataset version: two shards and a manifest whose meta names them, as commitDataset writes it. */
  async function fixture(opts: { coldIsWarm?: boolean } = {}): Promise<TieredStore> {
    const dir = path.join(root, `case-${++n}`);
    const warm = new FsStore(path.join(dir, 'warm'));
    const store = new TieredStore({
      hot: new FsStore(path.join(dir, 'hot')),
      warm,
      cold: opts.coldIsWarm ? warm : new FsStore(path.join(dir, 'cold')),
    });
    const objects = [];
    for (const [i, uri] of shards.entries()) objects.push(await store.put(uri, `shard ${i} `.repeat(50)));
    const split = (uri: string) => ({ documents: 1, tokens: 5, shards: [{ uri, samples: 1, tokens: 5 }] });
    await commitManifest(store, manifestUri, {
      kind: 'dataset',
      name: 'web/v1',
      objects: objects.map(({ uri, sha256, bytes }) => ({ uri, sha256, bytes })),
      meta: {
        dataset: 'web',
        version: 'v1',
        specDigest: 'd1',
        spec: {},
        tokenizer: { encoding: 'gpt2', dtype: 'uint16', eot: 50256, vocabSize: 50257 },
        documents: 2,
        tokens: 10,
        textBytes: 100,
        splits: { train: split(shards[0]), validation: split(shards[1]) },
        stages: {},
        rejected: [],
      },
    });
    return store;
  }
  const plan = async (store: TieredStore) => {
    const inventory = await listInventory(store);
    return planLifecycle(
      { datasets: { coldAfterDays: 0 }, expire: [] },
      inventory,
      await buildReferences(store, inventory),
      new Date(),
      {
        coldIsWarm: coldIsWarm(store),
      },
    );
  };

  it('copies the shards, rewrites the manifest in place (meta too), then deletes the warm copies; a retry finishes it', async () => {
    const store = await fixture();
    const [action] = (await plan(store)).actions;
    assert.deepEqual([action.action, action.target, action.objects], ['cold', manifestUri, 2]);
    await applyAction(store, action);
    const moved = await readManifest(store, manifestUri, DatasetMetaSchema);
    const cold = shards.map((u) => u.replace('warm://', 'cold://'));
    assert.deepEqual(
      moved.objects.map((o) => o.uri),
      cold,
    );
    assert.deepEqual([moved.meta.splits.train.shards[0].uri, moved.meta.splits.validation.shards[0].uri], cold);
    assert.deepEqual(await verifyManifest(store, moved), { objects: 2, bytes: moved.objects[0].bytes * 2 });
    for (const uri of shards) assert.equal(await store.exists(uri), false);

    // A move that stopped after the manifest was rewritten left warm copies: the next run deletes them.
    for (const uri of shards) await store.copy(uri.replace('warm://', 'cold://'), uri);
    const [finish] = (await plan(store)).actions;
    assert.deepEqual([finish.action, finish.objects], ['cold', 2]);
    await applyAction(store, finish);
    for (const uri of shards) assert.equal(await store.exists(uri), false);
    assert.deepEqual((await readManifest(store, manifestUri)).objects, moved.objects);
    assert.deepEqual((await plan(store)).actions, []);
  });

  it('moves nothing when cold is the warm tier: the move would delete the only copy', async () => {
    const store = await fixture({ coldIsWarm: true });
    const planned = await plan(store);
    assert.deepEqual(planned.actions, []);
    assert.match(planned.retained[0].reason, /cold tier is the warm tier/);
    await assert.rejects(moveDatasetToCold(store, manifestUri), ColdTierIsWarm);
    for (const uri of shards) assert.ok(await store.exists(uri));
  });
});

describe('the storageLifecycle workflow on S3 tiers', () => {
  let s3: TestS3Server;
  let connection: Connection;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let env: Record<string, string>;
  let flywheel: FlywheelClient;
  let store: TieredStore;
  const manifests: Record<'old' | 'base' | 'extra' | 'composed', string> = {
    old: '',
    base: '',
    extra: '',
    composed: '',
  };
  let oldTokens: Uint32Array;
  let feedbackBefore: Map<string, number>;

  const trainer: TrainingInput['trainer'] = {
    seed: 7,
    model: { contextTokens: 3, embeddingDim: 16, hiddenDim: 32, maxVocab: 512 },
    sequenceTokens: 32,
    batch: { microBatchSizePerGpu: 4, gradientAccumulationSteps: 1 },
  };
  // Every activity attempt writes its usage record (warm://usage/), the lifecycle's own dry run included: what a run
  // changes is everything else.
  const snapshot = async () =>
    (await listInventory(store))
      .filter((o) => !o.uri.startsWith('warm://usage/'))
      .map((o) => `${o.uri} ${o.bytes} ${o.modified.toISOString()}`)
      .sort();

  before(async () => {
    s3 = await startS3Server();
    const bucket = `flywheel-lifecycle-${Date.now().toString(36)}`;
    const client = createS3Client(s3ClientOptions(s3));
    await new S3Store({ bucket, prefix: 'warm', client }).ensureBucket();
    client.destroy();
    env = {
      FLYWHEEL_WARM: `s3://${bucket}/warm`,
      FLYWHEEL_COLD: `s3://${bucket}/cold`,
      FLYWHEEL_S3_ENDPOINT: s3.endpoint,
      FLYWHEEL_S3_CHECKSUMS: s3.checksums,
      AWS_ACCESS_KEY_ID: s3.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      FLYWHEEL_REACH_UNRESTRICTED: '1',
    };
    const address = await temporalAddress();
    config = testConfig(address, env);
    env = {
      ...env,
      TEMPORAL_ADDRESS: address,
      FLYWHEEL_HOME: config.home,
      FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
      FLYWHEEL_METRICS_PORT: '0',
    };
    store = tieredStoreFromConfig(config);
    workers = await createWorkers(config);
    running = workers.run();
    connection = await Connection.connect({ address });
    flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: config.worker.taskQueuePrefix });

    const build = (version: string, limit: number, dataset = 'lc-data') =>
      flywheel.runPipeline({
        dataset,
        version,
        sources: [{ type: 'sample', limit }],
        dedup: { exact: true, near: {} },
        shards: { targetBytes: 1 << 20, validationFraction: 0.1 },
      });
    manifests.old = (await build('v1', 12)).manifest.uri;
    manifests.base = (await build('v2', 20)).manifest.uri;
    manifests.extra = (await build('v1', 8, 'lc-extra')).manifest.uri;
    // A flywheel round's dataset: the base's shards plus new ones, one manifest referencing both.
    manifests.composed = await composeDataset(store, {
      base: manifests.base,
      addition: manifests.extra,
      version: 'v3',
    });
    oldTokens = await readSplitTokens(store, manifests.old, 'train');

    const trained = await flywheel.runTraining({
      run: 'lc-first',
      model: 'lc',
      dataset: manifests.base,
      trainer,
      steps: 10,
      segmentSteps: 10,
      checkpointEvery: 5,
    });
    assert.deepEqual(trained.model, { name: 'lc', version: 'v1' });
    await new ModelRegistry(store).promote('lc', 'v1', 'the first model');

    const receipt = await flywheel.submitFeedback(
      Array.from({ length: 20 }, (_, n) => supportFeedbackEvent('lc', n, { ts: '2093-03-03T10:00:00Z' })),
      { ledger: { flushIntervalMs: 200 } },
    );
    await flywheel.waitFeedbackFlushed(receipt.ledgers);
    feedbackBefore = (await feedbackIdsInStorage(store)).counts;
    assert.equal(feedbackBefore.size, 20);
  });

  after(async () => {
    await workers?.shutdown();
    await running;
    await connection?.close();
    await s3?.stop();
  });

  it('dry run from the CLI prints the plan with its bytes and changes nothing', { timeout: 120_000 }, async (t) => {
    const before = await snapshot();
    const out = await runCli(['storage', 'gc', '--intermediates-days', '0', '--cold-days', '0'], env);
    assert.equal(out.status, 0, out.stderr);
    t.diagnostic(out.stdout);
    assert.match(out.stdout, /plan \(dry run; --apply carries it out\)/);
    assert.match(out.stdout, /delete +warm:\/\/pipelines\/lc-data\/v1\/[0-9a-f]+\/ +\d+ objects, [\d.]+ [kM]?B/);
    assert.match(out.stdout, new RegExp(`to cold +${manifests.old} +\\d+ objects`));
    assert.match(out.stdout, new RegExp(`keep +${manifests.base}\\n.*model lc v1 \\(champion\\)`));
    assert.match(out.stdout, new RegExp(`keep +${manifests.extra}\\n.*the newer dataset ${manifests.composed}`));
    assert.match(
      out.stdout,
      /would delete \d+ objects \([\d.]+ [kM]?B\); would move \d+ objects \([\d.]+ [kM]?B\) to cold/,
    );
    assert.deepEqual(await snapshot(), before, 'a dry run changes nothing');
  });

  it('refuses a policy that would delete what a manifest references, naming both, and changes nothing', async () => {
    const before = await snapshot();
    const handle = await flywheel.startStorageLifecycle({
      policy: { intermediates: { deleteAfterDays: 0 }, expire: [{ prefix: 'warm://datasets/', afterDays: 0 }] },
      apply: true,
    });
    await assert.rejects(handle.result(), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      let cause: { message?: string; cause?: unknown; type?: string } = err;
      while (cause.cause && !cause.type) cause = cause.cause as typeof cause;
      assert.equal(cause.type, 'LifecyclePolicyRefused');
      assert.match(
        cause.message!,
        new RegExp(`would delete warm://datasets/lc-data/v2/shards-[0-9a-f]+/\\S+, needed by ${manifests.base}`),
      );
      return true;
    });
    const cli = await runCli(['storage', 'gc', '--expire', 'warm://models/=0', '--apply'], env);
    assert.equal(cli.status, 2, cli.stderr);
    assert.match(cli.stderr, /would delete warm:\/\/models\/lc\/\S+, needed by /);
    assert.deepEqual(await snapshot(), before);
  });

  it('runs as a Temporal Schedule created from a spec file', async () => {
    const out = await runCli(
      [
        'storage',
        'schedule',
        'create',
        '--spec',
        path.join(__dirname, '..', 'examples', 'storage-lifecycle.json'),
        '--json',
      ],
      env,
    );
    assert.equal(out.status, 0, out.stderr);
    const { scheduleId } = JSON.parse(out.stdout) as { scheduleId: string };
    const handle = flywheel.client.schedule.getHandle(scheduleId);
    try {
      const d = await handle.describe();
      assert.equal(d.action.type, 'startWorkflow');
      assert.equal(d.action.workflowType, 'storageLifecycle');
      assert.equal(d.spec.timezone, 'UTC');
      assert.deepEqual((d.action.args as { apply: boolean }[])[0].apply, false, 'a dry run unless --apply');
      assert.ok(d.info.nextActionTimes.length > 0);
    } finally {
      await handle.delete();
    }
  });

  it(
    'applied through the workflow: intermediates gone, the unreferenced dataset in cold and readable, every model verifies and trains',
    { timeout: 300_000 },
    async () => {
      const result: StorageLifecycleResult = await (
        await flywheel.startStorageLifecycle({
          policy: { intermediates: { deleteAfterDays: 0 }, datasets: { coldAfterDays: 0 } },
          apply: true,
        })
      ).result();
      assert.equal(result.applied, true);
      assert.ok(result.plan.deleteObjects > 0 && result.plan.coldObjects > 0, JSON.stringify(result.plan));
      const inventory = await listInventory(store);
      const graph = await buildReferences(store, inventory);

      // Every intermediate left is one a committed manifest still needs (rejected records, signature indexes).
      const pipelines = inventory.filter((o) => o.uri.startsWith('warm://pipelines/'));
      assert.ok(pipelines.length < result.plan.deleteObjects, `${pipelines.length} left`);
      for (const o of pipelines) assert.ok(graph.needed.has(o.uri), `${o.uri} was left but nothing needs it`);

      // The old dataset: its shards in cold, its manifest where readers look, the same tokens.
      const old = await readManifest(store, manifests.old);
      assert.ok(old.objects.length > 0 && old.objects.every((o) => o.uri.startsWith('cold://datasets/lc-data/v1/')));
      assert.deepEqual(
        inventory.filter((o) => o.uri.startsWith('warm://datasets/lc-data/v1/')).map((o) => o.uri),
        [manifests.old],
      );
      assert.deepEqual(await readSplitTokens(store, manifests.old, 'train'), oldTokens);

      // What a model or a newer dataset needs stayed in warm.
      for (const uri of [manifests.base, manifests.extra])
        assert.ok(
          (await readManifest(store, uri)).objects.every((o) => o.uri.startsWith('warm://')),
          uri,
        );

      // Every registered model verifies (each file's sha256), feedback and the run's latest checkpoint are there.
      const registry = new ModelRegistry(store);
      for (const v of await registry.list()) await registry.loadFiles(v);
      assert.deepEqual((await feedbackIdsInStorage(store)).counts, feedbackBefore);
      assert.ok(await store.exists('warm://runs/lc-first/checkpoints/latest.json'));

      // Training still works on the model's dataset and on the moved one.
      for (const [run, dataset] of [
        ['lc-again', manifests.base],
        ['lc-from-cold', manifests.old],
      ] as const) {
        const trained = await flywheel.runTraining({
          run,
          dataset,
          trainer,
          steps: 5,
          segmentSteps: 5,
          checkpointEvery: 5,
          register: false,
        });
        assert.equal(trained.step, 5);
        assert.ok(Number.isFinite(trained.loss));
      }

      // Run again, nothing is left to do; usage shows the dataset bytes now in cold.
      const again = await flywheel.startStorageLifecycle({
        policy: { intermediates: { deleteAfterDays: 0 }, datasets: { coldAfterDays: 0 } },
        apply: true,
      });
      assert.deepEqual((await again.result()).plan.actions, []);
      const usage = await runCli(['storage', 'usage', '--json'], env);
      assert.equal(usage.status, 0, usage.stderr);
      const parsed = JSON.parse(usage.stdout) as { tiers: { cold: { kinds: { datasets: { bytes: number } } } } };
      assert.equal(
        parsed.tiers.cold.kinds.datasets.bytes,
        old.objects.reduce((n, o) => n + o.bytes, 0),
      );
    },
  );
});
