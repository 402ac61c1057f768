import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import { workflowInput, writeRunReport } from '../app/commands/report';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect';
import { clusterBins, pipelineFunnel, promotionRows, type PromotionDecision } from '../lib/report';
import type { DatasetSummary } from '../lib/contracts/pipeline-results';
import type { TrainingResult } from '../lib/contracts/training';
import { tieredStoreFromConfig } from '../lib/storage';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { launchChromium, screenshotInk, screenshotPath } from './support/browser';
import { temporalAddress, testConfig } from './support/temporal';
import { runCli } from './support/cli';

describe('the run report, piece by piece', () => {
  it('draws the funnel from records read through every rule to the documents', () => {
    const rows = pipelineFunnel(
      {
        collect: { input: 30, kept: 29, dropped: { 'parse.json': 1 }, keptBytes: 0 },
        filter: { input: 29, kept: 24, dropped: { 'gopher.words': 1, 'c4.lorem': 4 }, keptBytes: 0 },
        dedup: { input: 24, kept: 22, dropped: { 'dedup.exact': 2 }, keptBytes: 0 },
      },
      22,
    );
    assert.deepEqual(
      rows.map((r) => [r.kind, r.label, r.count]),
      [
        ['total', 'records read', 30],
        ['drop', 'parse.json', 1],
        ['total', 'collected', 29],
        ['drop', 'c4.lorem', 4],
        ['drop', 'gopher.words', 1],
        ['total', 'passed the filters', 24],
        ['drop', 'dedup.exact', 2],
        ['total', 'after exact dedup', 22],
      ],
    );
  });

  it('bins cluster sizes one per size up to 10, then in doubling ranges', () => {
    assert.deepEqual(clusterBins({}), []);
    assert.deepEqual(clusterBins({ 2: 5, 4: 1 }), [
      { label: '2', value: 5 },
      { label: '3', value: 0 },
      { label: '4', value: 1 },
    ]);
    const wide = clusterBins({ 2: 1, 12: 2, 40: 1 });
    assert.deepEqual(
      wide.filter((b) => b.value > 0),
      [
        { label: '2', value: 1 },
        { label: '11–16', value: 2 },
        { label: '33–64', value: 1 },
      ],
    );
  });

  it("reads a decision's metrics per side, per metric, or inside the sides", () => {
    const base = { id: 'd1', at: '2025-01-01T00:00:00.000Z', model: 'm', decision: 'promote', reason: 'better' };
    const perSide = { champion: { perplexity: 12, valLoss: 2.5 }, challenger: { perplexity: 11 }, events: 40 };
    assert.deepEqual(promotionRows({ ...base, champion: 'v1', challenger: 'v2', metrics: perSide }), [
      { name: 'perplexity', champion: 12, challenger: 11 },
      { name: 'valLoss', champion: 2.5 },
    ]);
    assert.deepEqual(
      promotionRows({ ...base, challenger: 'v2', metrics: { valLoss: { champion: 2.5, challenger: 2.4 }, bleu: 0.3 } }),
      [
        { name: 'valLoss', champion: 2.5, challenger: 2.4 },
        { name: 'bleu', challenger: 0.3 },
      ],
    );
    assert.deepEqual(
      promotionRows({
        ...base,
        champion: { version: 'v1', metrics: { valLoss: 2.5 } },
        challenger: { version: 'v2', metrics: { valLoss: 2.4 } },
        metrics: {},
      }),
      [{ name: 'valLoss', champion: 2.5, challenger: 2.4 }],
    );
  });
});

