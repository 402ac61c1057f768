import { WorkflowIdReusePolicy, type Client, type WorkflowHandle } from '@temporalio/client';
import { taskQueueName } from '../lib/config';
import { specDigest } from '../lib/spec/digest';
import { parseSpec } from '../lib/spec/invalid-spec';
import { StorageCheckSpec, type StorageCheckInput, type StorageCheckResult } from '../lib/spec/storage-check';
import type { storageCheck, StorageCheckProgress } from '../workflows';

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

  async storageCheckProgress(workflowId: string): Promise<StorageCheckProgress> {
    return this.client.workflow.getHandle(workflowId).query<StorageCheckProgress>('progress');
  }
}
