/**
 * The one benchmark harness: each benchmark measures its figure and its baseline side by side in the same run
 * (alternating rounds, median of each), so machine noise hits both alike. Ratios, not absolute speeds, are the goal.
 */
export interface Measurement {
  /** What one round achieved, in `unit` (higher is better, e.g. MB/s). */
  value: number;
}

export interface Benchmark {
  name: string;
  unit: string;
  candidate: { label: string; run(): Promise<Measurement> };
  baseline: { label: string; run(): Promise<Measurement> };
  /** The ratio candidate/baseline this figure should reach. */
  target?: number;
  rounds?: number;
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
}

export interface BenchmarkResult {
  name: string;
  unit: string;
  candidate: string;
  baseline: string;
  candidateValue: number;
  baselineValue: number;
  ratio: number;
  target?: number;
  met?: boolean;
  rounds: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export async function runBenchmark(b: Benchmark): Promise<BenchmarkResult> {
  const rounds = b.rounds ?? 5;
  await b.setup?.();
  try {
    // One warm-up of each, not counted.
    await b.baseline.run();
    await b.candidate.run();
    const c: number[] = [];
    const base: number[] = [];
    for (let i = 0; i < rounds; i++) {
      // Alternate the order so neither side always runs on a warmer cache.
      if (i % 2 === 0) {
        base.push((await b.baseline.run()).value);
        c.push((await b.candidate.run()).value);
      } else {
        c.push((await b.candidate.run()).value);
        base.push((await b.baseline.run()).value);
      }
    }
    const candidateValue = median(c);
    const baselineValue = median(base);
    const ratio = candidateValue / baselineValue;
    return {
      name: b.name,
      unit: b.unit,
      candidate: b.candidate.label,
      baseline: b.baseline.label,
      candidateValue,
      baselineValue,
      ratio,
      target: b.target,
      met: b.target === undefined ? undefined : ratio >= b.target,
      rounds,
    };
  } finally {
    await b.teardown?.();
  }
}

export function formatTable(results: BenchmarkResult[]): string {
  const rows = [
    ['benchmark', 'candidate', 'baseline', 'ratio', 'target', ''],
    ...results.map((r) => [
      r.name,
      `${r.candidateValue.toFixed(1)} ${r.unit} (${r.candidate})`,
      `${r.baselineValue.toFixed(1)} ${r.unit} (${r.baseline})`,
      r.ratio.toFixed(2),
      r.target === undefined ? '-' : `≥ ${r.target}`,
      r.met === undefined ? '' : r.met ? 'met' : 'MISSED',
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A measured figure with a bound rather than a baseline (a share of time, a growth factor). */
export interface Figure {
  name: string;
  value: number;
  unit: string;
  /** The figure should be at most this. */
  max?: number;
  /** The figure should be at least this. */
  min?: number;
  note?: string;
}

export function formatFigures(figures: Figure[]): string {
  const rows = [
    ['figure', 'value', 'bound', '', 'note'],
    ...figures.map((f) => [
      f.name,
      `${f.value.toFixed(f.value < 10 ? 3 : 1)} ${f.unit}`,
      f.max !== undefined ? `≤ ${f.max}` : f.min !== undefined ? `≥ ${f.min}` : '-',
      f.max !== undefined
        ? f.value <= f.max
          ? 'met'
          : 'MISSED'
        : f.min !== undefined
          ? f.value >= f.min
            ? 'met'
            : 'MISSED'
          : '',
      f.note ?? '',
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}
