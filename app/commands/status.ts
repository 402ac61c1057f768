import type { Command } from 'commander';
import type { Client, WorkflowExecutionDescription } from '@temporalio/client';
import type { DatasetSummary } from '../../lib/contracts/pipeline-results';
import type { TrainingResult } from '../../lib/contracts/training';
import { followWorkflow, meterOf, meterLine } from './follow';
import { describeDataset } from './pipeline';

/** Statuses after which a workflow will not go on by itself. */
const FAILED_STATUSES = new Set(['FAILED', 'CANCELLED', 'TERMINATED', 'TIMED_OUT']);

/** No workflow with this id in the namespace: a wrong argument, so the command exits 2. */
export class UnknownWorkflow extends Error {
  readonly exitCode = 2;
  constructor(workflowId: string, namespace: string) {
    super(
      `no workflow ${workflowId} in namespace ${namespace}: check the id (pipeline-<dataset>-<version>, ` +
        'train-<run>, flywheel-<date>) or list workflows in the Web UI',
    );
    this.name = 'UnknownWorkflow';
  }
}

/** The workflow ended without a result (failed, cancelled, terminated, timed out): exit code 1. */
export class WorkflowDidNotComplete extends Error {
  readonly exitCode = 1;
  constructor(
    readonly workflowId: string,
    readonly status: string,
    readonly reason?: string,
  ) {
    super(`${workflowId} ${status.toLowerCase().replace('_', ' ')}${reason ? `: ${reason}` : ''}`);
    this.name = 'WorkflowDidNotComplete';
  }
}

export interface PendingActivityStatus {
  activityType: string;
  state: string;
  attempt: number;
  /** The last heartbeat's details: progress and resume cursor. */
  heartbeat?: unknown;
  lastHeartbeatTime?: string;
  lastFailure?: string;
}

/** What `status` shows, and `--json` prints. */
export interface WorkflowStatus {
  workflowId: string;
  runId: string;
  type: string;
  status: string;
  taskQueue: string;
  startTime: string;
  closeTime?: string;
  seconds: number;
  historyLength: number;
  searchAttributes: Record<string, unknown>;
  memo: Record<string, unknown>;
  /** The `progress` query's answer (running workflows with a worker), or undefined. */
  progress?: unknown;
  pendingActivities: PendingActivityStatus[];
  /** The result of a completed workflow. */
  result?: unknown;
  /** Why a workflow did not complete. */
  failure?: string;
}

function enumName(value: unknown, prefix: string): string {
  const text = typeof value === 'string' ? value : String(value ?? '');
  return text.startsWith(prefix) ? text.slice(prefix.length) : text;
}

/** The innermost message of a failure chain: "activity failed" wraps what went wrong. */
export function failureMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  let message = e?.message ?? String(err);
  while (e?.cause) {
    e = e.cause as { message?: string; cause?: unknown };
    if (e?.message) message = e.message;
  }
  return message;
}

