import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect';
import { DedupPool } from '../lib/dedup/dedup-pool';
import { decodeSignatureIndex, dedupJsonl } from '../lib/dedup';
import { decodeJsonlGz } from '../lib/document';
import {
  clusterNearDuplicates,
  commitNearDedup,
  filterNearDuplicates,
  joinNearDedupBands,
  nearDedupFolder,
  planNearDedup,
  signNearDedupUnit,
  type NearDedupFacts,
  type NearDedupOutput,
} from '../lib/pipeline/near-dedup';
import { runFolder } from '../lib/pipeline/stage-output';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import { NearDedupSpec, PipelineSpec, type PipelineInput } from '../lib/contracts/pipeline';
import type { DatasetSummary } from '../lib/contracts/pipeline-results';
import { readManifest, tieredStoreFromConfig, TieredStore, type ArtifactRef } from '../lib/storage';
import { sha256Hex } from '../lib/storage/hashing';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { temporalAddress, testConfig } from './support/temporal';

/** Real prose: chapters of the bundled corpus (over 400 words each). */
const chapters = sampleCorpus('moby-dick')
  .documents.slice(60, 76)
  .map((d) => d.text);

/** A near duplicate: every `every`-th word replaced by `word` (1 in 100 words: Jaccard of 5-grams about 0.9). */
const edited = (text: string, every: number, word = 'harpoon') =>
  text
    .split(' ')
    .map((w, i) => (i % every === every - 1 ? word : w))
    .join(' ');

const jsonl = (records: object[]) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** Two files: ten originals, then near copies (two of one chapter), an exact copy and two more originals. */
function makeInputs(dir: string) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'a.jsonl'),
    jsonl(chapters.slice(0, 10).map((text, i) => ({ id: `orig-${i}`, text }))),
  );
  fs.writeFileSync(
    path.join(dir, 'b.jsonl'),
    jsonl([
      { id: 'near-1', text: edited(chapters[1], 100) },
      { id: 'orig-10', text: chapters[10] },
      { id: 'near-3a', text: edited(chapters[3], 100) },
      { id: 'exact-5', text: chapters[5].toUpperCase() },
      { id: 'near-3b', text: edited(chapters[3], 120, 'whale') },
      { id: 'orig-11', text: chapters[11] },
    ]),
  );
}

/** Tomorrow's data against today's dataset: repeats of it (near, exact, of a removed copy), new text and its copy. */
function makeFeedback(dir: string) {
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(
    path.join(dir, 'feedback.jsonl'),
    jsonl([
      { id: 'fb-new-12', text: chapters[12] },
      { id: 'fb-near-2', text: edited(chapters[2], 100) },
      { id: 'fb-same-4', text: chapters[4] },
      { id: 'fb-near-1', text: edited(chapters[1], 110, 'ship') },
      { id: 'fb-near-12', text: edited(chapters[12], 100) },
      { id: 'fb-new-13', text: chapters[13] },
    ]),
  );
}

const NO_QUALITY_FILTERS = {
  language: false,
  gopherRepetition: false,
  gopherQuality: false,
  c4: false,
  fineweb: false,
} as const;

async function rejectedRecords(store: TieredStore, refs: readonly ArtifactRef[]) {
  const out: Record<string, unknown>[] = [];
  for (const ref of refs)
    for (const part of (await readManifest(store, ref)).objects)
      for await (const rec of decodeJsonlGz<Record<string, unknown>>(await store.get(part.uri))) out.push(rec);
  return out;
}

async function stageDocumentIds(store: TieredStore, stage: ArtifactRef | string): Promise<string[]> {
  const ids: string[] = [];
  for (const part of (await readManifest(store, stage)).objects)
    for await (const doc of decodeJsonlGz<{ id: string }>(await store.get(part.uri))) ids.push(doc.id);
  return ids;
}

async function manifestRef(store: TieredStore, uri: string): Promise<ArtifactRef> {
  const bytes = await store.getBytes(uri);
  return { uri, sha256: sha256Hex(bytes), bytes: bytes.length };
}

/** A store that counts writes: a step that reuses committed output writes nothing. */
class CountingStore extends TieredStore {
  puts: string[] = [];
  override async put(...args: Parameters<TieredStore['put']>) {
    this.puts.push(args[0]);
    return super.put(...args);
  }
}

