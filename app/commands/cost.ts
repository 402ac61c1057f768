import type { Command } from 'commander';
import type { Client } from '@temporalio/client';
import { loadConfig, type FlywheelConfig } from '../../lib/config';
import {
  bytesLeft,
  formatMoney,
  NO_PRICES,
  readWorkflowUsage,
  runUsage,
  storagePerMonth,
  usageLine,
  type CostReport,
  type ModelVersionCost,
  type PriceTable,
  type RunCost,
  type UsageLine,
} from '../../lib/cost';
import { stepStage } from '../../lib/pipeline/step-attributes';
import { ModelRegistry } from '../../lib/registry/model-registry';
import { TIERS, tieredStoreFromConfig, type TieredStore } from '../../lib/storage';
import { inspectWorkflowTree } from './report';
import type { WorkflowStatus } from './status';
import { formatBytes } from './storage';

const KIND: Record<string, RunCost['kind']> = {
  dataPipeline: 'pipeline',
  trainingRun: 'training',
  flywheelRun: 'flywheel',
};

/** `warm://datasets/<dataset>/<version>/manifest.json` → the pipeline workflow that built it. */
export function datasetPipelineId(manifestUri: string): string | undefined {
  const match = /^[a-z]+:\/\/datasets\/([^/]+)\/([^/]+)\/manifest\.json$/.exec(manifestUri);
  return match ? `pipeline-${match[1]}-${match[2]}` : undefined;
}

/** What a workflow leaves in the tiers: a dataset and its pipeline's folders; a run's checkpoints and its version. */
async function storageOf(store: TieredStore, s: WorkflowStatus, registry: ModelRegistry) {
  const r = (s.result ?? {}) as {
    dataset?: string;
    version?: string;
    manifest?: { uri?: string };
    run?: string;
    model?: { name: string; version: string };
  };
  if (s.type === 'dataPipeline' && r.dataset && r.version)
    return bytesLeft(store, {
      manifests: r.manifest?.uri ? [r.manifest.uri] : [],
      prefixes: TIERS.map((t) => `${t}://pipelines/${r.dataset}/${r.version}/`),
    });
  if (s.type === 'trainingRun' && r.run) {
    const version = r.model ? await registry.get(r.model.name, r.model.version).catch(() => undefined) : undefined;
    return bytesLeft(store, {
      manifests: version ? [version.manifest] : [],
      prefixes: TIERS.map((t) => `${t}://runs/${r.run}/`),
    });
  }
  return { hot: 0, warm: 0, cold: 0 };
}

/** The cost of workflows (a flywheel round brings in its children): per stage, per run, per model version. */
export async function gatherCostReport(opts: {
  client: Client;
  store: TieredStore;
  workflowIds: string[];
  prices?: PriceTable;
}): Promise<CostReport> {
  const { client, store } = opts;
  const prices = opts.prices ?? NO_PRICES;
  const registry = new ModelRegistry(store);
  const statuses = await inspectWorkflowTree(client, opts.workflowIds, { progress: false });
  const runs: RunCost[] = [];
  const everything = [];
  for (const s of statuses) {
    const { attempts, unreadable } = await readWorkflowUsage(store, s.workflowId);
    everything.push(...attempts);
    const { stages, total } = runUsage(attempts, prices, (type) => stepStage(type) ?? type);
    const bytes = await storageOf(store, s, registry);
    runs.push({
      workflowId: s.workflowId,
      kind: KIND[s.type] ?? 'other',
      stages,
      total,
      storage: { bytes, perMonth: storagePerMonth(bytes, prices) },
      unreadable,
    });
  }
  const models: ModelVersionCost[] = [];
  const registered = await registry.list().catch(() => []);
  for (const s of statuses) {
    const model = (s.result as { model?: { name: string; version: string } } | undefined)?.model;
    if (s.type !== 'trainingRun' || !model) continue;
    const version = registered.find((v) => v.model === model.name && v.version === model.version);
    if (!version) continue;
    const training = runs.find((r) => r.workflowId === s.workflowId)!.total.cost.total;
    const datasetWorkflowId = datasetPipelineId(version.dataset);
    const dataset = datasetWorkflowId ? await readWorkflowUsage(store, datasetWorkflowId) : undefined;
    const datasetCost = dataset ? usageLine('dataset', dataset.attempts, prices).cost.total : 0;
    const versions = Math.max(1, registered.filter((v) => v.dataset === version.dataset).length);
    const share = datasetCost / versions;
    models.push({
      model: model.name,
      version: model.version,
      run: version.run,
      dataset: version.dataset,
      ...(dataset?.attempts.length ? { datasetWorkflowId } : {}),
      training,
      datasetShare: { versions, cost: share },
      total: training + share,
    });
  }
  return {
    currency: prices.currency,
    priced: opts.prices !== undefined,
    runs,
    models,
    total: usageLine('total', everything, prices),
    storagePerMonth: runs.reduce((sum, r) => sum + r.storage.perMonth, 0),
  };
}

