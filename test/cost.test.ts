import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect';
import { bytesLeft, CpuApportioner, gpusGiven, readWorkflowUsage, UsageMeter, type CostReport } from '../lib/cost';
import type { PipelineInput } from '../lib/contracts/pipeline';
import type { TrainingInput } from '../lib/contracts/training';
import { readManifest, tieredStoreFromConfig, TIERS } from '../lib/storage';
import { runCli } from './support/cli';
import { temporalAddress, testConfig } from './support/temporal';
import { startWorker, type WorkerProcess } from './support/worker-process';

/** A process's own CPU seconds (utime + stime, every thread; not its children's) from /proc/<pid>/stat. */
function processCpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; fields after its closing parenthesis are space-separated.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime and stime: fields 14 and 15 of the whole line
  return ticks / clockTicksPerSecond();
}

/** sysconf(_SC_CLK_TCK): 100 on every Linux Node supports; getconf answers when present. */
function clockTicksPerSecond(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

/**
 * Enough real prose for a pipeline whose CPU dwarfs the worker's own upkeep (polling, workflow tasks): every chapter
 * of the sample corpus, and `variants - 1` copies with their sentences shuffled (distinct documents exact dedup
 * keeps and near dedup has to sign).
 */
function writeCorpus(file: string, variants: number): void {
  const chapters = sampleCorpus('moby-dick').documents;
  let seed = 1;
  const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const lines: string[] = [];
  for (let v = 0; v < variants; v++)
    for (const [i, chapter] of chapters.entries()) {
      const sentences = chapter.text.split(/(?<=[.!?])\s+/);
      for (let k = sentences.length - 1; v > 0 && k > 0; k--) {
        const j = Math.floor(random() * (k + 1));
        [sentences[k], sentences[j]] = [sentences[j], sentences[k]];
      }
      lines.push(JSON.stringify({ id: `${v}-${i}`, text: sentences.join(' ') }));
    }
  fs.writeFileSync(file, lines.join('\n') + '\n');
}

const PRICES = {
  currency: 'EUR',
  cpuHour: 0.05,
  gpuHour: 2.5,
  gbMonth: { hot: 0.1, warm: 0.02, cold: 0.004 },
  per1000Requests: 0.005,
};

describe('cost per run', { skip: process.platform !== 'linux' && 'reads /proc' }, () => {
  let config: ReturnType<typeof testConfig>;
  let env: Record<string, string>;
  let worker: WorkerProcess;
  let connection: Connection;
  let flywheel: FlywheelClient;

  before(async () => {
    writeCorpus(corpus, 3);
    const address = await temporalAddress();
    config = testConfig(address);
    env = {
      TEMPORAL_ADDRESS: address,
      FLYWHEEL_HOME: config.home,
      FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
      FLYWHEEL_PRICES: JSON.stringify(PRICES),
    };
    worker = startWorker(env);
    await worker.ready;
    connection = await Connection.connect({ address });
    flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: config.worker.taskQueuePrefix });
  });

  after(async () => {
    await worker?.stop();
    await connection?.close();
    fs.rmSync(inputs, { recursive: true, force: true });
  });

  const inputs = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-cost-'));
  const corpus = path.join(inputs, 'chapters.jsonl');
  const pipeline: PipelineInput = {
    dataset: 'costed',
    sources: [{ type: 'path', path: corpus }],
    dedup: { exact: true, near: { threshold: 0.8 } },
    shards: { targetBytes: 512 * 1024, validationFraction: 0.1 },
    // Byte ranges of the file in parallel: activities overlap, as they do in production.
    unitBytes: 512 * 1024,
  };

  it(
    'records the CPU seconds of a pipeline within 10% of what the worker process used',
    { timeout: 300_000 },
    async () => {
      const pid = worker.child.pid!;
      const before = processCpuSeconds(pid);
      const summary = await flywheel.runPipeline(pipeline);
      const used = processCpuSeconds(pid) - before;
      const store = tieredStoreFromConfig(config);
      const { attempts, unreadable } = await readWorkflowUsage(store, 'pipeline-costed-v1');
      assert.deepEqual(unreadable, []);
      assert.ok(attempts.length >= 5, `one record per activity attempt, got ${attempts.length}`);
      const recorded = attempts.reduce((sum, a) => sum + a.cpuSeconds, 0);
      console.error(`[cost test] worker used ${used.toFixed(2)} s CPU, activities recorded ${recorded.toFixed(2)} s`);
      assert.ok(used > 1, `the pipeline is heavy enough to measure (${used} s)`);
      assert.ok(Math.abs(recorded - used) <= 0.1 * used, `recorded ${recorded} s vs the process's ${used} s`);

      // Bytes: what the shard and commit stages wrote is what the dataset manifest lists (and the manifest itself).
      const manifest = await readManifest(store, summary.manifest);
      const listed = manifest.objects.reduce((n, o) => n + o.bytes, 0) + summary.manifest.bytes;
      const finals = attempts.filter((a) => ['writeShardStage', 'commitDatasetStage'].includes(a.activityType));
      const written = finals.reduce((n, a) => n + a.bytesWritten.warm, 0);
      console.error(`[cost test] shard+commit wrote ${written} B; the manifest lists ${listed} B`);
      assert.ok(Math.abs(written - listed) <= 0.01 * listed, `written ${written} B vs listed ${listed} B (1%)`);
      // And the whole run wrote what it leaves in its folders: intermediates and dataset, each object once.
      const left = await bytesLeft(store, {
        manifests: [summary.manifest.uri],
        prefixes: TIERS.map((t) => `${t}://pipelines/costed/v1/`),
      });
      for (const tier of TIERS) {
        const total = attempts.reduce((n, a) => n + a.bytesWritten[tier], 0);
        console.error(`[cost test] ${tier}: wrote ${total} B, left ${left[tier]} B`);
        assert.ok(
          total >= left[tier] && total <= left[tier] * 1.05 + 4096,
          `${tier}: wrote ${total}, left ${left[tier]}`,
        );
      }
      const read = attempts.reduce((n, a) => n + a.bytesRead.warm, 0);
      assert.ok(read > 0, 'later stages read what earlier ones wrote');
    },
  );

  it(
    '`flywheel cost` prints a pipeline and a training run per stage and in total, priced',
    { timeout: 300_000 },
    async () => {
      const summary = await flywheel.runPipeline(pipeline); // committed above: reused
      const training: TrainingInput = {
        run: 'costed-run',
        dataset: summary.manifest.uri,
        trainer: {
          seed: 7,
          model: { contextTokens: 3, embeddingDim: 16, hiddenDim: 32, maxVocab: 512 },
          sequenceTokens: 32,
          batch: { microBatchSizePerGpu: 4, gradientAccumulationSteps: 1 },
          schedule: { warmupSteps: 2 },
        },
        steps: 20,
        segmentSteps: 10,
        checkpointEvery: 10,
        retention: { keepLast: 2 },
      };
      const result = await flywheel.runTraining(training);
      assert.ok(result.model, 'the run registers a model version');

      const json = await runCli(['cost', 'pipeline-costed-v1', 'train-costed-run', '--json'], env);
      assert.equal(json.status, 0, json.stderr);
      const report = JSON.parse(json.stdout) as CostReport;
      assert.equal(report.currency, 'EUR');
      assert.equal(report.priced, true);
      const [data, run] = report.runs;
      assert.equal(data.workflowId, 'pipeline-costed-v1');
      assert.equal(data.kind, 'pipeline');
      for (const stage of ['plan', 'collect', 'filter', 'dedup', 'near-dedup', 'tokenize', 'shard', 'commit'])
        assert.ok(
          data.stages.some((s) => s.name === stage),
          `stage ${stage} in ${data.stages.map((s) => s.name)}`,
        );
      const sum = data.stages.reduce((n, s) => n + s.cpuSeconds, 0);
      assert.ok(Math.abs(sum - data.total.cpuSeconds) < 1e-6, 'the stages add up to the total');
      assert.ok(data.total.cost.cpu > 0);
      assert.ok(Math.abs(data.total.cost.cpu - (data.total.cpuSeconds / 3600) * PRICES.cpuHour) < 1e-9);
      assert.ok(data.storage.bytes.warm > 0 && data.storage.perMonth > 0);
      assert.equal(run.workflowId, 'train-costed-run');
      assert.equal(run.kind, 'training');
      assert.ok(
        run.stages.some((s) => s.name === 'trainSegment' || /segment/i.test(s.name)),
        JSON.stringify(run.stages),
      );
      assert.equal(run.total.gpuSeconds, 0, 'the built-in trainer holds no GPU');
      assert.ok(run.storage.bytes.warm > 0, 'the registered version and committed checkpoints are in warm');
      const [model] = report.models;
      assert.equal(model.model, result.model!.name);
      assert.equal(model.datasetWorkflowId, 'pipeline-costed-v1');
      assert.equal(model.datasetShare.versions, 1);
      assert.ok(Math.abs(model.total - (run.total.cost.total + data.total.cost.total)) < 1e-9);
      assert.ok(Math.abs(report.total.cost.total - (data.total.cost.total + run.total.cost.total)) < 1e-9);

      const text = await runCli(['cost', 'pipeline-costed-v1', 'train-costed-run'], env);
      assert.equal(text.status, 0, text.stderr);
      assert.match(text.stdout, /pipeline-costed-v1 \(pipeline\)/);
      assert.match(text.stdout, /^\s+near-dedup .* EUR$/m);
      assert.match(text.stdout, /^\s+total .* EUR$/m);
      assert.match(text.stdout, /per month/);
      assert.match(text.stdout, /dataset share/);
      assert.match(text.stdout, /^total: /m);
    },
  );

  it('a price table with an unknown key or a negative price is a configuration error (exit code 2) naming it', async () => {
    const unknown = await runCli(['config'], { FLYWHEEL_PRICES: '{"cpuHours": 0.05}' });
    assert.equal(unknown.status, 2, unknown.stderr);
    assert.match(unknown.stderr, /FLYWHEEL_PRICES: expected no unknown key "cpuHours"/);
    const negative = await runCli(['config'], { FLYWHEEL_PRICES: '{"gbMonth": {"warm": -0.02}}' });
    assert.equal(negative.status, 2, negative.stderr);
    assert.match(negative.stderr, /gbMonth\.warm: a price ≥ 0/);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-prices-'));
    fs.writeFileSync(path.join(dir, 'prices.json'), '{"gpuHour": -1, "tpuHour": 3}');
    const file = await runCli(['config'], { FLYWHEEL_PRICES_FILE: path.join(dir, 'prices.json') });
    assert.equal(file.status, 2, file.stderr);
    assert.match(file.stderr, /FLYWHEEL_PRICES_FILE=.*gpuHour: a price ≥ 0/);
    assert.match(file.stderr, /no unknown key "tpuHour"/);
    const good = await runCli(['config'], { FLYWHEEL_PRICES: JSON.stringify(PRICES) });
    assert.equal(good.status, 0, good.stderr);
    assert.equal(JSON.parse(good.stdout).prices.cpuHour, 0.05);
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('what an activity used', () => {
  it('an external trainer is given the GPUs its launcher asks for, at most those visible, none without GPUs', () => {
    const torchrun = ['python3', '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node', '2', 'train.py'];
    assert.equal(gpusGiven(torchrun, {}, 0), 0, 'on a CPU machine its ranks are CPU processes');
    assert.equal(gpusGiven(torchrun, {}, 8), 2);
    assert.equal(gpusGiven(['torchrun', '--nproc_per_node=4', 't.py'], { CUDA_VISIBLE_DEVICES: '0,1' }, 8), 2);
    assert.equal(gpusGiven(['deepspeed', '--num_gpus', '3', 't.py'], {}, 8), 3);
    assert.equal(gpusGiven(['python3', 'train.py'], {}, 4), 4, 'no count: every visible GPU is held');
    assert.equal(gpusGiven(['python3', 'train.py'], { CUDA_VISIBLE_DEVICES: '-1' }, 4), 0);
    assert.equal(gpusGiven(['torchrun', '--nproc-per-node', 'gpu', 't.py'], { CUDA_VISIBLE_DEVICES: '3' }, 4), 1);
  });

  it("the CPU apportioned to overlapping attempts adds up to the process's CPU while they ran", () => {
    const cpu = new CpuApportioner();
    const [a, b] = [new UsageMeter(), new UsageMeter()];
    const spin = (ms: number) => {
      const end = performance.now() + ms;
      while (performance.now() < end);
    };
    const start = process.cpuUsage();
    cpu.begin(a);
    spin(60);
    cpu.begin(b);
    spin(60);
    cpu.end(a);
    spin(60);
    cpu.end(b);
    const used = process.cpuUsage(start);
    const total = (used.user + used.system) / 1e6;
    assert.ok(Math.abs(a.cpuSeconds + b.cpuSeconds - total) < 0.005, `${a.cpuSeconds} + ${b.cpuSeconds} vs ${total}`);
    assert.ok(a.cpuSeconds > 0.06 && b.cpuSeconds > 0.06, 'each had the interval it ran alone and half the shared one');
  });
});
