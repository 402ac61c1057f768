/*
 * The report's charts, drawn as inline SVG by hand: the report must be one self-contained HTML file that opens
 * offline, with no script or stylesheet to fetch, and five small static chart kinds do not justify bundling a
 * charting library's JavaScript into every report.
 */

export const COLORS = {
  total: '#2563eb',
  drop: '#dc2626',
  train: '#2563eb',
  validation: '#ea580c',
  hot: '#dc2626',
  warm: '#d97706',
  cold: '#0284c7',
  deleted: '#9ca3af',
  champion: '#9ca3af',
  challenger: '#16a34a',
  axis: '#6b7280',
  grid: '#e5e7eb',
  text: '#111827',
} as const;

/** Escapes text for HTML and SVG content and attribute values. */
export function esc(value: unknown): string {
  return String(value).replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  );
}

/** 12,345 / 1.23 / 0.0123: counts with separators, fractions with three significant digits. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return '–';
  if (Number.isInteger(n)) return n.toLocaleString('en-US');
  const abs = Math.abs(n);
  return abs >= 100 ? n.toFixed(0) : abs >= 1 ? n.toFixed(2) : n.toPrecision(3);
}

/** About `count` round tick values covering [min, max] (steps of 1, 2 or 5 × 10^k). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

interface Frame {
  width: number;
  height: number;
  left: number;
  right: number;
  top: number;
  bottom: number;
}

const svgOpen = (name: string, title: string, f: { width: number; height: number }) =>
  `<svg class="chart" data-chart="${esc(name)}" role="img" aria-label="${esc(title)}" viewBox="0 0 ${f.width} ${f.height}" ` +
  `width="${f.width}" height="${f.height}" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12">` +
  `<title>${esc(title)}</title>`;

const text = (x: number, y: number, content: string, attrs = '') =>
  `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" fill="${COLORS.text}" ${attrs}>${esc(content)}</text>`;

/** Axes with ticks and grid lines for a plot area; scales map data values to pixels. */
function axes(
  f: Frame,
  x: { ticks: number[]; scale: (v: number) => number; label: string; format?: (v: number) => string },
  y: { ticks: number[]; scale: (v: number) => number; label: string; format?: (v: number) => string },
): string {
  const parts: string[] = [];
  const bottom = f.height - f.bottom;
  for (const t of y.ticks) {
    const py = y.scale(t);
    parts.push(
      `<line x1="${f.left}" x2="${f.width - f.right}" y1="${py.toFixed(1)}" y2="${py.toFixed(1)}" stroke="${COLORS.grid}"/>`,
      text(f.left - 6, py + 4, (y.format ?? formatNumber)(t), 'text-anchor="end"'),
    );
  }
  for (const t of x.ticks) {
    const px = x.scale(t);
    parts.push(
      `<line x1="${px.toFixed(1)}" x2="${px.toFixed(1)}" y1="${bottom}" y2="${bottom + 4}" stroke="${COLORS.axis}"/>`,
      text(px, bottom + 17, (x.format ?? formatNumber)(t), 'text-anchor="middle"'),
    );
  }
  parts.push(
    `<line x1="${f.left}" x2="${f.width - f.right}" y1="${bottom}" y2="${bottom}" stroke="${COLORS.axis}"/>`,
    `<line x1="${f.left}" x2="${f.left}" y1="${f.top}" y2="${bottom}" stroke="${COLORS.axis}"/>`,
    text((f.left + f.width - f.right) / 2, f.height - 6, x.label, 'text-anchor="middle"'),
    text(14, (f.top + bottom) / 2, y.label, `text-anchor="middle" transform="rotate(-90 14 ${(f.top + bottom) / 2})"`),
  );
  return parts.join('');
}

/** The pipeline funnel as a waterfall: running totals in blue, each rule's drop in red where it cut the total. */
export function funnelChart(rows: readonly { label: string; kind: 'total' | 'drop'; count: number }[]): string {
  const rowHeight = 24;
  const f = { width: 760, height: rows.length * rowHeight + 16, left: 240, right: 70 };
  const max = Math.max(1, ...rows.map((r) => r.count));
  const scale = (v: number) => f.left + ((f.width - f.left - f.right) * v) / max;
  let running = max;
  const parts = rows.map((r, i) => {
    const y = 8 + i * rowHeight;
    let from = 0;
    let to = r.count;
    if (r.kind === 'total') running = r.count;
    else {
      from = Math.max(0, running - r.count);
      to = running;
      running = from;
    }
    const x = scale(from);
    const width = Math.max(r.count > 0 ? 1.5 : 0, scale(to) - x);
    const color = r.kind === 'total' ? COLORS.total : COLORS.drop;
    return (
      `<g class="funnel-row ${r.kind}">` +
      text(f.left - 8, y + 15, r.kind === 'drop' ? `− ${r.label}` : r.label, 'text-anchor="end"') +
      `<rect x="${x.toFixed(1)}" y="${y + 3}" width="${width.toFixed(1)}" height="${rowHeight - 6}" fill="${color}" rx="2"/>` +
      text(scale(to) + 6, y + 15, formatNumber(r.count), r.kind === 'drop' ? `fill="${COLORS.drop}"` : '') +
      '</g>'
    );
  });
  return svgOpen('funnel', 'Pipeline funnel', f) + parts.join('') + '</svg>';
}

