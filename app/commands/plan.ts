import * as fs from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import {
  deepSpeedConfigForPlan,
  planParallelism,
  type CommLeg,
  type ParallelPlan,
  type PlanReport,
} from '../../lib/plan';

const SHOWN = 10;
const GiB = 2 ** 30;
const SUFFIX: Record<string, number> = { k: 1e3, m: 1e6, b: 1e9, t: 1e12 };

/** A parameter count: 7500000000, 7.5e9, 7.5B, 175B, 350M, 1.2T. */
export function parseParamCount(value: string): number {
  const match = /^\s*(\d+(?:\.\d+)?(?:e[+-]?\d+)?)\s*([kmbt])?\s*$/i.exec(value);
  const n = match ? Number(match[1]) * (match[2] ? SUFFIX[match[2].toLowerCase()] : 1) : NaN;
  if (!(n >= 1) || !Number.isFinite(n))
    throw new InvalidArgumentError('expected a parameter count such as 7.5e9, 7.5B, 175B or 350M');
  return Math.round(n);
}

function wholeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number ≥ 1');
  return n;
}

function gibibytes(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('expected GiB of one GPU, e.g. 80');
  return n;
}

interface PlanCommandOptions {
  params?: number;
  layers?: number;
  hidden?: number;
  heads?: number;
  vocab?: number;
  seq?: number;
  gpus: number;
  gpuMem: number;
  gpusPerNode: number;
  microBatches?: number;
  json?: boolean;
  emitDeepspeed?: string;
}

const SHAPE_FLAGS = ['layers', 'hidden', 'heads', 'vocab', 'seq'] as const;

/** The model flags: --params alone, or all five shape flags; anything else is a usage error. */
function modelFromFlags(opts: PlanCommandOptions, command: Command) {
  const shapeGiven = SHAPE_FLAGS.filter((f) => opts[f] !== undefined);
  if (opts.params !== undefined && shapeGiven.length)
    command.error(`error: give --params or the shape (--${shapeGiven.join(', --')}), not both`, { exitCode: 2 });
  if (opts.params !== undefined) return { params: opts.params };
  if (shapeGiven.length !== SHAPE_FLAGS.length) {
    const missing = SHAPE_FLAGS.filter((f) => opts[f] === undefined);
    command.error(
      shapeGiven.length
        ? `error: the model shape also needs --${missing.join(', --')}`
        : 'error: give the model: --params N, or --layers L --hidden H --heads A --vocab V --seq S',
      { exitCode: 2 },
    );
  }
  return { layers: opts.layers, hidden: opts.hidden, heads: opts.heads, vocab: opts.vocab, seq: opts.seq };
}

const gib = (bytes: number) => (bytes / GiB).toFixed(1);

