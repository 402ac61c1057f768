import { extname, join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { MlpShape } from './mlp-lm';
import type { RankInit, RankJob, RankResult } from './rank-worker';

/**
 * One worker thread per data-parallel rank, each computing its rank's gradient into a shared buffer. Which thread
 * finishes first does not matter: results come back per rank and are reduced in rank order by the caller.
 */
export class RankPool {
  private readonly workers: Worker[];
  private pending: { resolve: (r: RankResult) => void; reject: (e: Error) => void }[] = [];

  constructor(shape: MlpShape, params: SharedArrayBuffer, rows: SharedArrayBuffer, grads: SharedArrayBuffer[]) {
    // Under tsx (tests) the worker is TypeScript and needs the loader; compiled, it is plain JavaScript.
    const ext = extname(__filename);
    const file = join(__dirname, `rank-worker${ext}`);
    const execArgv = ext === '.ts' ? ['--require', 'tsx/cjs'] : [];
    this.workers = grads.map((grad, rank) => {
      const worker = new Worker(file, { execArgv });
      worker.on('message', (result: RankResult) => this.settle(rank, (p) => p.resolve(result)));
      worker.on('error', (error) => this.settle(rank, (p) => p.reject(error)));
      worker.unref();
      worker.postMessage({ kind: 'init', shape, params, rows, grad } satisfies RankInit);
      return worker;
    });
  }

  /** Runs one job per rank; losses come back in rank order. */
  async run(jobs: RankJob[]): Promise<number[]> {
    // Unreferenced between steps so an idle trainer never keeps the process alive; referenced while computing.
    for (const w of this.workers) w.ref();
    const results = jobs.map(
      (job, rank) =>
        new Promise<RankResult>((resolve, reject) => {
          this.pending[rank] = { resolve, reject };
          this.workers[rank].postMessage(job);
        }),
    );
    try {
      return (await Promise.all(results)).map((r) => r.loss);
    } finally {
      for (const w of this.workers) w.unref();
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private settle(rank: number, action: (p: { resolve: (r: RankResult) => void; reject: (e: Error) => void }) => void) {
    const p = this.pending[rank];
    if (p) {
      delete this.pending[rank];
      action(p);
    }
  }
}