/** Vertical bars over labelled bins (the cluster-size histogram). */
export function histogramChart(
  name: string,
  title: string,
  bins: readonly { label: string; value: number }[],
  labels: { x: string; y: string },
): string {
  const f: Frame = { width: 560, height: 220, left: 56, right: 16, top: 16, bottom: 44 };
  const plotWidth = f.width - f.left - f.right;
  const max = Math.max(1, ...bins.map((b) => b.value));
  const yTicks = niceTicks(0, max, 4).filter((t) => Number.isInteger(t));
  const top = Math.max(max, yTicks.at(-1) ?? max);
  const y = (v: number) => f.height - f.bottom - ((f.height - f.top - f.bottom) * v) / top;
  // At most 72 px a bin: two bins should look like two counts, not like a wall.
  const slot = Math.min(72, plotWidth / Math.max(1, bins.length));
  const start = f.left + (plotWidth - slot * bins.length) / 2;
  const bars = bins.map((b, i) => {
    const x = start + i * slot + slot * 0.15;
    const py = y(b.value);
    return (
      `<rect class="bar" x="${x.toFixed(1)}" y="${py.toFixed(1)}" width="${(slot * 0.7).toFixed(1)}" ` +
      `height="${(f.height - f.bottom - py).toFixed(1)}" fill="${COLORS.total}" rx="2"><title>${esc(`${b.label}: ${b.value}`)}</title></rect>` +
      text(x + slot * 0.35, py - 4, formatNumber(b.value), 'text-anchor="middle"') +
      text(start + i * slot + slot / 2, f.height - f.bottom + 17, b.label, 'text-anchor="middle"')
    );
  });
  const noXTicks = { ticks: [], scale: (v: number) => v, label: labels.x };
  return (
    svgOpen(name, title, f) + axes(f, noXTicks, { ticks: yTicks, scale: y, label: labels.y }) + bars.join('') + '</svg>'
  );
}

export interface LineSeries {
  name: string;
  color: string;
  points: readonly [number, number][];
  dashed?: boolean;
}

/** Lines over a shared numeric x axis (the loss curves), with a legend. */
export function lineChart(
  name: string,
  title: string,
  series: readonly LineSeries[],
  labels: { x: string; y: string },
): string {
  const f: Frame = { width: 760, height: 300, left: 60, right: 130, top: 16, bottom: 44 };
  const all = series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const xMin = Math.min(0, ...xs);
  const xMax = Math.max(xMin + 1, ...xs);
  const pad = (Math.max(...ys) - Math.min(...ys)) * 0.08 || 0.1;
  const yMin = Math.max(0, Math.min(...ys) - pad);
  const yMax = Math.max(...ys) + pad;
  const x = (v: number) => f.left + ((f.width - f.left - f.right) * (v - xMin)) / (xMax - xMin);
  const y = (v: number) => f.height - f.bottom - ((f.height - f.top - f.bottom) * (v - yMin)) / (yMax - yMin);
  const lines = series.map((s, i) => {
    const path = s.points
      .map(([px, py], j) => `${j === 0 ? 'M' : 'L'}${x(px).toFixed(1)},${y(py).toFixed(1)}`)
      .join(' ');
    const dots = s.points
      .map(
        ([px, py]) =>
          `<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="3" fill="${s.color}"><title>${esc(`${s.name} at ${px}: ${formatNumber(py)}`)}</title></circle>`,
      )
      .join('');
    const ly = f.top + 10 + i * 20;
    const lx = f.width - f.right + 12;
    return (
      `<g class="series" data-series="${esc(s.name)}">` +
      `<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>` +
      dots +
      `<line x1="${lx}" x2="${lx + 18}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"/>` +
      text(lx + 24, ly + 4, s.name) +
      '</g>'
    );
  });
  return (
    svgOpen(name, title, f) +
    axes(
      f,
      { ticks: niceTicks(xMin, xMax, 6), scale: x, label: labels.x },
      { ticks: niceTicks(yMin, yMax, 5).filter((t) => t >= yMin && t <= yMax), scale: y, label: labels.y },
    ) +
    lines.join('') +
    '</svg>'
  );
}

/**
 * Checkpoints along the steps, one row per tier: a filled mark where the tier holds a committed copy now, and in
 * the first row every step written, hollow once retention deleted it everywhere.
 */
