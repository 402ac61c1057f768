import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { loadConfig } from '../lib/config';
import type { TrainingInput } from '../lib/contracts/training';
import { findTemporalCli, startDevServer } from '../temporal/dev-server';
import { installRuntime } from '../worker/runtime';
import { createWorkers } from '../worker/workers';

const root = path.join(__dirname, '..');
const HEARTBEAT_TIMEOUT_SECONDS = 4;
const CHECKPOINT_EVERY = 20;
/** Kill once a heartbeat shows training past this step: at least one checkpoint is behind it. */
const KILL_AFTER_STEP = 30;

interface PendingSegment {
  attempt: number;
  step?: number;
  lastHeartbeatMs?: number;
  lastStartedMs?: number;
}

const tsMs = (ts: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  ts ? Number(ts.seconds ?? 0) * 1000 + Math.floor((ts.nanos ?? 0) / 1e6) : undefined;

async function pendingSegment(handle: WorkflowHandle): Promise<PendingSegment | undefined> {
  const activity = (await handle.describe()).raw.pendingActivities?.[0];
  if (!activity) return undefined;
  const details = activity.heartbeatDetails?.payloads?.[0]?.data;
  return {
    attempt: activity.attempt ?? 1,
    step: details ? (JSON.parse(Buffer.from(details).toString()) as { step: number }).step : undefined,
    lastHeartbeatMs: tsMs(activity.lastHeartbeatTime),
    lastStartedMs: tsMs(activity.lastStartedTime),
  };
}

async function poll<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = await probe();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/**
 * Seconds from SIGKILL of a `flywheel worker --queues train` process mid-segment until the segment's retry, on a
 * freshly started worker, heartbeats a step past the checkpoint it resumed from. Prints one JSON line.
 */
async function main() {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-recovery-'));
  const cli = await findTemporalCli({ download: false });
  const server = await startDevServer({ cli, dbFile: path.join(scratch, 'temporal.db') });
  const serverLabel = `temporal CLI dev server (${cli.source})`;
  process.stderr.write(`[flywheel bench] Temporal: ${serverLabel} at ${server.address}\n`);
  const env = {
    TEMPORAL_ADDRESS: server.address,
    FLYWHEEL_HOME: scratch,
    FLYWHEEL_METRICS_PORT: '0',
    FLYWHEEL_LOG_LEVEL: 'WARN',
  };
  const config = loadConfig(env);
  await installRuntime(config, { quiet: true });
  const workers = await createWorkers(config, { roles: ['io', 'cpu'] });
  const running = workers.run();
  const connection = await Connection.connect({ address: server.address });
  const flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: config.worker.taskQueuePrefix });
  const children: ChildProcess[] = [];
  const trainWorker = async (): Promise<ChildProcess> => {
    const child = spawn(process.execPath, [path.join(root, 'bin', 'flywheel.js'), 'worker', '--queues', 'train'], {
      cwd: root,
      env: {
        ...process.env,
        ...env,
        FLYWHEEL_TASK_QUEUE_PREFIX: config.worker.taskQueuePrefix,
        FLYWHEEL_REACH_UNRESTRICTED: '1',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('worker on')) resolve();
      });
      child.once('exit', (code, signal) => reject(new Error(`train worker exited (${code ?? signal}) before serving`)));
    });
    return child;
  };
  let handle: WorkflowHandle | undefined;
  try {
    const data = await flywheel.runPipeline({
      dataset: 'recovery-data',
      sources: [{ type: 'sample', limit: 16 }],
      shards: { targetBytes: 1 << 20, validationFraction: 0.1 },
    });
    const first = await trainWorker();
    // Steps of ~50 ms and a 400-step segment: the kill lands well inside the segment.
    const spec: TrainingInput = {
      run: 'recovery',
      dataset: data.manifest.uri,
      trainer: {
        seed: 7,
        model: { contextTokens: 3, embeddingDim: 16, hiddenDim: 64, maxVocab: 1024 },
        sequenceTokens: 32,
        batch: { microBatchSizePerGpu: 4, gradientAccumulationSteps: 2 },
      },
      steps: 800,
      segmentSteps: 400,
      checkpointEvery: CHECKPOINT_EVERY,
      heartbeatTimeoutSeconds: HEARTBEAT_TIMEOUT_SECONDS,
      register: false,
    };
    handle = await flywheel.startTraining(spec);
    const h = handle;
    const before = await poll('a heartbeat past the first checkpoint', 120_000, async () => {
      const s = await pendingSegment(h);
      return s && (s.step ?? 0) >= KILL_AFTER_STEP ? s : undefined;
    });
    const killedAt = Date.now();
    first.kill('SIGKILL');
    await new Promise((r) => first.once('exit', r));
    await trainWorker();
    const workerReady = Date.now();
    const resumed = await poll('a heartbeat of the retried segment', 120_000, async () => {
      const s = await pendingSegment(h);
      return s && s.attempt > before.attempt && (s.lastHeartbeatMs ?? 0) > killedAt ? s : undefined;
    });
    const seen = Date.now();
    console.log(
      JSON.stringify({
        server: serverLabel,
        heartbeatTimeoutSeconds: HEARTBEAT_TIMEOUT_SECONDS,
        checkpointEvery: CHECKPOINT_EVERY,
        killedAtStep: before.step,
        sinceLastHeartbeatAtKill: (killedAt - (before.lastHeartbeatMs ?? killedAt)) / 1000,
        workerReadySeconds: (workerReady - killedAt) / 1000,
        retryStartedSeconds: ((resumed.lastStartedMs ?? seen) - killedAt) / 1000,
        // The server's time of the heartbeat, not when this poll saw it.
        resumedSeconds: (Math.min(resumed.lastHeartbeatMs ?? seen, seen) - killedAt) / 1000,
        resumedHeartbeatStep: resumed.step,
      }),
    );
  } finally {
    await handle?.terminate('benchmark done').catch(() => undefined);
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await workers.shutdown();
    await running;
    await connection.close();
    await server.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