function si(n: number, unit = ''): string {
  for (const [div, suffix] of [
    [1e12, 'T'],
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const)
    if (Math.abs(n) >= div) return `${(n / div).toPrecision(3)} ${suffix}${unit}`;
  return `${n.toPrecision(3)} ${unit}`.trimEnd();
}

function seconds(s: number): string {
  if (s === 0) return '0';
  return s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1000).toPrecision(3)} ms`;
}

function traffic(leg: CommLeg): string {
  if (!leg.link) return '-';
  return `${si(leg.bytes, 'B')} ${leg.link === 'nvlink' ? 'NVL' : 'IB'}`;
}

/** 174.6B, 7.5B, 350M: parameter counts as papers write them. */
function paramCount(n: number): string {
  if (n >= 1e12) return `${Number((n / 1e12).toPrecision(4))}T`;
  if (n >= 1e9) return `${Number((n / 1e9).toPrecision(4))}B`;
  if (n >= 1e6) return `${Number((n / 1e6).toPrecision(4))}M`;
  return String(n);
}

function describeModel(report: PlanReport): string {
  const { params, shape } = report.model;
  const size = `${paramCount(params)} parameters`;
  return shape
    ? `${size} (${shape.layers} layers, hidden ${shape.hidden}, ${shape.heads} heads, vocab ${shape.vocab}, seq ${shape.seq})`
    : size;
}

function describePlan(plan: ParallelPlan): string {
  return `TP=${plan.tensorParallel} PP=${plan.pipelineParallel} DP=${plan.dataParallel} ZeRO-${plan.zeroStage}`;
}

function table(plans: ParallelPlan[]): string[] {
  const header = [
    '#',
    'TP',
    'PP',
    'DP',
    'ZeRO',
    'states',
    'activ.',
    'total GiB',
    'fits',
    'bubble',
    'DP traffic',
    'TP traffic',
    'PP traffic',
    'comm',
    'step',
    'tokens/s',
  ];
  const rows = plans.map((p, i) => [
    String(i + 1),
    String(p.tensorParallel),
    String(p.pipelineParallel),
    String(p.dataParallel),
    String(p.zeroStage),
    gib(p.memory.modelStatesBytes),
    p.memory.activationBytes === null ? '-' : gib(p.memory.activationBytes),
    gib(p.memory.totalBytes),
    p.memory.fits ? 'yes' : 'no',
    `${(p.bubble * 100).toFixed(0)}%`,
    traffic(p.comm.dataParallel),
    traffic(p.comm.tensorParallel),
    traffic(p.comm.pipeline),
    seconds(p.comm.seconds),
    p.time ? seconds(p.time.stepSeconds) : '-',
    p.time ? si(p.time.tokensPerSecond) : '-',
  ]);
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
  // Text columns (fits, traffic) align left, numbers right.
  const left = new Set([8, 10, 11, 12]);
  const line = (cells: string[]) =>
    cells.map((cell, c) => (left.has(c) ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('  ');
  return [line(header), ...rows.map(line)];
}

function humanReport(report: PlanReport): string[] {
  const r = report.request;
  const fitting = report.plans.filter((p) => p.memory.fits).length;
  const lines = [
    `Model: ${describeModel(report)}`,
    `GPUs: ${r.gpus} × ${r.gpuMemGiB} GiB, ${r.gpusPerNode} per node; ` +
      (r.globalBatch !== undefined
        ? `global batch ${r.globalBatch} sequences`
        : `${report.plans[0]?.microBatches ?? r.microBatches} micro-batches of ${r.microBatchSize} sequence${r.microBatchSize === 1 ? '' : 's'} per pipeline per step`),
    '',
    ...table(report.plans.slice(0, SHOWN)),
    '',
  ];
  const best = report.recommended;
  if (best) {
    const time = best.time
      ? `; about ${seconds(best.time.stepSeconds)} per step of ${best.globalBatch} sequences (${si(best.time.tokensPerSecond)} tokens/s)`
      : '';
    lines.push(
      `Recommended: ${describePlan(best)}, ${best.microBatches} micro-batches: ${gib(best.memory.totalBytes)} of ${r.gpuMemGiB} GiB per GPU, bubble ${(best.bubble * 100).toFixed(0)}%${time}.`,
    );
  } else {
    lines.push(
      `No plan fits in ${r.gpuMemGiB} GiB per GPU: add GPUs, use GPUs with more memory, fewer micro-batches in flight, or activation recomputation.`,
    );
  }
  lines.push(
    `${report.plans.length} valid plans, ${fitting} fit; ${Math.min(SHOWN, report.plans.length)} shown, --json lists all ` +
      `and the ${report.rejected.length} layouts the rules refuse.`,
    'Estimates assume:',
    ...report.assumptions.map((a) => `  - ${a}`),
  );
  return lines;
}

/** `flywheel plan`: DP×TP×PP layouts with ZeRO stages for a model on a GPU cluster, ranked; no Temporal. */
export function registerPlanCommand(program: Command): void {
  program
    .command('plan')
    .description('rank DP×TP×PP layouts and ZeRO stages for a model on a GPU cluster, and write a DeepSpeed config')
    .option('--params <N>', 'parameter count (7.5e9, 7.5B, 175B), when the shape is unknown', parseParamCount)
    .option('--layers <L>', 'transformer layers', wholeNumber)
    .option('--hidden <H>', 'hidden size', wholeNumber)
    .option('--heads <A>', 'attention heads', wholeNumber)
    .option('--vocab <V>', 'vocabulary size', wholeNumber)
    .option('--seq <S>', 'sequence length in tokens', wholeNumber)
    .requiredOption('--gpus <G>', 'GPUs in the job', wholeNumber)
    .requiredOption('--gpu-mem <GiB>', 'memory of one GPU in GiB', gibibytes)
    .option('--gpus-per-node <n>', 'GPUs sharing NVLink in one machine', wholeNumber, 8)
    .option('--micro-batches <M>', 'micro-batches per pipeline per step (default 8)', wholeNumber)
    .option('--json', 'print the whole report as JSON')
    .option('--emit-deepspeed <FILE>', 'write the DeepSpeed config of the recommended plan to FILE')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  npx flywheel plan --params 7.5B --gpus 64 --gpu-mem 32\n' +
        '  npx flywheel plan --layers 96 --hidden 12288 --heads 96 --vocab 51200 --seq 2048 --gpus 1024 --gpu-mem 80 \\\n' +
        '      --micro-batches 32 --emit-deepspeed ds_config.json\n' +
        'Exit codes: 0 done, 1 no plan fits (with --emit-deepspeed), 2 bad or missing options.',
    )
    .action((opts: PlanCommandOptions, command: Command) => {
      const report = planParallelism({
        model: modelFromFlags(opts, command),
        gpus: opts.gpus,
        gpuMemGiB: opts.gpuMem,
        gpusPerNode: opts.gpusPerNode,
        microBatches: opts.microBatches,
      });
      if (opts.json) console.log(JSON.stringify(report, null, 2));
      else for (const line of humanReport(report)) console.log(line);
      if (!opts.emitDeepspeed) return;
      if (!report.recommended)
        throw Object.assign(
          new Error(`no plan fits in ${opts.gpuMem} GiB per GPU; wrote no DeepSpeed config to ${opts.emitDeepspeed}`),
          { exitCode: 1 },
        );
      const config = deepSpeedConfigForPlan(report.recommended);
      fs.writeFileSync(opts.emitDeepspeed, JSON.stringify(config, null, 2) + '\n');
      (opts.json ? console.error : console.log)(
        `Wrote the DeepSpeed config of ${describePlan(report.recommended)} to ${opts.emitDeepspeed}`,
      );
    });
}
