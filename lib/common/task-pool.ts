import * as path from 'node:path';
import Piscina from 'piscina';

/**
 * A piscina pool of `threads` threads running `taskFile` (a module beside the caller, named without extension): the
 * one way Flywheel's worker-thread pools (tokenizer, quality filters) are built. Running from TypeScript sources
 * (tsx), threads need the same loader; compiled builds load plain JS. `tasksPerThread` > 1 hands a thread its next
 * tasks before it finishes one, so it does not wait a round trip between tasks; those tasks are then tied to that
 * thread, and a task that awaits would interleave with them: only for synchronous tasks.
 */
export function createTaskPool(
  dir: string,
  taskFile: string,
  threads: number,
  opts: { tasksPerThread?: number } = {},
): Piscina {
  const file = path.join(dir, `${taskFile}${path.extname(__filename)}`);
  return new Piscina({
    filename: file,
    minThreads: threads,
    maxThreads: threads,
    concurrentTasksPerWorker: opts.tasksPerThread ?? 1,
    execArgv: file.endsWith('.ts') ? ['--require', 'tsx/cjs'] : [],
  });
}
