import {
  ScheduleOverlapPolicy,
  WorkflowIdReusePolicy,
  type ScheduleHandle,
  type Client,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import { taskQueueName } from '../lib/config';
import { specDigest } from '../lib/contracts/digest';
import { parseSpec } from '../lib/contracts/invalid-spec';
import { StorageCheckSpec, type StorageCheckInput, type StorageCheckResult } from '../lib/contracts/storage-check';
import { PipelineSpec, pipelineWorkflowId, type PipelineInput } from '../lib/contracts/pipeline';
import type { DatasetSummary, PipelineProgress } from '../lib/contracts/pipeline-results';
import { TrainingSpec, trainingWorkflowId, type TrainingInput } from '../lib/contracts/training';
import type {
  dataPipeline,
  flywheelRun,
  storageCheck,
  StorageCheckProgress,
  storageLifecycle,
  trainingRun,
} from '../workflows';
import {
  durationMs,
  FlywheelSpec,
  flywheelScheduleId,
  flywheelWorkflowId,
  type FlywheelInput,
  type FlywheelResult,
} from '../lib/contracts/flywheel';
import {
  STORAGE_LIFECYCLE_SCHEDULE_ID,
  StorageLifecycleSpec,
  type StorageLifecycleInput,
} from '../lib/contracts/storage-lifecycle';
import { FeedbackBatcher, type FeedbackBatcherOptions } from '../lib/feedback/batcher';
import type { FeedbackLedgerProgress } from '../lib/contracts/feedback';
import { submitFeedbackBatch, type FeedbackClientOptions, type FeedbackReceipt } from './feedback';

export type { FeedbackClientOptions, FeedbackReceipt } from './feedback';

/** Another spec's run holds this dataset version's workflow id. */
export class PipelineAlreadyRunning extends Error {
  readonly exitCode = 1;
  constructor(workflowId: string, running: string, wanted: string) {
    super(
      `${workflowId} is already running with another spec (digest ${running}; this spec ${wanted}). ` +
        'Wait for it, cancel it, or give this spec a new version.',
    );
    this.name = 'PipelineAlreadyRunning';
  }
}

/**
 * The typed client services use. Specs are validated here too, so a caller hears of a bad field before anything
 * is started; the workflow checks again for starts that come from the UI.
 */
export class FlywheelClient {
  constructor(
    readonly client: Client,
    readonly opts: { taskQueuePrefix?: string; feedback?: FeedbackClientOptions } = {},
  ) {}

  private get workflowQueue(): string {
    return taskQueueName(this.opts.taskQueuePrefix ?? 'flywheel', 'io');
  }

  /** Starts a storage check; the same spec maps to the same workflow id, so a repeated call attaches to it. */
  async startStorageCheck(input: StorageCheckInput): Promise<WorkflowHandle<typeof storageCheck>> {
    const spec = parseSpec('storageCheck', StorageCheckSpec, input);
    const workflowId = `storage-check-${spec.name}-${specDigest(spec).slice(0, 8)}`;
    return this.client.workflow.start<typeof storageCheck>('storageCheck', {
      args: [spec],
      taskQueue: this.workflowQueue,
      workflowId,
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      workflowIdConflictPolicy: 'USE_EXISTING',
      memo: { spec },
    });
  }

  async runStorageCheck(input: StorageCheckInput): Promise<StorageCheckResult> {
    return (await this.startStorageCheck(input)).result();
  }

  /**
   * Starts the data pipeline as `pipeline-<dataset>-<version>`. Starting the same dataset version again while it runs
   * attaches to the running workflow; after it finished, a new run reuses the committed dataset.
   */
  async startPipeline(input: PipelineInput): Promise<WorkflowHandle<typeof dataPipeline>> {
    const spec = parseSpec('dataPipeline', PipelineSpec, input);
    const digest = specDigest(spec);
    const handle = await this.client.workflow.start<typeof dataPipeline>('dataPipeline', {
      args: [spec],
      taskQueue: this.workflowQueue,
      workflowId: pipelineWorkflowId(spec),
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      workflowIdConflictPolicy: 'USE_EXISTING',
      memo: {
        dataset: spec.dataset,
        version: spec.version,
        specDigest: digest,
        sources: spec.sources.length,
        encoding: spec.tokenizer.encoding,
      },
    });
    // USE_EXISTING attaches to a run already going under this id: make sure it is this spec's.
    const running = (await handle.describe()).memo?.specDigest;
    if (running !== undefined && running !== digest)
      throw new PipelineAlreadyRunning(handle.workflowId, String(running), digest);
    return handle;
  }

  async runPipeline(input: PipelineInput): Promise<DatasetSummary> {
    return (await this.startPipeline(input)).result();
  }

  async pipelineProgress(workflowId: string): Promise<PipelineProgress> {
    return this.client.workflow.getHandle(workflowId).query<PipelineProgress>('progress');
  }

  /** Starts a training run as `train-<run>`; starting it again while it runs attaches to it. */
  async startTraining(input: TrainingInput): Promise<WorkflowHandleWithFirstExecutionRunId<typeof trainingRun>> {
    const spec = parseSpec('trainingRun', TrainingSpec, input);
    return this.client.workflow.start<typeof trainingRun>('trainingRun', {
      args: [spec],
      taskQueue: this.workflowQueue,
      workflowId: trainingWorkflowId(spec),
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      workflowIdConflictPolicy: 'USE_EXISTING',
      memo: { run: spec.run, dataset: spec.dataset, steps: spec.steps },
    });
  }

  async runTraining(input: TrainingInput) {
    return (await this.startTraining(input)).result();
  }

  /**
   * Starts one turn of the flywheel as `flywheel-<model>-<date>` (UTC day of `at`, default now); starting it again
   * the same day attaches to that day's run while it runs.
   */
  async startFlywheel(
    input: FlywheelInput,
    opts: { at?: Date } = {},
  ): Promise<WorkflowHandleWithFirstExecutionRunId<typeof flywheelRun>> {
    const spec = parseSpec('flywheelRun', FlywheelSpec, input);
    return this.client.workflow.start<typeof flywheelRun>('flywheelRun', {
      args: [spec],
      taskQueue: this.workflowQueue,
      workflowId: flywheelWorkflowId(spec.model, opts.at ?? new Date()),
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      workflowIdConflictPolicy: 'USE_EXISTING',
      memo: { model: spec.model, gate: spec.gate.primary, schedule: spec.schedule.cron },
    });
  }

  async runFlywheel(input: FlywheelInput, opts: { at?: Date } = {}): Promise<FlywheelResult> {
    return (await this.startFlywheel(input, opts)).result();
  }

  /**
   * The nightly flywheel as a Temporal Schedule `flywheel-<model>`: the spec's cron and time zone, overlapping
   * runs skipped, missed runs started only within the catch-up window, paused after a failed run.
   */
  async createFlywheelSchedule(input: FlywheelInput): Promise<ScheduleHandle> {
    const spec = parseSpec('flywheelRun', FlywheelSpec, input);
    return this.client.schedule.create({
      scheduleId: flywheelScheduleId(spec.model),
      spec: { cronExpressions: [spec.schedule.cron], timezone: spec.schedule.timezone },
      action: {
        type: 'startWorkflow',
        workflowType: 'flywheelRun',
        args: [spec],
        taskQueue: this.workflowQueue,
        // Temporal appends the scheduled time: flywheel-<model>-2026-11-27T02:00:00Z.
        workflowId: `flywheel-${spec.model}`,
        memo: { model: spec.model, gate: spec.gate.primary, schedule: spec.schedule.cron },
      },
      policies: {
        overlap: ScheduleOverlapPolicy.SKIP,
        catchupWindow: durationMs(spec.schedule.catchupWindow),
        pauseOnFailure: true,
      },
      memo: { model: spec.model, cron: spec.schedule.cron, timezone: spec.schedule.timezone },
    });
  }

  flywheelSchedule(model: string): ScheduleHandle {
    return this.client.schedule.getHandle(flywheelScheduleId(model));
  }

  /** Starts the storage lifecycle (a dry run unless `apply`) as `storage-lifecycle-<time>`. */
  async startStorageLifecycle(input: StorageLifecycleInput): Promise<WorkflowHandle<typeof storageLifecycle>> {
    const spec = parseSpec('storageLifecycle', StorageLifecycleSpec, input);
    return this.client.workflow.start<typeof storageLifecycle>('storageLifecycle', {
      args: [spec],
      taskQueue: this.workflowQueue,
      workflowId: `${STORAGE_LIFECYCLE_SCHEDULE_ID}-${new Date().toISOString()}`,
      memo: { apply: spec.apply },
    });
  }

  /** The storage lifecycle as the Temporal Schedule `storage-lifecycle`: the spec's cron, overlapping runs skipped. */
  async createStorageLifecycleSchedule(input: StorageLifecycleInput): Promise<ScheduleHandle> {
    const spec = parseSpec('storageLifecycle', StorageLifecycleSpec, input);
    return this.client.schedule.create({
      scheduleId: STORAGE_LIFECYCLE_SCHEDULE_ID,
      spec: { cronExpressions: [spec.schedule.cron], timezone: spec.schedule.timezone },
      action: {
        type: 'startWorkflow',
        workflowType: 'storageLifecycle',
        args: [spec],
        taskQueue: this.workflowQueue,
        // Temporal appends the scheduled time: storage-lifecycle-2026-11-27T03:00:00Z.
        workflowId: STORAGE_LIFECYCLE_SCHEDULE_ID,
        memo: { apply: spec.apply },
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, pauseOnFailure: true },
      memo: { cron: spec.schedule.cron, timezone: spec.schedule.timezone, apply: spec.apply },
    });
  }

  async storageCheckProgress(workflowId: string): Promise<StorageCheckProgress> {
    return this.client.workflow.getHandle(workflowId).query<StorageCheckProgress>('progress');
  }

  /**
   * Feedback from a service: validates every event (a bad one refuses the whole batch, naming each bad event and
   * field), then sends each day-and-shard ledger its share with Update-with-Start. Resolves once every event is in a
   * ledger's history, so a worker crash after this loses nothing. Ids a ledger already has are dropped.
   */
  async submitFeedback(events: readonly unknown[], opts: FeedbackClientOptions = {}): Promise<FeedbackReceipt> {
    const merged = { ...this.opts.feedback, ...opts, ledger: { ...this.opts.feedback?.ledger, ...opts.ledger } };
    return submitFeedbackBatch(this.client, this.workflowQueue, events, merged);
  }

  /** Batches single events from request handlers into few large submits; see FeedbackBatcher. */
  feedbackBatcher(opts: FeedbackBatcherOptions = {}): FeedbackBatcher {
    return new FeedbackBatcher((events) => this.submitFeedback(events), {
      maxEventBytes: this.opts.feedback?.maxEventBytes,
      ...opts,
    });
  }

  async feedbackProgress(workflowId: string): Promise<FeedbackLedgerProgress> {
    return this.client.workflow.getHandle(workflowId).query<FeedbackLedgerProgress>('progress');
  }

  /**
   * Waits until every ledger named (a receipt's `ledgers`) has written all it accepted to storage, where the nightly
   * flywheel reads it; the ledgers' own counts once they have. Throws naming the ledgers behind after `timeoutMs`.
   */
  async waitFeedbackFlushed(ledgers: Iterable<string>, timeoutMs = 60_000): Promise<FeedbackLedgerProgress[]> {
    const ids = [...ledgers];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const progress = await Promise.all(ids.map((id) => this.feedbackProgress(id)));
      if (progress.every((p) => p.buffered === 0 && p.flushed === p.accepted)) return progress;
      if (Date.now() > deadline) {
        const behind = progress.filter((p) => p.buffered > 0 || p.flushed !== p.accepted);
        throw new Error(
          `feedback ledgers did not finish flushing within ${Math.round(timeoutMs / 1000)} s: ` +
            behind.map((p) => `${p.day}/${p.shard} flushed ${p.flushed} of ${p.accepted}`).join(', '),
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
