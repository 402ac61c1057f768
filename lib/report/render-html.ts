import { costHtml } from './cost';
import type { ClusterSizes, PipelineSection, PromotionDecision, RunReport, TrainingSection } from './model';
import {
  checkpointTimelineChart,
  COLORS,
  comparisonChart,
  esc,
  formatNumber,
  funnelChart,
  histogramChart,
  lineChart,
  type LineSeries,
} from './svg-charts';

/** Histogram bins of duplicate-cluster sizes: one per size up to 10, then doubling ranges (11–16, 17–32, ...). */
export function clusterBins(sizes: Record<number, number>): { label: string; value: number }[] {
  const entries = Object.entries(sizes).map(([size, n]) => [Number(size), n] as const);
  if (entries.length === 0) return [];
  const max = Math.max(...entries.map(([s]) => s));
  const bins: { label: string; lo: number; hi: number; value: number }[] = [];
  for (let s = 2; s <= Math.min(max, 10); s++) bins.push({ label: String(s), lo: s, hi: s, value: 0 });
  for (let lo = 11, hi = 16; lo <= max; lo = hi + 1, hi *= 2) bins.push({ label: `${lo}–${hi}`, lo, hi, value: 0 });
  for (const [size, n] of entries) {
    const bin = bins.find((b) => size >= b.lo && size <= b.hi);
    if (bin) bin.value += n;
  }
  return bins.map(({ label, value }) => ({ label, value }));
}

/** The version a decision names: a string, or an object's `version` (with its model when it has one). */
function versionLabel(side: unknown): string | undefined {
  if (side === undefined || side === null) return undefined;
  if (typeof side === 'string' || typeof side === 'number') return String(side);
  const o = side as { version?: unknown; model?: unknown; name?: unknown };
  if (o.version !== undefined) return String(o.version);
  return JSON.stringify(side);
}

const numbersOf = (v: unknown): Record<string, number> =>
  v && typeof v === 'object'
    ? Object.fromEntries(Object.entries(v).filter((e): e is [string, number] => typeof e[1] === 'number'))
    : {};

/**
 * A decision's metrics as rows of champion and challenger values. Accepts `{champion: {...}, challenger: {...}}`,
 * `{name: {champion, challenger}}`, `{name: number}` (the challenger's), or metrics inside the two sides.
 */
export function promotionRows(d: PromotionDecision): { name: string; champion?: number; challenger?: number }[] {
  const rows = new Map<string, { name: string; champion?: number; challenger?: number }>();
  const put = (name: string, who: 'champion' | 'challenger', value: number) =>
    rows.set(name, { ...(rows.get(name) ?? { name }), [who]: value });
  const m = d.metrics as Record<string, unknown> | undefined;
  if (m && typeof m === 'object') {
    if (typeof m.champion === 'object' || typeof m.challenger === 'object') {
      for (const [k, v] of Object.entries(numbersOf(m.champion))) put(k, 'champion', v);
      for (const [k, v] of Object.entries(numbersOf(m.challenger))) put(k, 'challenger', v);
    } else {
      for (const [name, v] of Object.entries(m)) {
        if (typeof v === 'number') put(name, 'challenger', v);
        else if (v && typeof v === 'object') {
          const pair = v as { champion?: unknown; challenger?: unknown };
          if (typeof pair.champion === 'number') put(name, 'champion', pair.champion);
          if (typeof pair.challenger === 'number') put(name, 'challenger', pair.challenger);
        }
      }
    }
  }
  for (const who of ['champion', 'challenger'] as const) {
    const side = d[who] as { metrics?: unknown } | undefined;
    if (side && typeof side === 'object')
      for (const [k, v] of Object.entries(numbersOf(side.metrics)))
        if (rows.get(k)?.[who] === undefined) put(k, who, v);
  }
  return [...rows.values()];
}

const card = (label: string, value: string) =>
  `<div class="card"><div class="value">${esc(value)}</div><div class="label">${esc(label)}</div></div>`;

const figure = (chart: string, caption: string) => `<figure>${chart}<figcaption>${esc(caption)}</figcaption></figure>`;

function clusterFigure(c: ClusterSizes): string {
  const bins = clusterBins(c.sizes);
  const clusters = bins.reduce((n, b) => n + b.value, 0);
  const method = c.method === 'exact' ? 'Exact' : 'Near-duplicate (MinHash LSH)';
  const caption =
    `${method} dedup: ${formatNumber(c.removed)} of ${formatNumber(c.documents)} documents removed, from ` +
    `${formatNumber(clusters)} clusters of 2 or more; every other document is unique.`;
  if (bins.length === 0)
    return `<figure class="empty" data-chart="clusters-${c.method}"><p>${esc(caption)}</p></figure>`;
  return figure(
    histogramChart(`clusters-${c.method}`, `${method} dedup cluster sizes`, bins, {
      x: 'cluster size (documents)',
      y: 'clusters',
    }),
    caption,
  );
}

