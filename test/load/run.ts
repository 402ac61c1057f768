import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { FlywheelClient } from '../../client/flywheel-client';
import { loadConfig } from '../../lib/config';
import { FEEDBACK_DEFAULTS } from '../../lib/contracts/feedback';
import { tieredStoreFromConfig } from '../../lib/storage';
import { startWorker, type WorkerProcess } from '../support/worker-process';
import { startSharedTemporal, type SharedTemporal } from '../support/temporal';
import { compareStored, feedbackIdsInStorage } from '../support/feedback-storage';
import { LOAD_BATCHING, offerFeedback } from './feedback-load';
import { formatLatencyTable, summarizeLatencies } from './latency';
import { runConcurrentPipelines, withTimeout } from './pipeline-load';
import { InvalidLoadSettings, loadSettingsFromEnv, type LoadSettings } from './settings';

const TASK_QUEUE_PREFIX = 'load';
/** The achieved event rate may fall this far below the target before the run fails. */
const MIN_RATE_SHARE = 0.9;
const WORKER_READY_MS = 120_000;
const FLUSH_WAIT_MS = 60_000;

/**
 * `npm run test:load`: one Temporal dev server on loopback and one `flywheel worker` process; N data pipelines
 * started at once while feedback arrives at a paced rate through the typed client. Prints p50/p99 latencies, and
 * fails when a pipeline fails, a feedback event is lost or stored twice, or the achieved rate falls below 90% of the
 * target. FLYWHEEL_LOAD_PIPELINES, FLYWHEEL_LOAD_RATE and FLYWHEEL_LOAD_SECONDS shrink it for local runs.
 */
