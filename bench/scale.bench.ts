import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect';
import { startDevServer, type DevServer } from '../temporal/dev-server';
import { startWorker, type WorkerProcess } from '../test/support/worker-process';
import type { Figure } from './harness';
import { activityTimeline, formatTimeline, type Timeline } from './timeline';

const MB = 1e6;

/** What one pipeline run on a set of workers took. */
export interface ServedRun {
  workflowId: string;
  wall: number;
  mbPerSecond: number;
  perCore: number;
  busy: number;
  peakMB: number;
  documents: number;
  timeline: Timeline;
}

/**
 * A Temporal dev server and a scratch folder for pipeline runs on sets of `flywheel worker` processes: the scale and
 * per-core benches. `serve` starts one set, runs the default pipeline with near dedup on a corpus, stops the set.
 */
export class PipelineRig {
  readonly scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-scale-'));
  readonly home = path.join(this.scratch, 'home');
  server?: DevServer;
  client?: Client;
  private connection?: Connection;
  private workers: WorkerProcess[] = [];
  private round = 0;

  async start(): Promise<void> {
    this.server = await startDevServer({ dbFile: path.join(this.scratch, 'temporal.db') });
    this.connection = await Connection.connect({ address: this.server.address });
    this.client = new Client({ connection: this.connection });
  }

  /** Starts the workers of one set, runs the pipeline on `corpus`, stops them; wall, CPU and peak memory. */
  async serve(
    set: string,
    layout: { cpu?: number; threads: number }[],
    corpus: string,
    bytes: number,
    cores: number,
  ): Promise<ServedRun> {
    const prefix = `scale-${set}-${this.round++}`;
    const env = (threads: number) => ({
      TEMPORAL_ADDRESS: this.server!.address,
      FLYWHEEL_HOME: this.home,
      FLYWHEEL_TASK_QUEUE_PREFIX: prefix,
      FLYWHEEL_WORKER_THREADS: String(threads),
      FLYWHEEL_METRICS_PORT: '0',
      FLYWHEEL_LOG_LEVEL: 'WARN',
    });
    this.workers = layout.map((w) => startWorker(env(w.threads), { cpu: w.cpu }));
    await Promise.all(this.workers.map((w) => w.ready));
    const cpuBefore = this.workers.map((w) => cpuSeconds(w.child.pid!));
    process.stderr.write(`scale: ${set} on ${(bytes / MB).toFixed(0)} MB\n`);
    const started = performance.now();
    const handle = await new FlywheelClient(this.client!, { taskQueuePrefix: prefix }).startPipeline({
      dataset: `scale-${set}`,
      version: `r${this.round}`,
      sources: [{ type: 'path', path: corpus }],
      dedup: { near: {} },
      shards: { targetBytes: 64 * 1024 * 1024, validationFraction: 0.01 },
    });
    const summary = await handle.result();
    const wall = (performance.now() - started) / 1000;
    const cpu = this.workers.reduce((sum, w, i) => sum + cpuSeconds(w.child.pid!) - cpuBefore[i], 0);
    const peakMB = Math.max(...this.workers.map((w) => peakRssMB(w.child.pid!)));
    await Promise.all(this.workers.map((w) => w.stop()));
    this.workers = [];
    const timeline = await activityTimeline(this.client!, handle.workflowId, layout.length * 2);
    process.stderr.write(formatTimeline(`scale: ${set}`, timeline) + '\n');
    return {
      timeline,
      workflowId: handle.workflowId,
      wall,
      mbPerSecond: bytes / MB / wall,
      perCore: bytes / MB / wall / cores,
      busy: cpu / (cores * wall),
      peakMB,
      documents: summary.documents,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.stop()));
    await this.connection?.close();
    await this.server?.stop();
    fs.rmSync(this.scratch, { recursive: true, force: true });
  }
}

/** The corpus size the scale and per-core benches use: FLYWHEEL_BENCH_SCALE_MB, default 300. */
export function scaleCorpusMB(): number {
  const totalMB = Number(process.env.FLYWHEEL_BENCH_SCALE_MB ?? '300');
  if (!(totalMB >= 1)) throw new Error(`FLYWHEEL_BENCH_SCALE_MB=${process.env.FLYWHEEL_BENCH_SCALE_MB}: give MB ≥ 1`);
  return totalMB;
}

