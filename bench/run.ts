import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { formatFigures, formatTable, runBenchmark, type Benchmark, type BenchmarkResult, type Figure } from './harness';
import { storageBenchmarks } from './storage.bench';
import { pipelineBenchmarks } from './pipeline.bench';
import { dedupBenchmarks } from './dedup.bench';
import { tokenizeBenchmarks } from './tokenize.bench';
import { qualityBenchmarks } from './quality.bench';
import { formatsBenchmarks } from './formats.bench';
import { trainBenchmarks, trainFigures } from './train.bench';
import { feedbackFigures } from './feedback.bench';
import { scaleOutBenchmarks } from './scale-out.bench';
import { torchFigures } from './torch.bench';
import { scaleFigures } from './scale.bench';
import { perCoreFigures } from './per-core.bench';

/** `npm run bench [-- name-filter]`: every registered benchmark, a table on stdout, the numbers in a JSON file. */
async function main() {
  const filter = process.argv[2];
  const all: Benchmark[] = [
    ...storageBenchmarks(),
    ...pipelineBenchmarks(),
    ...dedupBenchmarks(),
    ...tokenizeBenchmarks(),
    ...qualityBenchmarks(),
    ...formatsBenchmarks(),
    ...trainBenchmarks(),
    ...scaleOutBenchmarks(),
  ];
  const selected = filter ? all.filter((b) => b.name.includes(filter)) : all;
  const results: BenchmarkResult[] = [];
  for (const b of selected) {
    process.stderr.write(`running: ${b.name}\n`);
    results.push(await runBenchmark(b));
  }
  console.log(formatTable(results));
  const figures = [
    ...(!filter || 'pipeline'.includes(filter) ? pipelineFigures() : []),
    ...(!filter || 'training'.includes(filter) ? await trainFigures() : []),
    ...(!filter || 'feedback'.includes(filter) ? await feedbackFigures() : []),
    ...(!filter || 'torch'.includes(filter) ? torchFigures() : []),
    ...(!filter || 'scale'.includes(filter) ? await scaleFigures() : []),
    ...(!filter || 'per-core'.includes(filter) ? await perCoreFigures() : []),
  ];
  if (figures.length) console.log('\n' + formatFigures(figures));
  const out = path.resolve(process.env.FLYWHEEL_HOME ?? '.flywheel', 'bench', 'results.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const record = {
    at: new Date().toISOString(),
    machine: {
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
      memoryGiB: Math.round(os.totalmem() / 2 ** 30),
      node: process.version,
    },
    results,
    figures,
  };
  fs.writeFileSync(out, JSON.stringify(record, null, 2) + '\n');
  console.log(`\nwrote ${path.relative(process.cwd(), out)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});

interface PipelineRun {
  copies: number;
  documents: number;
  textMB: number;
  wallSeconds: number;
  mbPerSecond: number;
  temporalShare: number;
  coldWallSeconds: number;
  coldTemporalShare: number;
  peakRssMB: number;
}

/** Whole pipeline runs at 1× and 4× the sample corpus, each in a fresh process so its peak memory is its own. */
function pipelineFigures(): Figure[] {
  const runs: PipelineRun[] = [];
  for (const copies of [1, 4]) {
    process.stderr.write(`running: whole pipeline on ${copies}× the sample corpus\n`);
    const run = spawnSync(
      process.execPath,
      ['--require', 'tsx/cjs', path.join(__dirname, 'pipeline-run.ts'), String(copies)],
      {
        encoding: 'utf8',
      },
    );
    if (run.status !== 0) throw new Error(`pipeline run at ${copies}× failed:\n${run.stderr}`);
    runs.push(JSON.parse(run.stdout.trim().split('\n').at(-1)!) as PipelineRun);
  }
  const [one, four] = runs;
  return [
    {
      name: 'pipeline wall time, 1× sample corpus',
      value: one.wallSeconds,
      unit: 's',
      note: `${one.textMB.toFixed(1)} MB, ${one.mbPerSecond.toFixed(2)} MB/s`,
    },
    {
      name: 'pipeline wall time, 4× sample corpus',
      value: four.wallSeconds,
      unit: 's',
      note: `${four.textMB.toFixed(1)} MB, ${four.mbPerSecond.toFixed(2)} MB/s`,
    },
    {
      name: 'share of wall time outside activities (Temporal scheduling), 4×, warm worker',
      value: four.temporalShare,
      unit: '',
      max: 0.1,
      note: `1×: ${one.temporalShare.toFixed(3)}`,
    },
    {
      name: "share of wall time outside activities, 4×, a fresh worker's first run",
      value: four.coldTemporalShare,
      unit: '',
      note: `wall ${four.coldWallSeconds.toFixed(2)} s; loading the workflow code is in it`,
    },
    { name: 'peak RSS, 1× corpus', value: one.peakRssMB, unit: 'MB' },
    {
      name: 'peak RSS growth, 4× / 1× corpus',
      value: four.peakRssMB / one.peakRssMB,
      unit: '×',
      max: 1.25,
      note: `${four.peakRssMB.toFixed(0)} MB at 4×`,
    },
  ];
}
