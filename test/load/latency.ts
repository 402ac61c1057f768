/** One latency metric of the run: how many samples, and their median, 99th percentile and worst, in ms. */
export interface LatencySummary {
  metric: string;
  count: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

/** Nearest-rank percentile of ascending `sorted`. */
function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

export function summarizeLatencies(metric: string, samplesMs: readonly number[]): LatencySummary {
  if (samplesMs.length === 0) return { metric, count: 0, p50Ms: null, p99Ms: null, maxMs: null };
  const sorted = [...samplesMs].sort((a, b) => a - b);
  const round = (ms: number) => Math.round(ms * 10) / 10;
  return {
    metric,
    count: sorted.length,
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted[sorted.length - 1]),
  };
}

/** The summaries as a markdown table, milliseconds shown as they read best (ms below 10 s, else s). */
export function formatLatencyTable(rows: readonly LatencySummary[]): string {
  const time = (ms: number | null) =>
    ms === null ? '-' : ms < 10_000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(1)} s`;
  const cells = [
    ['metric', 'count', 'p50', 'p99', 'max'],
    ...rows.map((r) => [r.metric, String(r.count), time(r.p50Ms), time(r.p99Ms), time(r.maxMs)]),
  ];
  const widths = cells[0].map((_, c) => Math.max(...cells.map((row) => row[c].length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join(' | ')} |`;
  return [line(cells[0]), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.slice(1).map(line)].join(
    '\n',
  );
}