/**
 * `npm run bench -- scale`: a corpus of a few large files (FLYWHEEL_BENCH_SCALE_MB, default 300 MB, in 8 JSON-lines
 * files, the shape of a crawl dump or an export) through the whole default pipeline with near dedup, served three
 * ways: one `flywheel worker` pinned to one core with one compute thread; two such workers on two cores (two
 * machines' worth); one worker process with two compute threads (as `npm start` runs on 2 cores). For each: MB/s per
 * core end to end, and how busy the cores were, measured as the workers' CPU seconds (utime + stime from /proc)
 * ÷ (cores × wall time). Peak memory compares fresh one-thread workers on the corpus and on a quarter of it.
 * The Temporal dev server and this process float over all CPUs, as they would on machines of their own.
 */
export async function scaleFigures(): Promise<Figure[]> {
  const totalMB = scaleCorpusMB();
  const rig = new PipelineRig();
  try {
    const full = path.join(rig.scratch, 'full');
    const quarter = path.join(rig.scratch, 'quarter');
    const fullBytes = writeCorpus(full, totalMB * MB, 8);
    const quarterBytes = writeCorpus(quarter, (totalMB * MB) / 4, 8);
    await rig.start();
    const cpus = os.availableParallelism();
    const serve = rig.serve.bind(rig);
    const second = Math.min(1, cpus - 1);
    const one = await serve('one', [{ cpu: 0, threads: 1 }], full, fullBytes, 1);
    const two = await serve(
      'two',
      [
        { cpu: 0, threads: 1 },
        { cpu: second, threads: 1 },
      ],
      full,
      fullBytes,
      2,
    );
    const threads = await serve('threads', [{ threads: 2 }], full, fullBytes, Math.min(2, cpus));
    const small = await serve('quarter', [{ cpu: 0, threads: 1 }], quarter, quarterBytes, 1);
    const size = `${(fullBytes / MB).toFixed(0)} MB in 8 files`;
    return [
      {
        name: `scale: 1 worker, 1 core (${size})`,
        value: one.perCore,
        unit: 'MB/s/core',
        note: `wall ${one.wall.toFixed(1)} s, busy ${one.busy.toFixed(2)}, ${one.documents} documents`,
      },
      {
        name: 'scale: 2 workers, 1 core each: MB/s per core',
        value: two.perCore,
        unit: 'MB/s/core',
        note: `wall ${two.wall.toFixed(1)} s`,
      },
      { name: 'scale: 2 workers: share of the 2 cores busy', value: two.busy, unit: '', min: 0.8 },
      {
        name: 'scale: 2 workers ÷ 1 worker, end to end',
        value: two.mbPerSecond / one.mbPerSecond,
        unit: '×',
        min: 1.7,
      },
      {
        name: 'scale: 1 worker process, 2 threads: MB/s per core',
        value: threads.perCore,
        unit: 'MB/s/core',
        note: `wall ${threads.wall.toFixed(1)} s`,
      },
      {
        name: 'scale: 1 worker process, 2 threads: share of the 2 cores busy',
        value: threads.busy,
        unit: '',
        min: 0.8,
      },
      {
        name: 'scale: peak RSS of a worker, full corpus ÷ a quarter of it',
        value: one.peakMB / small.peakMB,
        unit: '×',
        max: 1.25,
        note: `${one.peakMB.toFixed(0)} MB vs ${small.peakMB.toFixed(0)} MB`,
      },
    ];
  } finally {
    await rig.close();
  }
}

/** utime + stime of a process, in seconds (Linux /proc; 0 elsewhere). */
function cpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name and state.
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

/** Peak resident memory of a process (VmHWM), in MB. */
function peakRssMB(pid: number): number {
  try {
    const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return hwm ? Number(hwm[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * About `bytes` of text in `files` JSON-lines files of the bundled corpus. Every copy of the corpus tags its longer
 * words with its own two letters, so its word n-grams differ from every other copy's: exact and near dedup keep all
 * copies, and every stage does work in proportion to the size.
 */
export function writeCorpus(dir: string, bytes: number, files: number): number {
  fs.mkdirSync(dir, { recursive: true });
  const docs = sampleCorpus('moby-dick').documents;
  const outs = Array.from({ length: files }, (_, f) => fs.openSync(path.join(dir, `part-${f}.jsonl`), 'w'));
  let written = 0;
  try {
    for (let c = 0; written < bytes; c++) {
      const tag = String.fromCharCode(97 + (Math.floor(c / 26) % 26), 97 + (c % 26));
      const lines: string[] = [];
      for (const d of docs) {
        const text = c === 0 ? d.text : d.text.replace(/\b[A-Za-z]{6,}\b/g, (w) => w + tag);
        written += Buffer.byteLength(text);
        lines.push(JSON.stringify({ id: `${d.id}#${c}`, text }));
      }
      fs.writeSync(outs[c % files], lines.join('\n') + '\n');
    }
  } finally {
    outs.forEach((fd) => fs.closeSync(fd));
  }
  return written;
}
