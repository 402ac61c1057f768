import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { FEEDBACK_DEFAULTS, ledgerOfEvent } from '../lib/contracts/feedback';
import { createS3Client, FsStore, S3Store, TieredStore } from '../lib/storage';
import { startDevServer } from '../temporal/dev-server';
import { compareStored, feedbackIdsInStorage, supportFeedbackEvent } from '../test/support/feedback-storage';
import { startS3Gate } from '../test/support/s3-gate';
import { startWorker } from '../test/support/worker-process';
import { s3ClientOptions, startS3Server, type TestS3Server } from '../test/support/s3-server';
import type { Figure } from './harness';

/** Concurrent callers, as request handlers of a busy service would be, each awaiting its own acknowledgement. */
const CALLERS = 500;
const BATCH = { maxEvents: 500, maxDelayMs: 50, maxInFlight: 4 };
const TARGET_EVENTS_PER_SECOND = 1000;
const FLUSH_WAIT_MS = 5 * 60_000;

function envNumber(name: string, fallback: number): number {
  const value = Number(process.env[name]);
  return Number.isFinite(value) && value > 0 ? value : fallback;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Callers add events as fast as their acknowledgements come back, until `stop()` says so. */
/**
 * Ledger ids are per namespace, so each phase stamps its events on its own day: the kill phase must not reach the
 * steady phase's ledgers, whose worker is gone.
 */
function loadGenerator(flywheel: FlywheelClient, run: string, callers: number, daysAhead: number) {
  const batcher = flywheel.feedbackBatcher(BATCH);
  const acked: string[] = [];
  const latencies: number[] = [];
  const ledgers = new Set<string>();
  let failures = 0;
  let n = 0;
  let stopped = false;
  const caller = async () => {
    while (!stopped) {
      const event = supportFeedbackEvent(run, n++, { ts: new Date(Date.now() + daysAhead * 86_400_000).toISOString() });
      ledgers.add(ledgerOfEvent(event, FEEDBACK_DEFAULTS.shards).workflowId);
      const t = performance.now();
      try {
        await batcher.add(event);
        latencies.push(performance.now() - t);
        acked.push(event.id);
      } catch {
        failures++;
      }
    }
  };
  const running = Promise.all(Array.from({ length: callers }, caller));
  return {
    acked,
    latencies,
    ledgers,
    failures: () => failures,
    async stop() {
      stopped = true;
      await running;
      await batcher.close();
    },
  };
}

/** CPU seconds a process has used (Linux /proc; undefined elsewhere). */
function cpuSeconds(pid: number | undefined): number | undefined {
  try {
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
  } catch {
    return undefined;
  }
}

async function sustainedIngestion(
  address: string,
  serverPid: number,
  scratch: string,
  seconds: number,
): Promise<Figure[]> {
  const home = path.join(scratch, 'steady');
  const prefix = 'bench-feedback-steady';
  const worker = startWorker(
    {
      TEMPORAL_ADDRESS: address,
      FLYWHEEL_HOME: home,
      FLYWHEEL_TASK_QUEUE_PREFIX: prefix,
      FLYWHEEL_LOG_LEVEL: 'WARN',
    },
    { args: ['--queues', 'io'] },
  );
  await worker.ready;
  const connection = await Connection.connect({ address });
  try {
    const flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: prefix });
    const cpu = () => [cpuSeconds(serverPid), cpuSeconds(worker.child.pid), process.cpuUsage()] as const;
    const before = cpu();
    const load = loadGenerator(flywheel, 'steady', CALLERS, 0);
    const t0 = performance.now();
    await new Promise((r) => setTimeout(r, seconds * 1000));
    await load.stop();
    const elapsed = (performance.now() - t0) / 1000;
    const after = cpu();
    const used = (a: number | undefined, b: number | undefined) =>
      a === undefined || b === undefined ? '?' : `${(b - a).toFixed(0)} s`;
    const client = (after[2].user + after[2].system - before[2].user - before[2].system) / 1e6;
    const cpuNote = `CPU over the run: Temporal server ${used(before[0], after[0])}, worker ${used(before[1], after[1])}, client ${client.toFixed(0)} s`;
    const rate = load.acked.length / elapsed;
    const ledgers = await flywheel.waitFeedbackFlushed(load.ledgers, FLUSH_WAIT_MS);
    const runs = ledgers.reduce((n, p) => n + p.runs, 0);
    const partitions = ledgers.reduce((n, p) => n + p.partitions, 0);
    const warm = new FsStore(path.join(home, 'warm'));
    const { counts } = await feedbackIdsInStorage(new TieredStore({ hot: warm, warm, cold: warm }));
    const { lost, duplicated: doubled } = compareStored(load.acked, counts);
    const sorted = [...load.latencies].sort((a, b) => a - b);
    return [
      {
        name: `feedback ingestion through submitFeedback with batching, ${seconds} s`,
        value: rate,
        unit: 'events/s',
        note:
          `target ≥ ${TARGET_EVENTS_PER_SECOND}/s: ${rate >= TARGET_EVENTS_PER_SECOND ? 'met' : 'MISSED'}; ` +
          `${load.acked.length} events, ${CALLERS} concurrent callers, batches ≤ ${BATCH.maxEvents} events or ` +
          `${BATCH.maxDelayMs} ms, worker in its own process; ${ledgers.length} ledgers wrote ${partitions} ` +
          `partitions over ${runs} runs (continue-as-new); ${cpuNote}; ${os.cpus().length} cores`,
      },
      { name: 'feedback acknowledgement latency, p50', value: percentile(sorted, 50), unit: 'ms' },
      { name: 'feedback acknowledgement latency, p99', value: percentile(sorted, 99), unit: 'ms' },
      {
        name: 'feedback ids lost or stored twice, steady run',
        value: lost + doubled + load.failures(),
        unit: 'ids',
        max: 0,
        note: `${lost} lost, ${doubled} doubled, ${load.failures()} refused`,
      },
    ];
  } finally {
    await connection.close();
    await worker.kill();
  }
}

