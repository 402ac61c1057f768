import { WorkflowIdReusePolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import { taskQueueName } from '../lib/config';
import { specDigest } from '../lib/spec/digest';
import { parseSpec } from '../lib/spec/invalid-spec';
import { StorageCheckSpec, type StorageCheckInput, type StorageCheckResult } from '../lib/spec/storage-check';
import { PipelineSpec, pipelineWorkflowId, type PipelineInput } from '../lib/spec/pipeline';
import type { DatasetSummary, PipelineProgress } from '../lib/spec/pipeline-results';
import { TrainingSpec, trainingWorkflowId, type TrainingInput } from '../lib/spec/training';
import type { dataPipeline, storageCheck, StorageCheckProgress, trainingRun } from '../workflows';

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
    readonly opts: { taskQueuePrefix?: string } = {},
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
  async startTraining(input: TrainingInput): Promise<WorkflowHandle<typeof trainingRun>> {
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

  async storageCheckProgress(workflowId: string): Promise<StorageCheckProgress> {
    return this.client.workflow.getHandle(workflowId).query<StorageCheckProgress>('progress');
  }
}
