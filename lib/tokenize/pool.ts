import * as os from 'node:os';
import type Piscina from 'piscina';
import { createTaskPool } from '../common/task-pool';
import type { TokenizerEncoding } from './encodings';
import { splitTokenized, type TokenizeTask } from './tokenize-task';

/**
 * Tokenization off the event loop, on a piscina worker-thread pool. Batches keep the per-task overhead small;
 * results come back in submission order whatever thread finished first.
 */
export class TokenizerPool {
  private readonly pool: Piscina;

  constructor(opts: { threads?: number } = {}) {
    const threads = Math.max(1, opts.threads ?? os.availableParallelism());
    // The task is synchronous, so a thread runs its queued tasks one after the other, with no idle round trip.
    this.pool = createTaskPool(__dirname, 'tokenize-task', threads, { tasksPerThread: 2 });
  }

  get threads(): number {
    return this.pool.threads.length;
  }

  async encode(encoding: TokenizerEncoding, texts: string[]): Promise<Uint32Array[]> {
    const task: TokenizeTask = { encoding, texts };
    return splitTokenized((await this.pool.run(task)) as Uint32Array);
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}