/** Real prose, exact and near copies of it, and text the quality filters drop, so every chart has something. */
function makeInputs(dir: string) {
  const chapters = sampleCorpus('moby-dick')
    .documents.slice(80, 92)
    .map((d) => d.text);
  const nearCopy = (text: string, every: number, word: string) =>
    text
      .split(' ')
      .map((w, i) => (i % every === every - 1 ? word : w))
      .join(' ');
  const records = [
    ...chapters.map((text, i) => ({ id: `chapter-${i}`, text })),
    { id: 'exact-0', text: chapters[0].replace(/ /g, '   ') },
    { id: 'exact-0b', text: `  ${chapters[0]}  ` },
    { id: 'exact-1', text: chapters[1] },
    { id: 'near-2a', text: nearCopy(chapters[2], 100, 'harpoon') },
    { id: 'near-2b', text: nearCopy(chapters[2], 90, 'whale') },
    { id: 'near-3', text: nearCopy(chapters[3], 100, 'harpoon') },
    { id: 'short', text: 'Too short to keep.' },
    { id: 'lorem', text: `${chapters[4]} Lorem ipsum dolor sit amet.` },
  ];
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'records.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

describe('the run report of a real pipeline and training run', () => {
  let connection: Connection;
  let client: Client;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let pipelineId: string;
  let trainingId: string;
  let summary: DatasetSummary;
  let trained: TrainingResult;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-report-'));

  const decision: PromotionDecision = {
    id: 'flywheel-report-2025-01-31',
    at: '2025-01-31T03:00:00.000Z',
    model: 'report-demo',
    champion: 'v1',
    challenger: 'v2',
    decision: 'promote',
    reason: 'validation loss 2.41 < 2.58 and feedback perplexity 10.9 < 12.3',
    metrics: {
      champion: { valLoss: 2.58, perplexity: 13.2, 'feedback.perplexity': 12.3 },
      challenger: { valLoss: 2.41, perplexity: 11.1, 'feedback.perplexity': 10.9 },
      events: 120,
      newDocs: 37,
    },
  };

  before(async () => {
    makeInputs(path.join(scratch, 'inputs'));
    const address = await temporalAddress();
    config = testConfig(address);
    workers = await createWorkers(config);
    running = workers.run();
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    const flywheel = new FlywheelClient(client, { taskQueuePrefix: config.worker.taskQueuePrefix });
    const pipeline = await flywheel.startPipeline({
      dataset: 'report-demo',
      sources: [
        { type: 'sample', limit: 24 },
        { type: 'path', path: path.join(scratch, 'inputs') },
      ],
      dedup: { exact: true, near: {} },
      shards: { targetBytes: 1 << 20, validationFraction: 0.15 },
    });
    pipelineId = pipeline.workflowId;
    summary = await pipeline.result();
    const training = await flywheel.startTraining({
      run: 'report-demo',
      dataset: summary.manifest.uri,
      trainer: {
        seed: 3,
        model: { contextTokens: 3, embeddingDim: 16, hiddenDim: 32, maxVocab: 512 },
        sequenceTokens: 32,
        batch: { microBatchSizePerGpu: 4, gradientAccumulationSteps: 2 },
        schedule: { warmupSteps: 4 },
      },
      steps: 60,
      segmentSteps: 20,
      checkpointEvery: 10,
      evalEvery: 10,
      evalTokens: 4000,
      register: false,
      retention: { keepLast: 2, milestoneEvery: 30 },
    });
    trainingId = training.workflowId;
    trained = (await training.result()) as unknown as TrainingResult;
  });

  after(async () => {
    await workers.shutdown();
    await running;
    await connection.close();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it("reads a workflow's input from its first event (for runs started without a memo, as from the UI)", async () => {
    assert.equal((await workflowInput(client, pipelineId))?.dataset, 'report-demo');
    assert.equal((await workflowInput(client, trainingId))?.run, 'report-demo');
    assert.equal(await workflowInput(client, 'no-such-workflow'), undefined);
  });

  it('is one self-contained HTML file whose charts a browser draws', { timeout: 120_000 }, async (t) => {
    const file = await writeRunReport({
      client,
      store: tieredStoreFromConfig(config),
      workflowIds: [pipelineId, trainingId],
      out: path.join(scratch, 'reports'),
      promotions: [decision],
      uiUrl: 'http://localhost:8233',
    });
    assert.equal(file, path.join(scratch, 'reports', `${pipelineId}.html`));
    const html = fs.readFileSync(file, 'utf8');
    const external = /<script|<link|<img|<iframe|\bsrc=|url\(/i.exec(html);
    assert.equal(
      external,
      null,
      `nothing to fetch, nothing to run: ${html.slice((external?.index ?? 0) - 80, (external?.index ?? 0) + 80)}`,
    );
    assert.match(html, new RegExp(`http://localhost:8233/namespaces/default/workflows/${trainingId}`));

    const { browser, skip } = await launchChromium();
    if (!browser) return t.skip(skip);
    try {
      const page = await browser.newPage({ viewport: { width: 880, height: 900 } });
      await page.goto(pathToFileURL(file).href);
      const count = (selector: string) => page.locator(selector).count();

      // Funnel: records read, a drop per rule, totals after each stage.
      assert.ok((await count('svg[data-chart="funnel"] .funnel-row.drop')) >= 3, 'drops per rule');
      for (const label of ['collected', 'dedup.exact', 'dedup.near', 'after near dedup'])
        assert.ok(await page.locator('svg[data-chart="funnel"] text', { hasText: label }).count(), label);
      // Dedup clusters: the exact copies of chapter 0 make a cluster of 3; near copies of chapter 2 another.
      assert.ok((await count('svg[data-chart="clusters-exact"] rect.bar')) >= 2);
      assert.ok(await page.locator('svg[data-chart="clusters-exact"] rect.bar title', { hasText: '3: 1' }).count());
      assert.ok((await count('svg[data-chart="clusters-near"] rect.bar')) >= 1);
      // Loss curves: both series, a point per evaluation.
      assert.equal(await count('svg[data-chart="loss"] g.series'), 2);
      assert.equal(
        await count('svg[data-chart="loss"] g.series[data-series="validation loss"] circle'),
        trained.evaluations.length,
      );
      // Checkpoints: every written step, milestones in cold, the newest in warm, deleted ones hollow.
      const written = await count('svg[data-chart="checkpoints"] g[data-tier="written"] circle');
      assert.equal(written, trained.checkpoints.length);
      assert.ok(await count('svg[data-chart="checkpoints"] g[data-tier="cold"] circle'), 'milestones in cold');
      assert.ok(await count('svg[data-chart="checkpoints"] g[data-tier="warm"] circle'), 'recent in warm');
      assert.ok(await count('svg[data-chart="checkpoints"] circle.deleted'), 'retention deleted some');
      // Champion vs challenger.
      assert.equal(await count('svg[data-chart="promotion"] g.metric'), 3);
      assert.ok(await page.getByText('promote', { exact: true }).count());

      const png = await page.screenshot({ path: screenshotPath('report.png'), fullPage: true });
      const ink = await screenshotInk(page, png);
      assert.ok(ink.inked > 0.05 && ink.colors > 50, `the page is drawn (${JSON.stringify(ink)})`);
      for (const chart of ['funnel', 'clusters-exact', 'loss', 'checkpoints', 'promotion']) {
        const shot = await page.locator(`svg[data-chart="${chart}"]`).screenshot();
        const drawn = await screenshotInk(page, shot);
        assert.ok(drawn.inked > 0.02 && drawn.colors > 3, `${chart} is drawn (${JSON.stringify(drawn)})`);
      }
    } finally {
      await browser.close();
    }
  });

  it('is written by `flywheel report`, which exits 2 for an unknown workflow', { timeout: 120_000 }, async () => {
    const env = {
      TEMPORAL_ADDRESS: config.temporal.address,
      FLYWHEEL_HOME: config.home,
      FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
    };
    const out = path.join(scratch, 'cli', 'training.html');
    const made = await runCli(['report', trainingId, '--out', out, '--json'], env);
    assert.equal(made.status, 0, made.stderr);
    assert.deepEqual(JSON.parse(made.stdout), { path: out, workflowIds: [trainingId] });
    // A training run alone still shows how its data was made, from the dataset manifest.
    const html = fs.readFileSync(out, 'utf8');
    assert.match(html, /data-chart="funnel"/);
    assert.match(html, /data-chart="loss"/);

    const missing = await runCli(['report', 'pipeline-nothing-v9'], env);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /no workflow pipeline-nothing-v9/);
    const help = await runCli(['report', '--help'], env);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Exit codes/);
  });
});
