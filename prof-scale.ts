import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { FlywheelClient } from './client/flywheel-client';
import { sampleCorpus } from './lib/collect';
import { startDevServer } from './worker/dev-server';
import { startWorker } from './test/support/worker-process';
const MB = 1024 * 1024;
function writeCorpus(dir: string, copies: number) {
  fs.mkdirSync(dir, { recursive: true });
  const docs = sampleCorpus('moby-dick').documents;
  for (let c = 0; c < copies; c++) {
    const mark = String.fromCharCode(97 + (c % 26));
    const lines = docs.map((d) => JSON.stringify({ id: `${d.id}#${c}`, text: c === 0 ? d.text : d.text.replace(/\b[A-Za-z]{5,}\b/g, (w) => w + mark) }));
    fs.writeFileSync(path.join(dir, `copy-${String(c).padStart(2, '0')}.jsonl`), lines.join('\n') + '\n');
  }
}
async function main() {
  const n = Number(process.argv[2] ?? 2);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'prof-scale-'));
  const corpus = path.join(scratch, 'corpus');
  writeCorpus(corpus, 16);
  const server = await startDevServer({ dbFile: path.join(scratch, 'temporal.db') });
  const env = { TEMPORAL_ADDRESS: server.address, FLYWHEEL_HOME: path.join(scratch, 'home'), FLYWHEEL_TASK_QUEUE_PREFIX: 'p', FLYWHEEL_WORKER_THREADS: '1', FLYWHEEL_METRICS_PORT: '0', FLYWHEEL_LOG_LEVEL: 'WARN', ...(process.env.XCONC ? { FLYWHEEL_WORKER_CONCURRENCY: process.env.XCONC } : {}) };
  const workers = Array.from({ length: n }, (_, i) => startWorker(env, { cpu: i }));
  await Promise.all(workers.map((w) => w.ready));
  const connection = await Connection.connect({ address: server.address });
  const fw = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: 'p' });
  for (let r = 0; r < 2; r++) {
    const t0 = Date.now();
    const handle = await fw.startPipeline({ dataset: 's', version: `r${r}`, sources: [{ type: 'path', path: corpus }], unitsPerBatch: 1, dedup: { near: {} }, shards: { targetBytes: 4 * MB, validationFraction: 0.02 } });
    await handle.result();
    const wall = Date.now() - t0;
    const h = await handle.fetchHistory();
    const t = (e: any) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.floor((e.eventTime?.nanos ?? 0) / 1e6) - t0;
    const sched = new Map<string, { name: string; at: number }>();
    const started = new Map<string, { at: number; who: string }>();
    const acts: { name: string; s: number; e: number; who: string; q: number }[] = [];
    for (const e of h.events ?? []) {
      const a = e.activityTaskScheduledEventAttributes;
      if (a) sched.set(String(e.eventId), { name: a.activityType!.name!, at: t(e) });
      const st = e.activityTaskStartedEventAttributes;
      if (st) started.set(String(st.scheduledEventId), { at: t(e), who: st.identity! });
      const c = e.activityTaskCompletedEventAttributes;
      if (c) { const s = started.get(String(c.scheduledEventId))!; const sc = sched.get(String(c.scheduledEventId))!; acts.push({ name: sc.name, s: s.at, e: t(e), who: s.who, q: s.at - sc.at }); }
    }
    // phases: group consecutive activities by name
    const byName = new Map<string, { n: number; first: number; last: number; sum: number; who: Map<string, number> }>();
    for (const a of acts) { const g = byName.get(a.name) ?? { n: 0, first: Infinity, last: 0, sum: 0, who: new Map() }; g.n++; g.first = Math.min(g.first, a.s); g.last = Math.max(g.last, a.e); g.sum += a.e - a.s; g.who.set(a.who, (g.who.get(a.who) ?? 0) + a.e - a.s); byName.set(a.name, g); }
    console.log(`run ${r} wall ${wall} ms`);
    for (const [name, g] of byName) console.log(`  ${name.padEnd(28)} n=${String(g.n).padStart(3)} span ${g.first}-${g.last} (${g.last - g.first}) sum ${g.sum} per-worker ${[...g.who.values()].join('/')}`);
  }
  await Promise.all(workers.map((w) => w.stop()));
  await connection.close();
  await server.stop();
}
main();
