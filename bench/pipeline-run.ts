import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { FlywheelClient } from '../client/flywheel-client';
import { sampleCorpus } from '../lib/collect';
import { loadConfig } from '../lib/config';
import { startDevServer } from '../temporal/dev-server';
import { installRuntime } from '../worker/runtime';
import { createWorkers } from '../worker/workers';

/**
 * One whole pipeline run on `copies` × the sample corpus, in this process (worker included), printing one JSON line:
 * wall time, text MB/s, the share of wall time no activity was running (Temporal scheduling and workflow tasks), and
 * this process's peak RSS. Run by the bench in a fresh process per size, so peak memory is the run's own.
 */
async function main() {
  const copies = Number(process.argv[2] ?? '1');
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-run-'));
  const server = await startDevServer({ dbFile: path.join(scratch, 'temporal.db') });
  const config = loadConfig({
    TEMPORAL_ADDRESS: server.address,
    FLYWHEEL_HOME: scratch,
    FLYWHEEL_METRICS_PORT: '0',
    FLYWHEEL_LOG_LEVEL: 'WARN',
  });
  await installRuntime(config, { quiet: true });
  // Each copy's documents get their own ids and a first line naming the copy, so exact dedup keeps them all: a full
  // sentence, since the C4 rules drop lines of fewer than three words or without end punctuation.
  const docs = sampleCorpus('moby-dick').documents;
  const input = path.join(scratch, 'corpus.jsonl');
  const out = fs.createWriteStream(input);
  let textBytes = 0;
  for (let c = 0; c < copies; c++) {
    for (const d of docs) {
      const text = `This is copy number ${c + 1} of the corpus.\n\n${d.text}`;
      textBytes += Buffer.byteLength(text);
      out.write(JSON.stringify({ id: `${d.id}#${c}`, text }) + '\n');
    }
  }
  await new Promise((r) => out.end(r));
  const workers = await createWorkers(config);
  const running = workers.run();
  const connection = await Connection.connect({ address: server.address });
  const flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: config.worker.taskQueuePrefix });
  // First on the fresh worker, then again (a new version, so nothing is reused) on the worker now warm, as a
  // deployed worker is: the first workflow task of a fresh worker also pays for loading the workflow code.
  const cold = await measure(flywheel, input, `x${copies}-cold`);
  const warm = await measure(flywheel, input, `x${copies}-warm`);
  await workers.shutdown();
  await running;
  await connection.close();
  await server.stop();
  fs.rmSync(scratch, { recursive: true, force: true });
  console.log(
    JSON.stringify({
      copies,
      documents: warm.documents,
      textMB: textBytes / 2 ** 20,
      wallSeconds: warm.wallMs / 1000,
      mbPerSecond: textBytes / 2 ** 20 / (warm.wallMs / 1000),
      temporalShare: warm.temporalShare,
      coldWallSeconds: cold.wallMs / 1000,
      coldTemporalShare: cold.temporalShare,
      peakRssMB: process.resourceUsage().maxRSS / 1024,
    }),
  );
}

/**
 * One pipeline run: its wall time from start to result, and the share of it in which no activity was running (the
 * union of activity intervals from the history's own timestamps, subtracted from the wall time).
 */
async function measure(flywheel: FlywheelClient, input: string, version: string) {
  const t0 = Date.now();
  const handle = await flywheel.startPipeline({
    dataset: 'bench',
    version,
    sources: [{ type: 'path', path: input }],
    partitions: { maxDocuments: 64, maxBytes: 64 * 1024 * 1024 },
    shards: { targetBytes: 8 * 1024 * 1024, validationFraction: 0.01 },
  });
  const summary = await handle.result();
  const wallMs = Date.now() - t0;
  const history = await handle.fetchHistory();
  const intervals: [number, number][] = [];
  const started = new Map<string, number>();
  for (const e of history.events ?? []) {
    const ms = Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6);
    if (e.activityTaskStartedEventAttributes)
      started.set(String(e.activityTaskStartedEventAttributes.scheduledEventId), ms);
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
    if (done) intervals.push([started.get(String(done.scheduledEventId)) ?? ms, ms]);
  }
  intervals.sort((a, b) => a[0] - b[0]);
  let busy = 0;
  let end = -Infinity;
  for (const [s, e] of intervals) {
    if (s > end) {
      busy += e - s;
      end = e;
    } else if (e > end) {
      busy += e - end;
      end = e;
    }
  }
  return { documents: summary.documents, wallMs, temporalShare: Math.max(0, 1 - busy / wallMs) };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
