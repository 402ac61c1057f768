import { TIERS } from '../storage/tiered-store';
import { formatMoney } from '../cost/prices';
import type { CostReport, UsageLine } from '../cost/run-cost';
import { esc } from './svg-charts';

const mb = (n: number) => (n / 1e6).toFixed(2);
const perTier = (bytes: Record<string, number>) =>
  TIERS.filter((t) => bytes[t] > 0)
    .map((t) => `${t} ${mb(bytes[t])}`)
    .join(', ') || '0';

function row(line: UsageLine, currency: string, strong = false): string {
  const cells = [
    esc(line.name),
    String(line.attempts),
    line.cpuSeconds.toFixed(2),
    line.wallSeconds.toFixed(2),
    line.gpuSeconds.toFixed(2),
    perTier(line.bytesRead),
    perTier(line.bytesWritten),
    String(line.s3Requests),
    esc(formatMoney(line.cost.total, currency)),
  ];
  const tag = strong ? 'th' : 'td';
  return `<tr>${cells.map((c) => `<${tag}>${c}</${tag}>`).join('')}</tr>`;
}

/** The report's cost section: each run per stage and in total, its storage per month, each model version. */
export function costHtml(cost: CostReport): string {
  const c = cost.currency;
  const head =
    '<tr><th>stage</th><th>attempts</th><th>CPU s</th><th>wall s</th><th>GPU s</th><th>read MB</th>' +
    '<th>written MB</th><th>S3 requests</th><th>cost</th></tr>';
  const runs = cost.runs
    .map(
      (r) =>
        `<h3>${esc(`${r.workflowId} (${r.kind})`)}</h3><table><thead>${head}</thead><tbody>` +
        r.stages.map((s) => row(s, c)).join('') +
        row(r.total, c, true) +
        `</tbody></table><p>Storage left: ${esc(perTier(r.storage.bytes))} MB, ${esc(formatMoney(r.storage.perMonth, c))} per month.</p>`,
    )
    .join('');
  const models = cost.models.length
    ? '<h3>Model versions</h3><table><thead><tr><th>version</th><th>training</th><th>dataset share</th><th>total</th></tr></thead><tbody>' +
      cost.models
        .map(
          (m) =>
            `<tr><td>${esc(`${m.model}@${m.version}`)}</td><td>${esc(formatMoney(m.training, c))}</td>` +
            `<td>${esc(`${formatMoney(m.datasetShare.cost, c)} (1/${m.datasetShare.versions})`)}</td><td>${esc(formatMoney(m.total, c))}</td></tr>`,
        )
        .join('') +
      '</tbody></table>'
    : '';
  const note = cost.priced
    ? ''
    : '<p>No price table is configured (FLYWHEEL_PRICES): usage is measured, amounts are 0.</p>';
  return (
    `<section class="cost" id="cost"><h2>Cost</h2>${note}${runs}${models}` +
    `<p>Total: ${esc(formatMoney(cost.total.cost.total, c))}; storage ${esc(formatMoney(cost.storagePerMonth, c))} per month.</p></section>`
  );
}