async function killDuringFlush(address: string, scratch: string, s3: TestS3Server, kills: number): Promise<Figure[]> {
  const gate = await startS3Gate(s3.endpoint);
  const s3client = createS3Client(s3ClientOptions(s3));
  const bucket = `flywheel-bench-feedback-${Date.now().toString(36)}`;
  const warm = new S3Store({ bucket, prefix: 'warm', client: s3client });
  await warm.ensureBucket();
  const prefix = 'bench-feedback-kill';
  const env = {
    TEMPORAL_ADDRESS: address,
    FLYWHEEL_HOME: path.join(scratch, 'kill'),
    FLYWHEEL_TASK_QUEUE_PREFIX: prefix,
    FLYWHEEL_LOG_LEVEL: 'WARN',
    FLYWHEEL_WARM: `s3://${bucket}/warm`,
    FLYWHEEL_S3_ENDPOINT: gate.endpoint,
    FLYWHEEL_S3_CHECKSUMS: s3.checksums,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
  };
  const ioWorker = async () => {
    const started = startWorker(env, { args: ['--queues', 'io'] });
    await started.ready;
    return started;
  };
  let worker = await ioWorker();
  const connection = await Connection.connect({ address });
  try {
    const flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: prefix });
    const load = loadGenerator(flywheel, 'kill', CALLERS / 4, 1);
    const heldPaths: string[] = [];
    for (let k = 0; k < kills; k++) {
      process.stderr.write(`  kill ${k + 1}/${kills}: waiting for a flush to store its partition\n`);
      // The partition is in S3; the worker waits for the answer when it dies.
      heldPaths.push(await withTimeout(gate.holdNext(/\/feedback\//), 120_000, 'no flush reached storage'));
      await worker.kill();
      gate.releaseHeld();
      worker = await ioWorker();
      await new Promise((r) => setTimeout(r, 3000));
    }
    await load.stop();
    await flywheel.waitFeedbackFlushed(load.ledgers, FLUSH_WAIT_MS);
    const local = new FsStore(path.join(scratch, 'kill-local'));
    const { counts } = await feedbackIdsInStorage(new TieredStore({ hot: local, warm, cold: local }));
    const { lost, duplicated: doubled } = compareStored(load.acked, counts);
    const retried = heldPaths.filter((p) => gate.puts.filter((q) => q === p).length >= 2).length;
    const note =
      `${kills} SIGKILLs of the worker, each while a flush had stored its partition but not yet reported it; ` +
      `${retried}/${kills} such flushes retried onto the same object; ${load.acked.length} acknowledged events`;
    return [
      { name: 'feedback acknowledged ids lost, worker killed mid-flush', value: lost, unit: 'ids', max: 0, note },
      { name: 'feedback ids stored twice, worker killed mid-flush', value: doubled, unit: 'ids', max: 0 },
    ];
  } finally {
    await connection.close();
    await worker.kill();
    s3client.destroy();
    await gate.close();
  }
}

/**
 * Feedback intake: sustained events/s and acknowledgement latency through FlywheelClient.submitFeedback with a
 * FeedbackBatcher (FLYWHEEL_BENCH_FEEDBACK_SECONDS, default 60), then lost and doubled ids when the worker is killed
 * in the middle of flushes (FLYWHEEL_BENCH_FEEDBACK_KILLS, default 3), counted by id over the stored partitions.
 */
export async function feedbackFigures(): Promise<Figure[]> {
  const seconds = envNumber('FLYWHEEL_BENCH_FEEDBACK_SECONDS', 60);
  const kills = envNumber('FLYWHEEL_BENCH_FEEDBACK_KILLS', 3);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-feedback-'));
  process.stderr.write(`running: feedback ingestion for ${seconds} s, then ${kills} worker kills mid-flush\n`);
  const server = await startDevServer({ dbFile: path.join(scratch, 'temporal.db') });
  const s3 = await startS3Server();
  try {
    return [
      ...(await sustainedIngestion(server.address, server.pid, scratch, seconds)),
      ...(await killDuringFlush(server.address, scratch, s3, kills)),
    ];
  } finally {
    await s3.stop();
    await server.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}
