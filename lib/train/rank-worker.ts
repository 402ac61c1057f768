import { parentPort } from 'node:worker_threads';
import { MlpKernel, type MlpShape } from './mlp-lm';

/** Messages of the rank pool's protocol: shared buffers once, then one gradient job per step. */
export interface RankInit {
  kind: 'init';
  shape: MlpShape;
  params: SharedArrayBuffer;
  rows: SharedArrayBuffer;
  grad: SharedArrayBuffer;
}

export interface RankJob {
  kind: 'gradient';
  starts: number[];
  sequenceTokens: number;
  scale: number;
}

export interface RankResult {
  loss: number;
}

// One data-parallel rank: its gradient goes into its own shared buffer; the main thread reduces ranks in order.
let run: ((job: RankJob) => number) | undefined;

parentPort?.on('message', (message: RankInit | RankJob) => {
  if (message.kind === 'init') {
    const params = new Float32Array(message.params);
    const rows = new Uint32Array(message.rows);
    const grad = new Float32Array(message.grad);
    const kernel = new MlpKernel(message.shape);
    run = (job) => {
      grad.fill(0);
      let loss = 0;
      for (const start of job.starts)
        loss += kernel.positions(params, rows, start, start + job.sequenceTokens, grad, job.scale);
      return loss;
    };
    return;
  }
  if (!run) throw new Error('rank worker got a job before its buffers');
  parentPort!.postMessage({ loss: run(message) } satisfies RankResult);
});
