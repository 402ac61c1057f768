import * as os from 'node:os';
import type Piscina from 'piscina';
import { createTaskPool } from '../common/task-pool';
import type { Document } from '../document';
import { FlywheelError } from '../common/errors';
import { filterDocument, type FilterResult } from './filter-document';
import type { FilterTask, FilterTaskReply } from './filter-task';
import type { QualitySpecInput } from './spec';

/**
 * The quality filters off the event loop, on a piscina worker-thread pool shaped like the tokenizer's: batches of
 * documents per task keep the transfer cost small, verdicts come back in the batch's order. `threads: 0` filters on
 * the calling thread (tests, one-off calls).
 */
export class FilterPool {
  private readonly pool: Piscina | undefined;

  constructor(opts: { threads?: number } = {}) {
    const threads = opts.threads ?? os.availableParallelism();
    if (threads === 0) return;
    this.pool = createTaskPool(__dirname, 'filter-task', threads);
  }

  get threads(): number {
    return this.pool?.threads.length ?? 0;
  }

  /** Each document's verdict under `spec`, in order: what filterDocument gives for each. */
  async filter(docs: Document[], spec: QualitySpecInput): Promise<FilterResult[]> {
    if (this.pool === undefined) {
      const results: FilterResult[] = [];
      for (const doc of docs) results.push(await filterDocument(doc, spec));
      return results;
    }
    const task: FilterTask = { docs, spec };
    const reply = (await this.pool.run(task)) as FilterTaskReply;
    if ('results' in reply) return reply.results;
    const { type, message, retryable, details } = reply.failure;
    throw type === undefined
      ? new Error(message)
      : new FlywheelError(type, message, { retryable: !!retryable, details });
  }

  async close(): Promise<void> {
    await this.pool?.destroy();
  }
}
