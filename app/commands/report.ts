import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { Client } from '@temporalio/client';
import type { PipelineProgress, DatasetSummary } from '../../lib/contracts/pipeline-results';
import type { TrainingProgress, TrainingResult } from '../../lib/contracts/training';
import { loadConfig } from '../../lib/config';
import type { TieredStore } from '../../lib/storage';
import type { PriceTable } from '../../lib/cost';
import type { PipelineSection, PromotionDecision, ReportWorkflow, RunReport, TrainingSection } from '../../lib/report';
import { inspectWorkflow, type WorkflowStatus } from './status';

// Loaded when a report is made, not for `--help` (see cli.ts).
/* eslint-disable @typescript-eslint/no-require-imports */
const reportLib = () => require('../../lib/report') as typeof import('../../lib/report');
const storageConfig = () => require('../../lib/storage/from-config') as typeof import('../../lib/storage/from-config');
const devServer = () => require('../../temporal/dev-server') as typeof import('../../temporal/dev-server');
const costCommand = () => require('./cost') as typeof import('./cost');
const codecHelpers = () =>
  require('@temporalio/common/lib/internal-non-workflow') as typeof import('@temporalio/common/lib/internal-non-workflow');
/* eslint-enable @typescript-eslint/no-require-imports */

export interface WriteRunReportOptions {
  client: Client;
  store: TieredStore;
  /** Workflows to report on; a workflow of another type brings in its child workflows. */
  workflowIds: string[];
  /** The HTML file to write, or a folder for `<first workflow id>.html`. */
  out: string;
  /** Champion/challenger decisions to show besides those found in the workflows' results. */
  promotions?: PromotionDecision[];
  /** The Temporal Web UI's address (http://localhost:8233), for links to each workflow. */
  uiUrl?: string;
  title?: string;
  /** Prices for the cost section (FLYWHEEL_PRICES); usage without amounts when absent. */
  prices?: PriceTable;
}

/** A PromotionDecision found anywhere (three levels deep) in a workflow's result. */
function findPromotions(value: unknown, depth = 0): PromotionDecision[] {
  if (!value || typeof value !== 'object' || depth > 3) return [];
  const o = value as Record<string, unknown>;
  if (
    typeof o.decision === 'string' &&
    'challenger' in o &&
    typeof o.reason === 'string' &&
    typeof o.model === 'string'
  )
    return [o as unknown as PromotionDecision];
  const children = Array.isArray(value) ? value : Object.values(o);
  return children.flatMap((v) => findPromotions(v, depth + 1));
}

/**
 * The one object a workflow was started with (specs come from the UI without a memo too): read from the first event
 * alone, so a long run's history (thousands of events) is not fetched for it.
 */