export function checkpointTimelineChart(
  written: readonly number[],
  retained: readonly { step: number; tiers: readonly string[] }[],
  tiers: readonly ('hot' | 'warm' | 'cold')[] = ['hot', 'warm', 'cold'],
): string {
  const f: Frame = { width: 760, height: 60 + (tiers.length + 1) * 34, left: 80, right: 24, top: 12, bottom: 44 };
  const steps = [...new Set([...written, ...retained.map((r) => r.step)])].sort((a, b) => a - b);
  const xMax = Math.max(1, ...steps);
  const x = (v: number) => f.left + ((f.width - f.left - f.right) * v) / xMax;
  const rowY = (i: number) => f.top + 16 + i * 34;
  const kept = new Map(retained.map((r) => [r.step, new Set(r.tiers)]));
  const rows = ['written', ...tiers].map((row, i) => {
    const y = rowY(i);
    const color = row === 'written' ? COLORS.total : COLORS[row as 'hot' | 'warm' | 'cold'];
    const marks = (row === 'written' ? steps : steps.filter((s) => kept.get(s)?.has(row))).map((s) => {
      const alive = kept.has(s);
      const fill = row === 'written' && !alive ? 'none' : color;
      const stroke = row === 'written' && !alive ? COLORS.deleted : color;
      const label =
        row === 'written'
          ? `step ${s}: ${alive ? `kept in ${[...kept.get(s)!].join(', ')}` : 'deleted by retention'}`
          : `step ${s} in ${row}`;
      return `<circle class="checkpoint ${esc(row)}${alive ? '' : ' deleted'}" cx="${x(s).toFixed(1)}" cy="${y}" r="6" fill="${fill}" stroke="${stroke}" stroke-width="2"><title>${esc(label)}</title></circle>`;
    });
    return (
      `<g class="tier-row" data-tier="${esc(row)}">` +
      `<line x1="${f.left}" x2="${f.width - f.right}" y1="${y}" y2="${y}" stroke="${COLORS.grid}"/>` +
      text(f.left - 10, y + 4, row, 'text-anchor="end"') +
      marks.join('') +
      '</g>'
    );
  });
  const bottom = f.height - f.bottom;
  const ticks = niceTicks(0, xMax, 8)
    .map((t) => text(x(t), bottom + 17, formatNumber(t), 'text-anchor="middle"'))
    .join('');
  return (
    svgOpen('checkpoints', 'Checkpoint timeline across tiers', f) +
    rows.join('') +
    `<line x1="${f.left}" x2="${f.width - f.right}" y1="${bottom}" y2="${bottom}" stroke="${COLORS.axis}"/>` +
    ticks +
    text((f.left + f.width - f.right) / 2, f.height - 6, 'step', 'text-anchor="middle"') +
    '</svg>'
  );
}

/** Champion and challenger side by side per metric, each metric on its own scale (they differ in units). */
export function comparisonChart(rows: readonly { name: string; champion?: number; challenger?: number }[]): string {
  const group = 44;
  const f = { width: 760, height: rows.length * group + 40, left: 150, right: 90 };
  const plot = f.width - f.left - f.right;
  const parts = rows.map((r, i) => {
    const max = Math.max(Number.EPSILON, Math.abs(r.champion ?? 0), Math.abs(r.challenger ?? 0));
    const y = 8 + i * group;
    const bar = (value: number | undefined, dy: number, color: string, who: string) =>
      value === undefined
        ? text(f.left + 4, y + dy + 11, `no ${who}`, `fill="${COLORS.axis}"`)
        : `<rect class="bar ${who}" x="${f.left}" y="${y + dy}" width="${((plot * Math.abs(value)) / max).toFixed(1)}" height="14" fill="${color}" rx="2"><title>${esc(`${who} ${r.name}: ${value}`)}</title></rect>` +
          text(f.left + (plot * Math.abs(value)) / max + 6, y + dy + 11, formatNumber(value));
    return (
      `<g class="metric" data-metric="${esc(r.name)}">` +
      text(f.left - 8, y + 20, r.name, 'text-anchor="end"') +
      bar(r.champion, 2, COLORS.champion, 'champion') +
      bar(r.challenger, 19, COLORS.challenger, 'challenger') +
      '</g>'
    );
  });
  const ly = f.height - 14;
  const legend =
    `<rect x="${f.left}" y="${ly - 10}" width="12" height="12" fill="${COLORS.champion}"/>` +
    text(f.left + 18, ly, 'champion') +
    `<rect x="${f.left + 100}" y="${ly - 10}" width="12" height="12" fill="${COLORS.challenger}"/>` +
    text(f.left + 118, ly, 'challenger');
  return svgOpen('promotion', 'Champion and challenger metrics', f) + parts.join('') + legend + '</svg>';
}