function pipelineHtml(p: PipelineSection): string {
  const title = `Data pipeline: ${p.dataset}/${p.version}`;
  const funnel = p.funnel.length
    ? figure(
        funnelChart(p.funnel),
        'Records read, what each rule dropped (red) and what each stage kept (blue), down to the dataset.',
      )
    : '<p>No stage has reported yet.</p>';
  return (
    `<section class="pipeline" id="${esc(`pipeline-${p.dataset}-${p.version}`)}"><h2>${esc(title)}</h2>` +
    `<p class="meta">${p.workflowId ? `workflow ${esc(p.workflowId)} · ` : ''}spec digest ${esc(p.specDigest.slice(0, 16))}` +
    `${p.manifestUri ? ` · ${esc(p.manifestUri)}` : ''}${p.reused ? ' · reused an earlier run’s output' : ''}</p>` +
    `<div class="cards">${card('documents', formatNumber(p.documents))}${card('tokens', formatNumber(p.tokens))}` +
    `${card('train shards', formatNumber(p.shards.train))}${card('validation shards', formatNumber(p.shards.validation))}</div>` +
    `<h3>Funnel</h3>${funnel}` +
    `<h3>Duplicate clusters</h3>${p.clusters.length ? p.clusters.map(clusterFigure).join('') : '<p>Dedup outputs are not available for this run.</p>'}` +
    '</section>'
  );
}

function lossSeries(t: TrainingSection): LineSeries[] {
  const train: [number, number][] = t.evaluations.map((e) => [e.step, e.loss]);
  const validation: [number, number][] = t.evaluations.map((e) => [e.step, e.valLoss]);
  if (t.firstLoss !== undefined && (train[0]?.[0] ?? Infinity) > 1) train.unshift([1, t.firstLoss]);
  if (t.evaluations.length === 0) {
    if (t.loss !== undefined) train.push([t.step, t.loss]);
    if (t.valLoss !== undefined) validation.push([t.step, t.valLoss]);
  }
  return [
    { name: 'training loss', color: COLORS.train, points: train.filter(([, v]) => Number.isFinite(v)) },
    {
      name: 'validation loss',
      color: COLORS.validation,
      points: validation.filter(([, v]) => Number.isFinite(v)),
      dashed: true,
    },
  ].filter((s) => s.points.length > 0);
}

function trainingHtml(t: TrainingSection): string {
  const series = lossSeries(t);
  const curves = series.length
    ? figure(
        lineChart('loss', 'Training and validation loss', series, { x: 'step', y: 'loss (nats/token)' }),
        'Training loss at each evaluation (and the first step) and validation loss on the held-out split.',
      )
    : '<p>No loss recorded yet.</p>';
  const timeline =
    t.written.length || t.retained.length
      ? figure(
          checkpointTimelineChart(t.written, t.retained),
          'Every checkpoint written (hollow: since deleted by retention) and the tiers holding a committed copy now.',
        )
      : '<p>No checkpoint written yet.</p>';
  const evaluations = t.evaluations.length
    ? `<table class="evaluations"><thead><tr><th>step</th><th>epoch</th><th>training loss</th><th>validation loss</th><th>perplexity</th></tr></thead><tbody>` +
      t.evaluations
        .map(
          (e) =>
            `<tr><td>${e.step}</td><td>${e.epoch}</td><td>${formatNumber(e.loss)}</td><td>${formatNumber(e.valLoss)}</td><td>${formatNumber(e.perplexity)}</td></tr>`,
        )
        .join('') +
      '</tbody></table>'
    : '';
  return (
    `<section class="training" id="${esc(`train-${t.run}`)}"><h2>${esc(`Training run: ${t.run}`)}</h2>` +
    `<p class="meta">${t.workflowId ? `workflow ${esc(t.workflowId)} · ` : ''}${t.dataset ? `dataset ${esc(t.dataset)}` : ''}` +
    `${t.model ? ` · registered ${esc(t.model.name)} ${esc(t.model.version)}` : ''}${t.stoppedEarly ? ' · stopped early' : ''}</p>` +
    `<div class="cards">${card('steps', `${formatNumber(t.step)} / ${formatNumber(t.steps)}`)}` +
    `${card('validation loss', t.valLoss === undefined ? '–' : formatNumber(t.valLoss))}` +
    `${card('perplexity', t.perplexity === undefined ? '–' : formatNumber(t.perplexity))}` +
    `${card('tokens/s', t.tokensPerSecond === undefined ? '–' : formatNumber(Math.round(t.tokensPerSecond)))}</div>` +
    `<h3>Loss</h3>${curves}${evaluations}<h3>Checkpoints</h3>${timeline}</section>`
  );
}