export async function workflowInput(client: Client, workflowId: string): Promise<Record<string, unknown> | undefined> {
  try {
    const { history } = await client.workflowService.getWorkflowExecutionHistory({
      namespace: client.options.namespace,
      execution: { workflowId },
      maximumPageSize: 1,
    });
    const started = history?.events?.[0]?.workflowExecutionStartedEventAttributes;
    const [input] = await codecHelpers().decodeArrayFromPayloads(
      client.options.loadedDataConverter,
      started?.input?.payloads,
    );
    return input && typeof input === 'object' ? (input as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Child workflows of a workflow (a flywheel round's pipeline and training runs), oldest first. */
export async function childWorkflowIds(client: Client, workflowId: string): Promise<string[]> {
  const ids: string[] = [];
  try {
    for await (const w of client.workflow.list({ query: `ParentWorkflowId = "${workflowId.replace(/"/g, '\\"')}"` }))
      ids.push(w.workflowId);
  } catch {
    // Servers without advanced visibility cannot list by parent: the report covers the named workflows only.
  }
  return ids.reverse();
}

/** Workflows that start no children: a walk of a workflow tree stops at them. */
const LEAF_TYPES = ['dataPipeline', 'trainingRun', 'storageCheck'];

/**
 * The named workflows and, for those that start children (a flywheel round), their children, depth first: what the
 * report and `flywheel cost` cover.
 */
export async function inspectWorkflowTree(
  client: Client,
  workflowIds: string[],
  opts: { progress?: boolean } = {},
): Promise<WorkflowStatus[]> {
  const statuses: WorkflowStatus[] = [];
  const queue = [...new Set(workflowIds)];
  const seen = new Set<string>();
  while (queue.length) {
    const id = queue.shift()!;
    if (seen.has(id)) continue;
    seen.add(id);
    const s = await inspectWorkflow(client, id, opts);
    statuses.push(s);
    if (!LEAF_TYPES.includes(s.type)) queue.push(...(await childWorkflowIds(client, id)).filter((c) => !seen.has(c)));
  }
  return statuses;
}

const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

async function pipelineOf(
  client: Client,
  store: TieredStore,
  s: WorkflowStatus,
  notes: string[],
): Promise<PipelineSection | undefined> {
  const lib = reportLib();
  const extra = { workflowId: s.workflowId, status: s.status };
  if (s.status === 'COMPLETED') return lib.pipelineSection(store, s.result as DatasetSummary, extra);
  if (s.status === 'RUNNING' && s.progress) {
    const input = await workflowInput(client, s.workflowId);
    const dataset = str(s.memo.dataset) ?? str(input?.dataset);
    const version = str(s.memo.version) ?? str(input?.version);
    const digest = str(s.memo.specDigest) ?? str(s.searchAttributes.FlywheelRun);
    notes.push(`${s.workflowId} is still running: its funnel shows the stages done so far.`);
    if (dataset && version && digest)
      return lib.runningPipelineSection(store, { dataset, version, digest }, s.progress as PipelineProgress, extra);
  }
  return undefined;
}

async function trainingOf(
  client: Client,
  store: TieredStore,
  s: WorkflowStatus,
  notes: string[],
): Promise<TrainingSection | undefined> {
  const lib = reportLib();
  const result = s.status === 'COMPLETED' ? (s.result as Partial<TrainingResult>) : undefined;
  const progress = s.progress as Partial<TrainingProgress> | undefined;
  const input = await workflowInput(client, s.workflowId);
  const run = str(result?.run) ?? str(s.memo.run) ?? str(input?.run) ?? s.workflowId.replace(/^train-/, '');
  if (s.status === 'RUNNING')
    notes.push(`${s.workflowId} is still running: its curves stop at step ${progress?.step ?? 0}.`);
  return {
    workflowId: s.workflowId,
    status: s.status,
    run,
    dataset: str(s.memo.dataset) ?? str(input?.dataset),
    steps: result?.steps ?? progress?.steps ?? Number(s.memo.steps ?? 0),
    step: result?.step ?? progress?.step ?? 0,
    firstLoss: result?.firstLoss ?? progress?.firstLoss,
    loss: result?.loss ?? progress?.loss,
    valLoss: result?.valLoss ?? progress?.valLoss,
    perplexity: result?.perplexity,
    tokensPerSecond: result?.tokensPerSecond,
    stoppedEarly: result?.stoppedEarly,
    model: result?.model,
    evaluations: result?.evaluations ?? progress?.evaluations ?? [],
    written: result?.checkpoints ?? progress?.checkpoints ?? [],
    retained: await lib.retainedCheckpoints(store, run),
  };
}

/** Reads what the report shows: each workflow from Temporal, the stage outputs and checkpoints from the tiers. */
export async function gatherRunReport(opts: Omit<WriteRunReportOptions, 'out'>): Promise<RunReport> {
  const lib = reportLib();
  const { client, store } = opts;
  const notes: string[] = [];
  const statuses = await inspectWorkflowTree(client, opts.workflowIds);
  const workflows: ReportWorkflow[] = statuses.map((s) => ({
    workflowId: s.workflowId,
    type: s.type,
    status: s.status,
    startTime: s.startTime,
    closeTime: s.closeTime,
    seconds: s.seconds,
    failure: s.failure,
    uiUrl: opts.uiUrl
      ? `${opts.uiUrl.replace(/\/$/, '')}/namespaces/${encodeURIComponent(client.options.namespace)}/workflows/${encodeURIComponent(s.workflowId)}`
      : undefined,
  }));
  const pipelines: PipelineSection[] = [];
  const trainings: TrainingSection[] = [];
  for (const s of statuses) {
    if (s.failure) notes.push(`${s.workflowId} ${s.status.toLowerCase()}: ${s.failure}`);
    if (s.type === 'dataPipeline') {
      const section = await pipelineOf(client, store, s, notes);
      if (section) pipelines.push(section);
    } else if (s.type === 'trainingRun') {
      trainings.push((await trainingOf(client, store, s, notes))!);
    }
  }
  // A training run's data, when its pipeline is not among the workflows: the dataset manifest holds the same facts.
  for (const t of trainings) {
    if (!t.dataset || pipelines.some((p) => p.manifestUri === t.dataset)) continue;
    const section = await lib.datasetSection(store, t.dataset).catch(() => undefined);
    if (section) pipelines.push(section);
    else notes.push(`the dataset ${t.dataset} of ${t.run} could not be read`);
  }
  const promotions = [...(opts.promotions ?? []), ...statuses.flatMap((s) => findPromotions(s.result))];
  // Decisions live in the model registry: a flywheel round names its decision, a registered run is a challenger.
  const lookups = [
    ...statuses.flatMap((s) => {
      const r = s.result as { model?: unknown; decisionId?: unknown } | undefined;
      return typeof r?.model === 'string' && typeof r.decisionId === 'string'
        ? [{ model: r.model, decisionId: r.decisionId }]
        : [];
    }),
    ...trainings.flatMap((t) => (t.model ? [{ model: t.model.name, challenger: t.model.version }] : [])),
  ];
  for (const query of lookups) {
    try {
      promotions.push(...(await lib.recordedDecisions(store, query)));
    } catch (err) {
      notes.push(`the decisions of model ${query.model} could not be read: ${(err as Error).message}`);
    }
  }
  const cost = await costCommand()
    .gatherCostReport({ client, store, workflowIds: opts.workflowIds, prices: opts.prices })
    .catch((err: Error) => {
      notes.push(`the cost of these workflows could not be gathered: ${err.message}`);
      return undefined;
    });
  return {
    title: opts.title ?? `Flywheel run report: ${opts.workflowIds.join(', ')}`,
    generatedAt: new Date().toISOString(),
    workflows,
    pipelines,
    trainings,
    promotions: promotions.filter((p, i) => promotions.findIndex((q) => q.id === p.id) === i),
    ...(cost ? { cost } : {}),
    notes,
  };
}

/** Where a report goes: `out` itself when it names an .html file, else `<out>/<first workflow id>.html`. */
export function reportPath(out: string, workflowIds: readonly string[]): string {
  return out.endsWith('.html') ? path.resolve(out) : path.resolve(out, `${workflowIds[0] ?? 'report'}.html`);
}

/**
 * Writes the run report of `workflowIds` as one self-contained HTML file (the pipeline funnel, dedup cluster sizes,
 * loss curves, checkpoint timeline across tiers, champion/challenger decisions) and returns its path.
 */
export async function writeRunReport(opts: WriteRunReportOptions): Promise<string> {
  const report = await gatherRunReport(opts);
  const file = reportPath(opts.out, opts.workflowIds);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  // Written beside and renamed, so a reader never sees half a report.
  const partial = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(partial, reportLib().renderReportHtml(report));
  fs.renameSync(partial, file);
  return file;
}

/** The dev server's Web UI beside a local Temporal (port + 1000, as `flywheel dev` starts it), if it answers. */
export async function localUiUrl(address: string): Promise<string | undefined> {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i);
  if (!['localhost', '127.0.0.1', '[::1]'].includes(host)) return undefined;
  const uiPort = Number(address.slice(i + 1)) + 1000;
  const { isListening } = devServer();
  return (await isListening(`127.0.0.1:${uiPort}`, 300)) ? `http://localhost:${uiPort}` : undefined;
}

export function registerReportCommand(program: Command, deps: { connect: () => Promise<Client> }): void {
  program
    .command('report')
    .description(
      'write one self-contained HTML report of workflows: pipeline funnel, dedup clusters, loss curves, ' +
        'checkpoints across tiers, champion vs challenger',
    )
    .argument('<workflow-id...>', 'pipeline-<dataset>-<version>, train-<run>, flywheel-<date> (its children too)')
    .option('--out <path>', 'an .html file, or a folder (default: $FLYWHEEL_HOME/reports)')
    .option('--json', 'print {"path": ...} as JSON on stdout')
    .addHelpText(
      'after',
      '\nExit codes: 0 written, 1 the report could not be made, 2 no such workflow or bad usage, 3 Temporal ' +
        'unreachable.',
    )
    .action(async (workflowIds: string[], opts: { out?: string; json?: boolean }) => {
      const config = loadConfig();
      const client = await deps.connect();
      try {
        const file = await writeRunReport({
          client,
          store: storageConfig().tieredStoreFromConfig(config),
          workflowIds,
          out: opts.out ?? path.join(config.home, 'reports'),
          uiUrl: await localUiUrl(config.temporal.address),
          prices: config.prices,
        });
        console.log(
          opts.json ? JSON.stringify({ path: file, workflowIds }) : `wrote ${path.relative(process.cwd(), file)}`,
        );
      } finally {
        await client.connection.close();
      }
    });
}