/** Runs `work` but gives up after `ms`: a query to a workflow nobody polls for would otherwise wait long. */
async function within<T>(ms: number, work: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([work.catch(() => undefined), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// The SDK loads when a command runs, not when `--help` is asked for (see cli.ts).
/* eslint-disable @typescript-eslint/no-require-imports */
const sdkCommon = () => require('@temporalio/common') as typeof import('@temporalio/common');
const codecHelpers = () =>
  require('@temporalio/common/lib/internal-non-workflow') as typeof import('@temporalio/common/lib/internal-non-workflow');
/* eslint-enable @typescript-eslint/no-require-imports */

/** Describes a workflow: its status, search attributes, memo, progress, pending activities' heartbeats, result. */
export async function inspectWorkflow(
  client: Client,
  workflowId: string,
  opts: { result?: boolean; progress?: boolean } = {},
): Promise<WorkflowStatus> {
  const handle = client.workflow.getHandle(workflowId);
  let desc: WorkflowExecutionDescription;
  try {
    desc = await handle.describe();
  } catch (err) {
    if (err instanceof sdkCommon().WorkflowNotFoundError)
      throw new UnknownWorkflow(workflowId, client.options.namespace);
    throw err;
  }
  const converter = client.options.loadedDataConverter;
  const pendingActivities = await Promise.all(
    (desc.raw.pendingActivities ?? []).map(async (a): Promise<PendingActivityStatus> => {
      const details = a.heartbeatDetails?.payloads?.length
        ? await codecHelpers()
            .decodeArrayFromPayloads(converter, a.heartbeatDetails.payloads)
            .catch(() => undefined)
        : undefined;
      const beat = a.lastHeartbeatTime?.seconds;
      return {
        activityType: a.activityType?.name ?? '?',
        state: enumName(a.state, 'PENDING_ACTIVITY_STATE_'),
        attempt: a.attempt ?? 1,
        heartbeat: details && details.length === 1 ? details[0] : details,
        lastHeartbeatTime: beat ? new Date(Number(beat) * 1000).toISOString() : undefined,
        lastFailure: a.lastFailure?.message ?? undefined,
      };
    }),
  );
  const status = desc.status.name;
  const out: WorkflowStatus = {
    workflowId,
    runId: desc.runId,
    type: desc.type,
    status,
    taskQueue: desc.taskQueue,
    startTime: desc.startTime.toISOString(),
    closeTime: desc.closeTime?.toISOString(),
    seconds: ((desc.closeTime ?? new Date()).getTime() - desc.startTime.getTime()) / 1000,
    historyLength: desc.historyLength,
    searchAttributes: Object.fromEntries(desc.typedSearchAttributes.getAll().map((p) => [p.key.name, p.value])),
    memo: desc.memo ?? {},
    pendingActivities,
  };
  if (status === 'RUNNING' && opts.progress !== false) out.progress = await within(5000, handle.query('progress'));
  if (status === 'COMPLETED' && opts.result !== false) out.result = await handle.result();
  if (FAILED_STATUSES.has(status)) {
    out.failure = await handle.result().then(
      () => undefined,
      (err: unknown) => failureMessage(err),
    );
  }
  return out;
}

/** `[pipeline] tokenize 3/8 partitions, 120 documents collected`, or the progress as JSON for unknown shapes. */
export function progressLine(type: string, progress: unknown): string {
  const meter = meterOf(progress);
  const tag = type === 'dataPipeline' ? 'pipeline' : type === 'trainingRun' ? 'train' : type;
  return meter ? `[${tag}] ${meterLine(meter, {})}` : `[${tag}] ${JSON.stringify(progress)}`;
}

function resultLines(type: string, result: unknown): string[] {
  if (type === 'dataPipeline' && result && typeof result === 'object' && 'manifest' in result)
    return describeDataset(result as DatasetSummary);
  if (type === 'trainingRun' && result && typeof result === 'object' && 'valLoss' in result) {
    const r = result as Partial<TrainingResult> & { step: number; loss: number; valLoss: number; perplexity: number };
    return [
      `trained ${r.step} steps: loss ${r.firstLoss?.toFixed(3) ?? '?'} → ${r.loss.toFixed(3)}, validation loss ` +
        `${r.valLoss.toFixed(3)} (perplexity ${r.perplexity.toFixed(1)})${r.stoppedEarly ? ', stopped early' : ''}`,
      ...(r.model ? [`registered ${r.model.name} ${r.model.version}`] : []),
    ];
  }
  return [`result: ${JSON.stringify(result)}`];
}

const formatValue = (v: unknown) => (typeof v === 'string' ? v : JSON.stringify(v));

/** The human view of a status: a headline, then what is known about the run. */
export function describeStatus(s: WorkflowStatus, opts: { brief?: boolean } = {}): string[] {
  const headline = `${s.workflowId}  ${s.type}  ${s.status}  ${s.closeTime ? 'ran' : 'running for'} ${s.seconds.toFixed(1)} s`;
  const outcome = [
    ...(s.result !== undefined ? resultLines(s.type, s.result).map((l) => `  ${l}`) : []),
    ...(s.failure ? [`  failure: ${s.failure}`] : []),
  ];
  if (opts.brief) return [headline, ...outcome];
  const lines = [
    headline,
    `  started ${s.startTime}${s.closeTime ? `, closed ${s.closeTime}` : ''}; task queue ${s.taskQueue}; ` +
      `run ${s.runId}; ${s.historyLength} history events`,
  ];
  const attrs = Object.entries(s.searchAttributes);
  if (attrs.length) lines.push(`  search attributes: ${attrs.map(([k, v]) => `${k}=${formatValue(v)}`).join(' ')}`);
  const memo = Object.entries(s.memo);
  if (memo.length) lines.push(`  memo: ${memo.map(([k, v]) => `${k}=${formatValue(v)}`).join(' ')}`);
  if (s.progress !== undefined) lines.push(`  progress: ${progressLine(s.type, s.progress)}`);
  for (const a of s.pendingActivities) {
    lines.push(
      `  activity ${a.activityType} ${a.state.toLowerCase()} (attempt ${a.attempt})` +
        (a.heartbeat !== undefined ? `: heartbeat ${JSON.stringify(a.heartbeat)}` : '') +
        (a.lastFailure ? `; last failure: ${a.lastFailure}` : ''),
    );
  }
  return [...lines, ...outcome];
}

/** Exits 1 for a workflow that ended without its result, so `flywheel status ID && next-step` works in scripts. */
function assertCompletedOrRunning(s: WorkflowStatus): void {
  if (FAILED_STATUSES.has(s.status)) throw new WorkflowDidNotComplete(s.workflowId, s.status, s.failure);
}

export async function runStatus(
  client: Client,
  workflowId: string,
  opts: { follow?: boolean; json?: boolean },
): Promise<WorkflowStatus> {
  let status = await inspectWorkflow(client, workflowId);
  if (opts.follow && status.status === 'RUNNING') {
    // With --json, lines (or the bar) go to stderr, so stdout holds only the final JSON.
    const print = (line: string) => (opts.json ? console.error : console.log)(line);
    if (!opts.json) for (const line of describeStatus(status)) print(line);
    const type = status.type;
    await followWorkflow(client.workflow.getHandle(workflowId), (p: unknown) => progressLine(type, p), print).catch(
      () => undefined,
    );
    status = await inspectWorkflow(client, workflowId);
    if (opts.json) console.log(JSON.stringify(status));
    else for (const line of describeStatus(status, { brief: true })) console.log(line);
  } else if (opts.json) console.log(JSON.stringify(status));
  else for (const line of describeStatus(status)) console.log(line);
  assertCompletedOrRunning(status);
  return status;
}

export function registerStatusCommand(program: Command, deps: { connect: () => Promise<Client> }): void {
  program
    .command('status')
    .description("a workflow's status, search attributes, progress and heartbeats; with --follow, live until it ends")
    .argument('<workflow-id>', 'e.g. pipeline-sample-v1, train-demo, flywheel-2025-01-31')
    .option('--follow', 'keep showing progress (a bar on a terminal, lines otherwise) until the workflow ends')
    .option('--json', 'print the status as one JSON object on stdout')
    .addHelpText(
      'after',
      '\nExit codes: 0 running or completed, 1 failed/cancelled/terminated/timed out, 2 no such workflow or bad ' +
        'usage, 3 Temporal unreachable.',
    )
    .action(async (workflowId: string, opts: { follow?: boolean; json?: boolean }) => {
      const client = await deps.connect();
      try {
        await runStatus(client, workflowId, opts);
      } finally {
        await client.connection.close();
      }
    });
}