async function main(): Promise<number> {
  const started = performance.now();
  const settings = loadSettingsFromEnv();
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-load-'));
  const home = path.join(scratch, 'home');
  let temporal: SharedTemporal | undefined;
  let worker: WorkerProcess | undefined;
  let connection: Connection | undefined;
  try {
    temporal = await startSharedTemporal(path.join(scratch, 'temporal.db'));
    const env: Record<string, string> = {
      TEMPORAL_ADDRESS: temporal.address,
      FLYWHEEL_HOME: home,
      // Explicit, so tiers or shard counts set in the caller's environment cannot reach the worker and not the checks.
      FLYWHEEL_HOT: path.join(home, 'hot'),
      FLYWHEEL_WARM: path.join(home, 'warm'),
      FLYWHEEL_COLD: path.join(home, 'cold'),
      FLYWHEEL_FEEDBACK_SHARDS: String(FEEDBACK_DEFAULTS.shards),
      FLYWHEEL_TASK_QUEUE_PREFIX: TASK_QUEUE_PREFIX,
      FLYWHEEL_METRICS_PORT: '0',
      FLYWHEEL_LOG_LEVEL: 'WARN',
      FLYWHEEL_LOG_FORMAT: 'json',
    };
    worker = startWorker(env);
    await withTimeout(worker.ready, WORKER_READY_MS, 'the flywheel worker did not start polling');
    connection = await Connection.connect({ address: temporal.address });
    const flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: TASK_QUEUE_PREFIX });
    const store = tieredStoreFromConfig(loadConfig(env));

    console.log(
      `[load] ${settings.pipelines} concurrent pipelines while ${settings.rate} feedback events/s arrive for ` +
        `${settings.seconds} s (batches of ≤ ${LOAD_BATCHING.maxEvents} events or ${LOAD_BATCHING.maxDelayMs} ms, ` +
        `${LOAD_BATCHING.maxInFlight} in flight); worker in its own process, ${os.cpus().length} cores`,
    );
    const loadStarted = performance.now();
    const elapsed = () => ((performance.now() - loadStarted) / 1000).toFixed(1);
    const [pipelines, feedback] = await Promise.all([
      runConcurrentPipelines(flywheel, store, settings.pipelines, (settings.seconds + 120) * 1000).then((runs) => {
        console.log(`[load] pipelines settled after ${elapsed()} s`);
        return runs;
      }),
      offerFeedback(flywheel, `load-${Date.now().toString(36)}`, settings.rate, settings.seconds).then((load) => {
        console.log(`[load] every feedback submit settled after ${elapsed()} s`);
        return load;
      }),
    ]);
    const ledgers = await flywheel.waitFeedbackFlushed(feedback.ledgers, FLUSH_WAIT_MS);
    console.log(`[load] ledgers flushed after ${elapsed()} s; reading feedback back from storage`);
    const { counts, partitions } = await feedbackIdsInStorage(store);
    const stored = compareStored(feedback.offered, counts);

    const latencies = [
      summarizeLatencies(
        'pipeline start → result',
        pipelines.map((p) => p.latencyMs),
      ),
      summarizeLatencies('feedback submit, per event', feedback.ackLatencyMs),
      summarizeLatencies('feedback submit, per batch', feedback.batchLatencyMs),
    ];
    const offeredRate = feedback.offered.length / feedback.offerSeconds;
    const achievedRate = feedback.ackSeconds > 0 ? feedback.acknowledged.size / feedback.ackSeconds : 0;
    const failedPipelines = pipelines.filter((p) => p.error !== undefined);
    const failures = [
      ...failedPipelines.map((p) => `pipeline ${p.dataset} failed: ${p.error}`),
      ...(feedback.failures > 0
        ? [`${feedback.failures} feedback events refused (first: ${feedback.firstFailure})`]
        : []),
      ...(stored.lost > 0 ? [`${stored.lost} offered feedback events are not in storage`] : []),
      ...(stored.duplicated > 0 ? [`${stored.duplicated} feedback event ids are stored more than once`] : []),
      ...(stored.unexpected > 0 ? [`${stored.unexpected} stored feedback ids were never offered`] : []),
      ...(achievedRate < MIN_RATE_SHARE * settings.rate
        ? [`achieved ${achievedRate.toFixed(0)} events/s, below ${MIN_RATE_SHARE * 100}% of ${settings.rate}`]
        : []),
    ];
    const results = {
      settings: { ...settings, batching: LOAD_BATCHING },
      temporal: temporal.kind,
      cores: os.cpus().length,
      latencies,
      pipelines: {
        started: pipelines.length,
        succeeded: pipelines.length - failedPipelines.length,
        shards: pipelines.reduce((n, p) => n + (p.shards ?? 0), 0),
      },
      feedback: {
        offered: feedback.offered.length,
        acknowledged: feedback.acknowledged.size,
        refused: feedback.failures,
        offeredPerSecond: round(offeredRate),
        achievedPerSecond: round(achievedRate),
        ledgers: ledgers.length,
        ledgerRuns: ledgers.reduce((n, p) => n + p.runs, 0),
        partitions,
        duplicatesDroppedByLedgers: ledgers.reduce((n, p) => n + p.duplicates, 0),
        ...stored,
      },
      wallSeconds: round((performance.now() - started) / 1000),
      failures,
    };

    console.log(`\n${formatLatencyTable(latencies)}\n`);
    console.log(
      `feedback: ${feedback.offered.length} events offered at ${offeredRate.toFixed(0)}/s, ` +
        `${feedback.acknowledged.size} acknowledged at ${achievedRate.toFixed(0)}/s (first offer to last ack); ` +
        `${stored.stored} ids in ${partitions} partitions over ${ledgers.length} ledgers: ` +
        `${stored.lost} lost, ${stored.duplicated} duplicated, ${stored.unexpected} unexpected`,
    );
    console.log(
      `pipelines: ${results.pipelines.succeeded}/${pipelines.length} succeeded, ${results.pipelines.shards} shards ` +
        'verified against their sha256',
    );
    const resultsFile = writeResults(results);
    console.log(`[load] results written to ${resultsFile}`);
    for (const failure of failures) console.error(`[load] FAIL: ${failure}`);
    console.log(
      `[load] ${failures.length === 0 ? 'passed' : 'FAILED'} in ${results.wallSeconds.toFixed(0)} s so far ` +
        `(cleanup follows); servers: Temporal ${temporal.kind}, warm tier ${env.FLYWHEEL_WARM} (local folder)`,
    );
    return failures.length === 0 ? 0 : 1;
  } finally {
    await connection?.close();
    await worker?.stop();
    await temporal?.stop();
    try {
      fs.rmSync(scratch, { recursive: true, force: true });
    } catch (err) {
      console.warn(`[load] could not remove ${scratch}: ${(err as Error).message}`);
    }
    console.log(`[load] done in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }
}

const round = (x: number) => Math.round(x * 10) / 10;

/** `$FLYWHEEL_HOME/load/results.json` of the caller's Flywheel home (default .flywheel): the run's scratch is gone. */
function writeResults(results: { settings: LoadSettings }): string {
  const file = path.resolve(process.env.FLYWHEEL_HOME?.trim() || '.flywheel', 'load', 'results.json');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  return file;
}

// Exit explicitly: gRPC channels or timers left by a failure must not keep the process alive after cleanup.
main().then(
  (code) => process.exit(code),
  (err) => {
    if (err instanceof InvalidLoadSettings) {
      console.error(err.message);
      process.exit(2);
    }
    console.error('[load] could not run the load test:', err);
    process.exit(1);
  },
);