describe('near-duplicate dedup in the dataPipeline workflow', () => {
  let connection: Connection;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let flywheel: FlywheelClient;
  let store: TieredStore;
  let first: DatasetSummary;
  const inputs = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-near-inputs-'));

  before(async () => {
    makeInputs(path.join(inputs, 'day1'));
    makeFeedback(path.join(inputs, 'day2'));
    const address = await temporalAddress();
    config = testConfig(address);
    store = tieredStoreFromConfig(config);
    workers = await createWorkers(config);
    running = workers.run();
    connection = await Connection.connect({ address });
    flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: config.worker.taskQueuePrefix });
  });

  after(async () => {
    await workers.shutdown();
    await running;
    await connection.close();
    await DedupPool.closeShared();
    fs.rmSync(inputs, { recursive: true, force: true });
  });

  const spec = (): PipelineInput => ({
    dataset: 'near',
    sources: [{ type: 'path', path: path.join(inputs, 'day1'), glob: '*.jsonl' }],
    quality: NO_QUALITY_FILTERS,
    dedup: { near: {} },
    shards: { targetBytes: 256 * 1024, validationFraction: 0.2 },
    // Small partitions: near copies and their originals land in different partitions and activities.
    partitions: { maxDocuments: 3, maxBytes: 1024 * 1024 },
    unitsPerBatch: 1,
  });

  const stageMeta = async (summary: DatasetSummary) => {
    const folder = nearDedupFolder(runFolder({ ...summary, digest: summary.specDigest }));
    const manifest = await readManifest(store, `${folder}/manifest.json`);
    return { folder, manifest, near: manifest.meta.near as NearDedupFacts };
  };

  it('drops near duplicates after exact dedup, naming the kept document and similarity, with stats and LSH facts', async () => {
    first = await flywheel.runPipeline(spec());
    assert.equal(first.stages.dedup?.dropped['dedup.exact'], 1, 'the upper-cased copy goes in exact dedup');
    const { keptBytes, ...counts } = first.stages.nearDedup ?? { keptBytes: 0 };
    assert.deepEqual(counts, { input: 15, kept: 12, dropped: { 'dedup.near': 3 } });
    assert.equal(keptBytes, first.textBytes);
    assert.equal(first.documents, 12, 'tokenize reads what near dedup kept');

    const rejected = (await rejectedRecords(store, first.rejected)).filter((r) => r.rule === 'dedup.near');
    assert.deepEqual(
      rejected.map((r) => [(r.doc as { id: string }).id, r.duplicateOf, r.stage]),
      [
        ['near-1', 'orig-1', 'dedup'],
        ['near-3a', 'orig-3', 'dedup'],
        ['near-3b', 'orig-3', 'dedup'],
      ],
    );
    for (const r of rejected) {
      assert.ok((r.similarity as number) >= 0.8 && (r.similarity as number) < 1, JSON.stringify(r.similarity));
      assert.match(r.detail as string, /near duplicate of orig-\d \(Jaccard 0\.\d+\)/);
    }

    const { folder, manifest, near } = await stageMeta(first);
    assert.equal(manifest.kind, 'pipeline-near-dedup');
    assert.deepEqual(
      { threshold: near.threshold, numPerm: near.numPerm, ngram: near.ngram, bands: near.bands, rows: near.rows },
      { threshold: 0.8, numPerm: 128, ngram: 5, bands: 16, rows: 8 },
    );
    assert.ok(near.sCurveMidpoint > 0.7 && near.sCurveMidpoint < 0.8);
    assert.equal(near.clusters, 2);
    assert.ok(near.verifiedPairs >= 3 && near.candidatePairs >= near.verifiedPairs);
    // Claim-checked steps: per-partition signatures and band runs, per-band edges, the clusters, the filter.
    const partitions = (
      await readManifest(store, `${runFolder({ ...first, digest: first.specDigest })}/dedup/manifest.json`)
    ).objects.length;
    assert.ok(partitions >= 5, `${partitions} partitions`);
    const sign0 = await readManifest(store, `${folder}/signatures/part-000000/manifest.json`);
    // sigs.bin, ids.txt, shingles.bin (exact verification), one run per band.
    assert.equal(sign0.objects.length, 3 + near.bands);
    await readManifest(store, `${folder}/edges/band-015.manifest.json`);
    assert.equal((await readManifest(store, `${folder}/clusters/manifest.json`)).objects.length, partitions);
    assert.deepEqual(await stageDocumentIds(store, `${folder}/manifest.json`), [
      ...Array.from({ length: 10 }, (_, i) => `orig-${i}`),
      'orig-10',
      'orig-11',
    ]);
    // The kept documents' signature index, for later runs to dedup against.
    const index = await readManifest(store, manifest.meta.index as ArtifactRef);
    assert.equal(index.meta.documents, 12);
    const ids = [];
    for (const file of index.objects) ids.push(...decodeSignatureIndex(await store.getBytes(file.uri)).ids);
    assert.equal(ids.length, 12);
    assert.equal(ids[0], '"orig-0"');
  });

  it('the dedup command removes what the pipeline removes, naming the same kept documents and similarities', async () => {
    assert.ok(first, 'the first test ran the pipeline');
    // The command reads one file: the two inputs in the order collection reads them.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-near-command-'));
    try {
      const input = path.join(dir, 'all.jsonl');
      fs.writeFileSync(
        input,
        ['a.jsonl', 'b.jsonl'].map((f) => fs.readFileSync(path.join(inputs, 'day1', f), 'utf8')).join(''),
      );
      await dedupJsonl(input, path.join(dir, 'out'), { workers: 0 });
      const command = fs
        .readFileSync(path.join(dir, 'out', 'duplicates.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { id: string; duplicate_of: string; similarity: number })
        .map((r) => [r.id, r.duplicate_of, r.similarity]);
      const rejected = await rejectedRecords(store, first.rejected);
      const stage = rejected
        .filter((r) => r.rule === 'dedup.near')
        .map((r) => [(r.doc as { id: string }).id, r.duplicateOf, r.similarity]);
      const exact = rejected.filter((r) => r.rule === 'dedup.exact').map((r) => (r.doc as { id: string }).id);
      assert.deepEqual(exact, ['exact-5']);
      assert.deepEqual(
        command.filter(([id]) => id !== 'exact-5'),
        stage,
      );
      assert.deepEqual(
        command.find(([id]) => id === 'exact-5'),
        ['exact-5', 'orig-5', 1],
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the steps are deterministic and idempotent: any band grouping and signing order, reruns write nothing', async () => {
    const { folder: pipelineFolder } = await stageMeta(first);
    const input = `${runFolder({ ...first, digest: first.specDigest })}/dedup/manifest.json`;
    const exact = await readManifest(store, input);
    const ref = await manifestRef(store, input);
    const near = NearDedupSpec.parse({});
    const counting = new CountingStore({ hot: store.tier('hot'), warm: store.tier('warm'), cold: store.tier('cold') });
    const pool = new DedupPool(0);
    const run = async (folder: string, maxBandActivities: number, reverse: boolean): Promise<NearDedupOutput> => {
      const base = { store: counting, folder, near };
      const plan = await planNearDedup({ ...base, input: ref, maxBandActivities });
      if (plan.committed) return plan.committed;
      const units = Array.from({ length: plan.partitions }, (_, u) => u);
      for (const unit of reverse ? [...units].reverse() : units)
        await signNearDedupUnit({ ...base, input: ref, plan, unit, pool });
      const counts = { indexPartitions: 0, partitions: plan.partitions };
      for (const bands of reverse ? [...plan.bandGroups].reverse() : plan.bandGroups)
        await joinNearDedupBands({ ...base, ...counts, bands });
      const clusters = await clusterNearDuplicates({ ...base, ...counts, bands: plan.bands });
      for (const index of units)
        await filterNearDuplicates({
          ...base,
          input: ref,
          clusters: clusters.clusters,
          indexPartitions: 0,
          index,
          limits: { maxDocuments: 3, maxBytes: 1 << 20 },
        });
      return commitNearDedup({ ...base, partitions: plan.partitions, clusters: clusters.clusters });
    };
    const folder = 'warm://scratch/near-dedup-steps';
    const out = await run(folder, 1, true);
    assert.equal(exact.objects.length, (await planNearDedup({ store, folder, near, input: ref })).partitions);
    for (const [p, file] of (await readManifest(store, `${folder}/clusters/manifest.json`)).objects.entries()) {
      const theirs = (await readManifest(store, `${pipelineFolder}/clusters/manifest.json`)).objects[p];
      assert.equal(file.sha256, theirs.sha256, `removals of partition ${p}`);
    }
    for (let band = 0; band < 14; band++) {
      const edges = (f: string) =>
        readManifest(store, `${f}/edges/band-${String(band).padStart(3, '0')}.manifest.json`);
      assert.equal((await edges(folder)).objects[0].sha256, (await edges(pipelineFolder)).objects[0].sha256);
    }
    assert.deepEqual(out.stats, first.stages.nearDedup);

    // Every step again, as after a crash before the workflow saw its results: all reused, nothing written.
    counting.puts = [];
    const plan = await planNearDedup({ store: counting, folder, near, input: ref });
    assert.ok(plan.committed);
    await signNearDedupUnit({ store: counting, folder, near, input: ref, plan, unit: 0, pool });
    await joinNearDedupBands({
      store: counting,
      folder,
      near,
      indexPartitions: 0,
      partitions: plan.partitions,
      bands: [0, 5],
    });
    const clusters = await clusterNearDuplicates({
      store: counting,
      folder,
      near,
      indexPartitions: 0,
      partitions: plan.partitions,
      bands: plan.bands,
    });
    await filterNearDuplicates({
      store: counting,
      folder,
      near,
      input: ref,
      clusters: clusters.clusters,
      indexPartitions: 0,
      index: 1,
      limits: { maxDocuments: 3, maxBytes: 1 << 20 },
    });
    assert.deepEqual(
      await commitNearDedup({
        store: counting,
        folder,
        near,
        partitions: plan.partitions,
        clusters: clusters.clusters,
      }),
      out,
    );
    assert.deepEqual(counting.puts, []);
  });

  it('dedups a new dataset against an earlier one (dedup.near.against) without touching the earlier one', async () => {
    const before = await store.getBytes(first.manifest.uri);
    const summary = await flywheel.runPipeline({
      dataset: 'near-feedback',
      sources: [{ type: 'path', path: path.join(inputs, 'day2', 'feedback.jsonl') }],
      quality: NO_QUALITY_FILTERS,
      dedup: { near: { against: first.manifest.uri } },
      shards: { targetBytes: 256 * 1024, validationFraction: 0.2 },
      partitions: { maxDocuments: 2, maxBytes: 1024 * 1024 },
    });
    const rejected = (await rejectedRecords(store, summary.rejected)).filter((r) => r.rule === 'dedup.near');
    assert.deepEqual(
      rejected.map((r) => [(r.doc as { id: string }).id, r.duplicateOf]),
      [
        ['fb-near-2', 'orig-2'],
        ['fb-same-4', 'orig-4'],
        // near-1 was dropped from the earlier dataset: its cluster kept orig-1.
        ['fb-near-1', 'orig-1'],
        ['fb-near-12', 'fb-new-12'],
      ],
    );
    assert.equal(rejected[1].similarity, 1);
    assert.deepEqual(summary.stages.nearDedup?.dropped, { 'dedup.near': 4 });
    assert.equal(summary.documents, 2);
    const { near } = await stageMeta(summary);
    assert.deepEqual([near.indexed, near.indexDuplicates], [12, 3]);
    assert.deepEqual(await store.getBytes(first.manifest.uri), before, 'the earlier dataset is only read');
  });

  it('refuses `against` a dataset signed another way or built without near dedup, naming the field', async () => {
    const folder = 'warm://scratch/near-against-mismatch';
    const input = `${runFolder({ ...first, digest: first.specDigest })}/dedup/manifest.json`;
    const ref = await manifestRef(store, input);
    await assert.rejects(
      planNearDedup({
        store,
        folder,
        input: ref,
        near: NearDedupSpec.parse({ numPerm: 64, against: first.manifest.uri }),
      }),
      (err: unknown) =>
        err instanceof InvalidSpec &&
        err.problems[0].field === 'dedup.near.against' &&
        /numPerm: the index was built with 128, this run uses 64/.test(err.message),
    );
    const plain = await flywheel.runPipeline({
      dataset: 'near-plain',
      sources: [{ type: 'sample', limit: 3 }],
      shards: { targetBytes: 65536 },
    });
    const err = await flywheel
      .runPipeline({
        dataset: 'near-against-plain',
        sources: [{ type: 'sample', limit: 3 }],
        dedup: { near: { against: plain.manifest.uri } },
        shards: { targetBytes: 65536 },
      })
      .then(
        () => assert.fail('must fail'),
        (e: unknown) => e,
      );
    assert.ok(err instanceof WorkflowFailedError);
    const cause = err.cause instanceof ApplicationFailure ? err.cause : (err.cause?.cause as ApplicationFailure);
    assert.equal(cause.type, 'InvalidSpec');
    assert.match(cause.message, /dedup\.near\.against: .*build that dataset with dedup\.near first/);
  });

  it('the spec: dedup.near is off when absent, has defaults, and bands must divide numPerm', () => {
    const parsed = PipelineSpec.parse({ dataset: 'x', sources: [{ type: 'sample' }] });
    assert.deepEqual(parsed.dedup, { exact: true });
    assert.deepEqual(PipelineSpec.parse({ dataset: 'x', sources: [{ type: 'sample' }], dedup: { near: {} } }).dedup, {
      exact: true,
      near: { threshold: 0.8, ngram: 5, numPerm: 128, normalizeNumbers: false, normalizeDiacritics: false },
    });
    const bad = PipelineSpec.safeParse({
      dataset: 'x',
      sources: [{ type: 'sample' }],
      dedup: { near: { bands: 7, threshold: 1.5 }, fuzzy: true },
    });
    assert.ok(!bad.success);
    const paths = bad.error.issues.map((i) => i.path.join('.'));
    for (const p of ['dedup.near.bands', 'dedup.near.threshold', 'dedup']) assert.ok(paths.includes(p), paths.join());
    const example = path.join(__dirname, '..', 'examples', 'feedback-pipeline.json');
    assert.match(PipelineSpec.parse(JSON.parse(fs.readFileSync(example, 'utf8'))).dedup.near?.against ?? '', /^warm:/);
  });
});