/** Facts beside the two sides' metrics (feedback events, new documents, the dataset): shown as a line. */
function promotionFacts(d: PromotionDecision): string {
  const m = d.metrics;
  if (!m || typeof m !== 'object') return '';
  const facts = Object.entries(m as Record<string, unknown>).filter(
    ([k, v]) => k !== 'champion' && k !== 'challenger' && (typeof v === 'string' || typeof v === 'number'),
  );
  const sided = 'champion' in m || 'challenger' in m;
  return sided && facts.length
    ? `<p class="meta">${facts.map(([k, v]) => `${esc(k)} ${esc(typeof v === 'number' ? formatNumber(v) : v)}`).join(' · ')}</p>`
    : '';
}

function promotionHtml(d: PromotionDecision): string {
  const rows = promotionRows(d);
  const promoted = /^promot/i.test(d.decision);
  return (
    `<section class="promotion" id="${esc(`promotion-${d.id}`)}"><h2>${esc(`Champion vs challenger: ${d.model}`)}</h2>` +
    `<p class="meta">${esc(d.at)} · decision ${esc(d.id)}</p>` +
    `<p><span class="badge ${promoted ? 'promoted' : 'kept'}">${esc(d.decision)}</span> ${esc(d.reason)}</p>` +
    promotionFacts(d) +
    `<table><thead><tr><th></th><th>champion ${esc(versionLabel(d.champion) ?? '(none)')}</th><th>challenger ${esc(versionLabel(d.challenger) ?? '?')}</th></tr></thead><tbody>` +
    rows
      .map(
        (r) =>
          `<tr><td>${esc(r.name)}</td><td>${r.champion === undefined ? '–' : formatNumber(r.champion)}</td><td>${r.challenger === undefined ? '–' : formatNumber(r.challenger)}</td></tr>`,
      )
      .join('') +
    '</tbody></table>' +
    (rows.length
      ? figure(comparisonChart(rows), 'Each metric on its own scale; lower loss and perplexity are better.')
      : '') +
    '</section>'
  );
}

const STYLE = `
body{margin:0;background:#f9fafb;color:#111827;font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif}
main{max-width:820px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:0 0 4px}h3{font-size:15px;margin:18px 0 6px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin:16px 0}
.meta{color:#6b7280;margin:0 0 10px;word-break:break-all}
.cards{display:flex;gap:10px;flex-wrap:wrap}.card{border:1px solid #e5e7eb;border-radius:6px;padding:8px 12px;min-width:120px}
.card .value{font-size:18px;font-weight:600}.card .label{color:#6b7280;font-size:12px}
figure{margin:8px 0}figcaption{color:#6b7280;font-size:12px}svg.chart{max-width:100%;height:auto;display:block}
table{border-collapse:collapse;margin:8px 0}td,th{border-bottom:1px solid #e5e7eb;padding:3px 10px;text-align:right}
td:first-child,th:first-child{text-align:left}.badge{border-radius:4px;padding:2px 8px;color:#fff;font-weight:600}
.badge.promoted{background:#16a34a}.badge.kept{background:#6b7280}.status-FAILED,.status-TERMINATED,.status-TIMED_OUT{color:#dc2626}
.status-COMPLETED{color:#16a34a}td.when{white-space:nowrap}.notes li{color:#92400e}a{color:#2563eb}
`;

/** The report as one HTML file: inline CSS and SVG, no script, nothing fetched. */
export function renderReportHtml(report: RunReport): string {
  const workflows = report.workflows.length
    ? `<section id="workflows"><h2>Workflows</h2><table><thead><tr><th>workflow</th><th>type</th><th>status</th><th>started</th><th>seconds</th></tr></thead><tbody>` +
      report.workflows
        .map(
          (w) =>
            `<tr><td>${w.uiUrl ? `<a href="${esc(w.uiUrl)}">${esc(w.workflowId)}</a>` : esc(w.workflowId)}</td><td>${esc(w.type)}</td>` +
            `<td class="status-${esc(w.status)}">${esc(w.status)}${w.failure ? `: ${esc(w.failure)}` : ''}</td><td class="when">${esc(w.startTime.replace('T', ' ').slice(0, 19))}</td><td>${w.seconds.toFixed(1)}</td></tr>`,
        )
        .join('') +
      '</tbody></table></section>'
    : '';
  const notes = report.notes.length
    ? `<section class="notes"><h2>Notes</h2><ul>${report.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></section>`
    : '';
  return (
    '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">' +
    '<meta name="viewport" content="width=device-width, initial-scale=1">' +
    `<title>${esc(report.title)}</title><style>${STYLE}</style></head><body><main>` +
    `<header><h1>${esc(report.title)}</h1><p class="meta">Flywheel run report · generated ${esc(report.generatedAt)}</p></header>` +
    workflows +
    report.pipelines.map(pipelineHtml).join('') +
    report.trainings.map(trainingHtml).join('') +
    report.promotions.map(promotionHtml).join('') +
    (report.cost ? costHtml(report.cost) : '') +
    notes +
    '</main></body></html>\n'
  );
}
