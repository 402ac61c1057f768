import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { BandKeyChunk, CandidateGroups } from './band-join';
import { DedupInputError } from './errors';
import type { ChunkSettings, ExactKeys, KeptRange, PackedShingles, SignedChunk } from './jsonl-batch';
import { errorReply, runJob, type WorkerJob, type WorkerReply } from './dedup-worker';

type Waiting = { resolve: (reply: WorkerReply) => void; reject: (e: Error) => void };

const shared = new Map<number, DedupPool>();

/**
 * Dedup's worker threads, or the calling thread when size = 0: for `flywheel dedup` they sign byte ranges of the
 * input, join bands and write kept lines; for the pipeline they sign partitions' byte ranges and compute their
 * exact-dedup keys. Workers run the same TypeScript source: worker threads do not inherit tsx's loader, so a
 * .ts worker gets `--require tsx/cjs` explicitly. Idle workers do not keep the process alive.
 */
export class DedupPool {
  /** A pool of `size` workers kept for later runs in this process (starting a worker costs ~0.1 s). */
  static shared(size: number): DedupPool {
    let pool = shared.get(size);
    if (!pool || pool.failure) {
      pool = new DedupPool(size);
      shared.set(size, pool);
    }
    return pool;
  }

  /** Ends the shared pools' workers. */
  static async closeShared(): Promise<void> {
    const pools = [...shared.values()];
    shared.clear();
    await Promise.all(pools.map((p) => p.close()));
  }

  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { job: WorkerJob; waiting: Waiting }[] = [];
  private readonly pending = new Map<number, Waiting>();
  private readonly local: boolean;
  private seq = 0;
  private failure: Error | undefined;
  private closing = false;

  constructor(size: number) {
    this.local = size === 0;
    const ext = path.extname(__filename);
    const file = path.join(__dirname, `dedup-worker${ext}`);
    for (let i = 0; i < size; i++) {
      const worker = new Worker(file, {
        workerData: 'flywheel-dedup',
        execArgv: ext === '.ts' ? ['--require', 'tsx/cjs'] : [],
      });
      worker.unref();
      worker.on('message', (reply: WorkerReply) => this.settle(worker, reply));
      worker.on('error', (err) => this.fail(err));
      worker.on('exit', (code) => {
        if (code !== 0 && !this.closing) this.fail(new Error(`dedup worker exited with code ${code}`));
      });
      this.workers.push(worker);
      this.idle.push(worker);
    }
  }

  get size(): number {
    return this.workers.length;
  }

  /** Signs the lines starting in [start, end); line numbers in the result and in errors count from the chunk's first line. */
  async sign(settings: ChunkSettings, file: string, start: number, end: number): Promise<SignedChunk> {
    const reply = await this.run({ kind: 'sign', seq: this.seq++, settings, file, start, end });
    if ('chunk' in reply) return reply.chunk;
    throw new Error('dedup worker answered a sign job with something else');
  }

  /** Stage b for `bands`, reading the chunks' shared band keys: candidate groups per band, in `bands` order. */
  async join(chunks: BandKeyChunk[], numBands: number, bands: number[]): Promise<CandidateGroups[]> {
    const reply = await this.run({ kind: 'join', seq: this.seq++, chunks, numBands, bands });
    if ('groups' in reply) return reply.groups;
    throw new Error('dedup worker answered a join job with something else');
  }

  /** The shingle sets of documents `docs` (indices among the range's documents, ascending) of the lines in [start, end). */
  async shingles(
    settings: ChunkSettings,
    file: string,
    start: number,
    end: number,
    docs: Uint32Array,
  ): Promise<PackedShingles> {
    const reply = await this.run({ kind: 'shingles', seq: this.seq++, settings, file, start, end, docs });
    if ('shingles' in reply) return reply.shingles;
    throw new Error('dedup worker answered a shingles job with something else');
  }

  /** The exact-dedup keys and ids of the partition lines of `file` that start in [start, end). */
  async exactKeys(file: string, start: number, end: number): Promise<ExactKeys> {
    const reply = await this.run({ kind: 'exactKeys', seq: this.seq++, file, start, end });
    if ('exactKeys' in reply) return reply.exactKeys;
    throw new Error('dedup worker answered an exactKeys job with something else');
  }

  async write(ranges: KeptRange[]): Promise<number> {
    const reply = await this.run({ kind: 'write', seq: this.seq++, ranges });
    if ('written' in reply) return reply.written;
    throw new Error('dedup worker answered a write job with something else');
  }

  private async run(job: WorkerJob): Promise<WorkerReply> {
    if (this.failure) throw this.failure;
    let reply: WorkerReply;
    if (this.local) {
      try {
        reply = runJob(job).reply;
      } catch (err) {
        reply = errorReply(job.seq, err);
      }
    } else
      reply = await new Promise<WorkerReply>((resolve, reject) => {
        this.queue.push({ job, waiting: { resolve, reject } });
        this.dispatch();
      });
    if ('error' in reply) {
      const { message, line, problem } = reply.error;
      throw line !== undefined && problem !== undefined ? DedupInputError.atLine(line, problem) : new Error(message);
    }
    return reply;
  }

  private dispatch(): void {
    while (this.idle.length && this.queue.length) {
      const worker = this.idle.pop() as Worker;
      const { job, waiting } = this.queue.shift() as (typeof this.queue)[number];
      this.pending.set(job.seq, waiting);
      // A busy worker keeps the process alive until it answers.
      worker.ref();
      worker.postMessage(job);
    }
  }

  private settle(worker: Worker, reply: WorkerReply): void {
    const waiting = this.pending.get(reply.seq);
    if (!waiting) return;
    this.pending.delete(reply.seq);
    worker.unref();
    this.idle.push(worker);
    waiting.resolve(reply);
    this.dispatch();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    if (shared.get(this.workers.length) === this) shared.delete(this.workers.length);
    for (const w of this.workers) void w.terminate();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    for (const q of this.queue.splice(0)) q.waiting.reject(err);
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
