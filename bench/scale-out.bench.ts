import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect';
import { startDevServer, type DevServer } from '../temporal/dev-server';
import { startWorker, type WorkerProcess } from '../test/support/worker-process';
import type { Benchmark } from './harness';

const MB = 1024 * 1024;

/**
 * Scale-out of the data stages: the same pipeline served by one `flywheel worker` process and by two. Each worker
 * stands for one machine of one core: pinned to its own CPU with taskset where the system has it, with one compute
 * thread (FLYWHEEL_WORKER_THREADS=1), so the second process adds a core's worth of work the way a second machine
 * would. Both sets stay up for the whole benchmark on their own task queues (idle pollers cost nothing measurable);
 * the Temporal dev server and this process float over all CPUs, as they would on their own machines.
 */
export function scaleOutBenchmarks(): Benchmark[] {
  let scratch = '';
  let server: DevServer | undefined;
  let connection: Connection | undefined;
  let flywheel: { one: FlywheelClient; two: FlywheelClient } | undefined;
  const workers: WorkerProcess[] = [];
  let corpus = '';
  let textBytes = 0;
  let round = 0;

  // The spec's own partition limits, as a user runs it: each of the 16 files is a batch and a partition, so every
  // fan-out has 16 units. (With partitions of 64 documents every near-dedup activity was some 50 ms of work, no
  // longer than its scheduling round trip, and those stages took as long on two workers as on one.)
  const run = (set: 'one' | 'two') => async () => {
    const client = flywheel![set];
    const t = performance.now();
    const handle = await client.startPipeline({
      dataset: `scale-${set}`,
      version: `r${round++}`,
      sources: [{ type: 'path', path: corpus }],
      unitsPerBatch: 1,
      dedup: { near: {} },
      shards: { targetBytes: 4 * MB, validationFraction: 0.02 },
    });
    await handle.result();
    return { value: textBytes / MB / ((performance.now() - t) / 1000) };
  };

  return [
    {
      name: 'pipeline scale-out, 2 worker processes vs 1 (one pinned core and one compute thread each)',
      unit: 'MB/s',
      target: 1.6,
      rounds: 5,
      async setup() {
        scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-scale-'));
        corpus = path.join(scratch, 'corpus');
        textBytes = writeCorpus(corpus, copiesFromEnv());
        server = await startDevServer({ dbFile: path.join(scratch, 'temporal.db') });
        connection = await Connection.connect({ address: server.address });
        const client = new Client({ connection });
        flywheel = {
          one: new FlywheelClient(client, { taskQueuePrefix: 'scale-one' }),
          two: new FlywheelClient(client, { taskQueuePrefix: 'scale-two' }),
        };
        const env = (prefix: string) => ({
          TEMPORAL_ADDRESS: server!.address,
          FLYWHEEL_HOME: path.join(scratch, 'home'),
          FLYWHEEL_TASK_QUEUE_PREFIX: prefix,
          FLYWHEEL_WORKER_THREADS: '1',
          FLYWHEEL_METRICS_PORT: '0',
          FLYWHEEL_LOG_LEVEL: 'WARN',
        });
        const cpus = os.availableParallelism();
        workers.push(
          startWorker(env('scale-one'), { cpu: 0 }),
          startWorker(env('scale-two'), { cpu: 0 }),
          startWorker(env('scale-two'), { cpu: Math.min(1, cpus - 1) }),
        );
        await Promise.all(workers.map((w) => w.ready));
      },
      candidate: { label: '2 workers', run: run('two') },
      baseline: { label: '1 worker', run: run('one') },
      async teardown() {
        await Promise.all(workers.map((w) => w.stop()));
        await connection?.close();
        await server?.stop();
        fs.rmSync(scratch, { recursive: true, force: true });
      },
    },
  ];
}

/**
 * `copies` JSON-lines files of the bundled corpus. Each copy marks its longer words with its own letter, so its word
 * n-grams differ from every other copy's: exact and near dedup keep all copies, and every stage does `copies` × work.
 */
function writeCorpus(dir: string, copies: number): number {
  fs.mkdirSync(dir, { recursive: true });
  const docs = sampleCorpus('moby-dick').documents;
  let bytes = 0;
  for (let c = 0; c < copies; c++) {
    const mark = String.fromCharCode(97 + (c % 26));
    const lines = docs.map((d) => {
      const text = c === 0 ? d.text : d.text.replace(/\b[A-Za-z]{5,}\b/g, (w) => w + mark);
      bytes += Buffer.byteLength(text);
      return JSON.stringify({ id: `${d.id}#${c}`, text });
    });
    fs.writeFileSync(path.join(dir, `copy-${String(c).padStart(2, '0')}.jsonl`), lines.join('\n') + '\n');
  }
  return bytes;
}

/** FLYWHEEL_BENCH_SCALE_COPIES: corpus copies (default 16, about 20 MB of text). */
function copiesFromEnv(): number {
  const raw = process.env.FLYWHEEL_BENCH_SCALE_COPIES ?? '16';
  const copies = Number(raw);
  if (!Number.isInteger(copies) || copies < 1 || copies > 26) {
    throw new Error(`FLYWHEEL_BENCH_SCALE_COPIES=${raw}: give a whole number from 1 to 26`);
  }
  return copies;
}