const seconds = (n: number) => (n < 100 ? `${n.toFixed(2)} s` : `${(n / 3600).toFixed(3)} h`);
const tierBytes = (b: Record<string, number>) =>
  TIERS.filter((t) => b[t] > 0)
    .map((t) => `${t} ${formatBytes(b[t])}`)
    .join(', ') || '0 B';

function describeLine(line: UsageLine, currency: string): string {
  return (
    `${line.name.padEnd(14)} ${String(line.attempts).padStart(4)} att  cpu ${seconds(line.cpuSeconds).padStart(9)}  ` +
    `wall ${seconds(line.wallSeconds).padStart(9)}  gpu ${seconds(line.gpuSeconds).padStart(9)}  ` +
    `read ${tierBytes(line.bytesRead)}  written ${tierBytes(line.bytesWritten)}  s3 ${line.s3Requests} req  ` +
    formatMoney(line.cost.total, currency)
  );
}

/** The report as a person reads it: per run its stages and total, what it stores per month, then model versions. */
export function describeCost(report: CostReport): string[] {
  const c = report.currency;
  const lines: string[] = [];
  if (!report.priced) lines.push('no price table (FLYWHEEL_PRICES or FLYWHEEL_PRICES_FILE): usage only, amounts 0');
  for (const run of report.runs) {
    lines.push(`${run.workflowId} (${run.kind})`);
    for (const stage of run.stages) lines.push(`  ${describeLine(stage, c)}`);
    lines.push(`  ${describeLine(run.total, c)}`);
    lines.push(`  storage        ${tierBytes(run.storage.bytes)}: ${formatMoney(run.storage.perMonth, c)} per month`);
    if (run.unreadable.length) lines.push(`  ${run.unreadable.length} usage records unreadable: ${run.unreadable[0]}…`);
  }
  for (const m of report.models)
    lines.push(
      `model ${m.model}@${m.version}: training ${formatMoney(m.training, c)} + dataset share ${formatMoney(m.datasetShare.cost, c)} ` +
        `(1/${m.datasetShare.versions} of ${m.datasetWorkflowId ?? m.dataset}) = ${formatMoney(m.total, c)}`,
    );
  lines.push(
    `total: ${formatMoney(report.total.cost.total, c)} (cpu ${seconds(report.total.cpuSeconds)}, gpu ` +
      `${seconds(report.total.gpuSeconds)}, ${report.total.s3Requests} S3 requests); storage ` +
      `${formatMoney(report.storagePerMonth, c)} per month`,
  );
  return lines;
}

export function registerCostCommand(program: Command, deps: { connect: (config: FlywheelConfig) => Promise<Client> }) {
  program
    .command('cost')
    .description(
      'what workflows cost: CPU, GPU and wall time, bytes per tier and S3 requests per stage, priced by ' +
        'FLYWHEEL_PRICES; storage per month; per model version with its share of its dataset',
    )
    .argument(
      '<workflow-id...>',
      'pipeline-<dataset>-<version>, train-<run>, flywheel-<model>-<date> (its children too)',
    )
    .option('--json', 'print the report as JSON')
    .addHelpText(
      'after',
      '\nExit codes: 0 printed, 1 failed, 2 no such workflow or a bad price table, 3 Temporal unreachable.',
    )
    .action(async (workflowIds: string[], opts: { json?: boolean }) => {
      const config = loadConfig();
      const client = await deps.connect(config);
      try {
        const report = await gatherCostReport({
          client,
          store: tieredStoreFromConfig(config),
          workflowIds,
          prices: config.prices,
        });
        console.log(opts.json ? JSON.stringify(report) : describeCost(report).join('\n'));
      } finally {
        await client.connection.close();
      }
    });
}
