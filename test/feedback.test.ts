import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, Connection, WithStartWorkflowOperation, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { readFeedbackLines } from '../app/commands/feedback';
import { FlywheelClient } from '../client/flywheel-client';
import {
  encodeFeedbackPartition,
  FeedbackBatcher,
  feedbackPartitionUri,
  listFeedbackPartitions,
  readFeedback,
} from '../lib/feedback';
import {
  feedbackDay,
  feedbackLedgerId,
  feedbackShard,
  InvalidFeedback,
  ledgerOfEvent,
  parseFeedbackBatch,
  validateFeedbackBatch,
  type FeedbackEvent,
  type FeedbackLedgerProgress,
} from '../lib/contracts/feedback';
import { createS3Client, FsStore, S3Store, TieredStore, tieredStoreFromConfig } from '../lib/storage';
import type { feedbackLedger } from '../workflows';
import { createWorkers, type FlywheelWorkers } from '../worker/workers';
import { feedbackIdsInStorage } from './support/feedback-storage';
import { startS3Gate, type S3Gate } from './support/s3-gate';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';
import { temporalAddress, testConfig } from './support/temporal';
import { runCli } from './support/cli';

const root = path.join(__dirname, '..');
const cli = path.join(root, 'bin', 'flywheel.js');

/** A good event on `day`; `n` makes its id and text unique. */
function event(n: number, day: string, extra: Partial<FeedbackEvent> = {}): FeedbackEvent {
  return {
    id: `evt-${day}-${n}`,
    ts: `${day}T${String(n % 24).padStart(2, '0')}:15:00.000Z`,
    modelVersion: 'sample-v3',
    prompt: `question ${n}`,
    response: `answer ${n}`,
    rating: n % 3 === 0 ? { score: 0.25 } : { thumbs: n % 2 === 0 ? 'up' : 'down' },
    user: createHash('sha256')
      .update(`user-${n % 7}`)
      .digest('hex'),
    ...extra,
  };
}

const events = (day: string, from: number, count: number) =>
  Array.from({ length: count }, (_, i) => event(from + i, day));

function tempStore(): TieredStore {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-feedback-'));
  const store = new FsStore(dir);
  return new TieredStore({ hot: store, warm: store, cold: store });
}

describe('feedback events', () => {
  it('names every bad event by index and field, and refuses the batch whole', () => {
    const good = event(1, '2026-03-01');
    const batch = [
      good,
      { ...good, id: 'has space', rating: { score: 7 } },
      { ...good, rating: { stars: 5 }, extra: true },
      { ...good, ts: 'yesterday', user: 'alice@example.com' },
      'not an object',
    ];
    const problems = validateFeedbackBatch(batch);
    const at = (index: number) => problems.filter((p) => p.index === index).map((p) => p.field);
    assert.deepEqual(at(0), []);
    assert.deepEqual(at(1).sort(), ['id', 'rating.score']);
    assert.deepEqual(at(2).sort(), ['extra', 'rating']);
    assert.deepEqual(at(3).sort(), ['ts', 'user']);
    assert.deepEqual(at(4), ['(event)']);
    assert.match(problems.find((p) => p.field === 'user')!.message, /hash .* never the raw id/);
    assert.throws(
      () => parseFeedbackBatch(batch),
      (err) =>
        err instanceof InvalidFeedback && err.problems.length === problems.length && /event 3: ts/.test(err.message),
    );
  });

  it('refuses an event over the byte limit, and the limit is configurable', () => {
    const big = event(1, '2026-03-01', { response: 'x'.repeat(70 * 1024) });
    const [problem] = validateFeedbackBatch([big]);
    assert.equal(problem.field, '(event)');
    assert.match(problem.message, /over the 65536-byte limit/);
    assert.deepEqual(validateFeedbackBatch([big], { maxEventBytes: 128 * 1024 }), []);
    const multibyte = event(2, '2026-03-01', { response: 'é'.repeat(33 * 1024) }); // 66 KiB in UTF-8
    assert.equal(validateFeedbackBatch([multibyte]).length, 1);
  });

  it('keeps events for a model version nobody registered: curation flags them, intake does not', () => {
    assert.deepEqual(validateFeedbackBatch([event(1, '2026-03-01', { modelVersion: 'never-heard-of-it' })]), []);
  });

  it('routes an event by the UTC day of its time and a stable hash of its id', () => {
    assert.equal(feedbackDay('2026-03-01T23:30:00-02:00'), '2026-03-02');
    assert.equal(feedbackShard('evt-1', 4), feedbackShard('evt-1', 4));
    // FNV-1a is fixed: these values must never change, or ids would move between ledgers.
    assert.deepEqual(
      ['a', 'evt-1', 'evt-2', '0f8e'].map((id) => feedbackShard(id, 1024)),
      [300, 772, 957, 804],
    );
    const spread = new Set(events('2026-03-01', 0, 64).map((e) => feedbackShard(e.id, 4)));
    assert.equal(spread.size, 4, 'ids spread over every shard');
    assert.equal(
      ledgerOfEvent({ id: 'a', ts: '2026-03-01T00:00:00Z' }, 4).workflowId,
      feedbackLedgerId('2026-03-01', 0xe40c292c % 4),
    );
  });

  it('reads a JSON-lines file and reports bad lines by line number', () => {
    const good = JSON.stringify(event(1, '2026-03-01'));
    const text = [good, '', '{"id": ', JSON.stringify({ ...event(2, '2026-03-01'), rating: {} }), good].join('\n');
    const { events: read, problems } = readFeedbackLines(text, 64 * 1024);
    assert.equal(read.length, 3);
    assert.deepEqual(
      problems.map((p) => [p.line, p.field]),
      [
        [3, '(line)'],
        [4, 'rating'],
      ],
    );
  });
});

describe('FeedbackBatcher', () => {
  it('sends full batches at once and the rest after the delay, resolving each caller when its batch is in', async () => {
    const sent: number[] = [];
    const batcher = new FeedbackBatcher(
      async (batch) => {
        sent.push(batch.length);
        await new Promise((r) => setTimeout(r, 5));
      },
      { maxEvents: 10, maxDelayMs: 30, maxInFlight: 2 },
    );
    const acks = events('2026-03-01', 0, 25).map((e) => batcher.add(e));
    await Promise.all(acks.slice(0, 20));
    assert.deepEqual(sent, [10, 10]);
    await Promise.all(acks);
    assert.deepEqual(sent, [10, 10, 5]);
    await batcher.close();
    await assert.rejects(batcher.add(event(99, '2026-03-01')), /closed/);
  });

  it('while every send slot is busy, later events fill the waiting batch instead of queuing small ones', async () => {
    const sent: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const batcher = new FeedbackBatcher(
      async (batch) => {
        sent.push(batch.length);
        await gate;
      },
      { maxEvents: 10, maxDelayMs: 5, maxInFlight: 1 },
    );
    const acks: Promise<void>[] = [];
    // Five cuts of 4 events while the one slot is held: 4 go out, then 16 wait as batches of 10 and 6, not four of 4.
    for (let cut = 0; cut < 5; cut++) {
      acks.push(...events('2026-03-01', cut * 4, 4).map((e) => batcher.add(e)));
      await new Promise((r) => setTimeout(r, 15));
    }
    assert.deepEqual(sent, [4]);
    release();
    await Promise.all(acks);
    assert.deepEqual(sent, [4, 10, 6]);
    await batcher.close();
  });

  it('refuses a bad event alone and fails every caller of a batch that fails', async () => {
    let fail = false;
    const batcher = new FeedbackBatcher(
      async () => {
        if (fail) throw new Error('server down');
      },
      { maxEvents: 2, maxDelayMs: 10 },
    );
    await assert.rejects(batcher.add({ id: 'x' }), InvalidFeedback);
    await Promise.all([batcher.add(event(1, '2026-03-01')), batcher.add(event(2, '2026-03-01'))]);
    fail = true;
    const failed = [batcher.add(event(3, '2026-03-01')), batcher.add(event(4, '2026-03-01'))];
    for (const f of failed) await assert.rejects(f, /server down/);
  });
});

describe('readFeedback', () => {
  it('reads partitions in order, drops repeated ids, and resumes from its watermark per ledger', async () => {
    const store = tempStore();
    const put = async (day: string, shard: number, part: number, batch: FeedbackEvent[]) =>
      store.put(feedbackPartitionUri({ day, shard, part }), await encodeFeedbackPartition(batch));
    await put('2026-03-01', 0, 0, events('2026-03-01', 0, 3));
    await put('2026-03-01', 1, 0, events('2026-03-01', 3, 2));
    await put('2026-03-01', 0, 1, [...events('2026-03-01', 2, 1), ...events('2026-03-01', 10, 1)]); // id 2 again

    const first = await readFeedback(store);
    assert.deepEqual(
      first.events.map((e) => e.id),
      [0, 1, 2, 10, 3, 4].map((n) => `evt-2026-03-01-${n}`),
    );
    assert.equal(first.duplicates, 1);
    assert.deepEqual(first.watermark, { next: { '2026-03-01/0': 2, '2026-03-01/1': 1 } });

    // A later partition of shard 0 and a late one for an earlier day both come after the watermark.
    await put('2026-03-01', 0, 2, events('2026-03-01', 20, 1));
    await put('2026-02-27', 3, 0, events('2026-02-27', 0, 1));
    // A gap (part 5 without 3 and 4) is not visible yet: reading past it would skip the missing parts for good.
    await put('2026-03-01', 1, 5, events('2026-03-01', 50, 1));
    const second = await readFeedback(store, { since: first.watermark });
    assert.deepEqual(
      second.events.map((e) => e.id),
      ['evt-2026-02-27-0', 'evt-2026-03-01-20'],
    );
    assert.equal(second.watermark.next['2026-03-01/1'], 1);
    const third = await readFeedback(store, { since: second.watermark });
    assert.deepEqual(third.events, []);
    assert.deepEqual(await listFeedbackPartitions(store, third.watermark), []);

    const paged = await readFeedback(store, { maxPartitions: 2 });
    assert.equal(paged.partitions.length, 2);
    assert.equal(paged.more, true);
  });
});

describe('the feedbackLedger workflow', () => {
  let connection: Connection;
  let client: Client;
  let workers: FlywheelWorkers;
  let running: Promise<void>;
  let config: ReturnType<typeof testConfig>;
  let flywheel: FlywheelClient;
  let store: TieredStore;

  before(async () => {
    const address = await temporalAddress();
    config = testConfig(address);
    workers = await createWorkers(config, { roles: ['io'] });
    running = workers.run();
    connection = await Connection.connect({ address });
    client = new Client({ connection });
    // Far-future days keep every test's ledgers apart (ledger ids are per namespace) and open for the whole run.
    flywheel = new FlywheelClient(client, {
      taskQueuePrefix: config.worker.taskQueuePrefix,
      feedback: { ledger: { flushIntervalMs: 200 } },
    });
    store = tieredStoreFromConfig(config);
  });

  after(async () => {
    await workers.shutdown();
    await running;
    await connection.close();
  });

  async function progressOf(day: string): Promise<FeedbackLedgerProgress[]> {
    const all: FeedbackLedgerProgress[] = [];
    for (let shard = 0; shard < 4; shard++) {
      try {
        all.push(await flywheel.feedbackProgress(feedbackLedgerId(day, shard)));
      } catch {
        // no event of this day went to this shard
      }
    }
    return all;
  }

  /** Waits until every ledger of `day` has written all it accepted. */
  async function flushed(day: string): Promise<FeedbackLedgerProgress[]> {
    for (;;) {
      const all = await progressOf(day);
      if (all.length > 0 && all.every((p) => p.buffered === 0 && p.flushed === p.accepted)) return all;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('accepts a batch once every ledger has it, and writes partitions that read back complete', async () => {
    const day = '2090-01-01';
    const batch = events(day, 0, 300);
    const receipt = await flywheel.submitFeedback(batch);
    assert.equal(receipt.accepted, 300);
    assert.equal(receipt.duplicates, 0);
    assert.deepEqual(
      receipt.ledgers,
      [0, 1, 2, 3].map((s) => feedbackLedgerId(day, s)),
    );
    const progress = await flushed(day);
    assert.equal(
      progress.reduce((n, p) => n + p.flushed, 0),
      300,
    );
    const read = await readFeedback(store);
    const mine = read.events.filter((e) => e.ts.startsWith(day));
    assert.deepEqual(mine.map((e) => e.id).sort(), batch.map((e) => e.id).sort());
    assert.deepEqual(
      mine.find((e) => e.id === batch[7].id),
      batch[7],
      'events come back field for field',
    );
    assert.ok(
      read.partitions.every((uri) => /^warm:\/\/feedback\/\d{4}-\d{2}-\d{2}\/\d\/part-\d{6}\.jsonl\.gz$/.test(uri)),
    );
  });

  it('drops ids a ledger has already accepted, within a batch and across batches', async () => {
    const day = '2090-01-02';
    const first = await flywheel.submitFeedback(events(day, 0, 100));
    assert.deepEqual([first.accepted, first.duplicates], [100, 0]);
    const again = await flywheel.submitFeedback([...events(day, 50, 100), ...events(day, 140, 20)]);
    assert.deepEqual([again.accepted, again.duplicates], [60, 60]);
    await flushed(day);
    const counts = (await feedbackIdsInStorage(store)).counts;
    const mine = [...counts].filter(([id]) => id.includes(day));
    assert.equal(mine.length, 160);
    assert.ok(
      mine.every(([, n]) => n === 1),
      'every id is stored exactly once',
    );
  });

  it('refuses a batch with a bad event whole, naming each bad index and field, and stores none of it', async () => {
    const day = '2090-01-03';
    const batch: unknown[] = events(day, 0, 10);
    batch[3] = { ...event(3, day), rating: { thumbs: 'sideways' } };
    batch[8] = { ...event(8, day), response: 'y'.repeat(65 * 1024) };
    const err = await flywheel.submitFeedback(batch).then(
      () => assert.fail('must be refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InvalidFeedback);
    assert.deepEqual(
      err.problems.map((p) => [p.index, p.field]),
      [
        [3, 'rating'],
        [8, '(event)'],
      ],
    );
    assert.deepEqual(await progressOf(day), [], 'no ledger was even started');
  });

  it('checks batches in the workflow too: a ledger refuses bad or misrouted events sent straight to it', async () => {
    const day = '2090-01-04';
    const good = events(day, 0, 40);
    const shard0 = good.filter((e) => feedbackShard(e.id, 4) === 0);
    const other = good.find((e) => feedbackShard(e.id, 4) !== 0)!;
    const send = (batch: unknown[]) =>
      client.workflow.executeUpdateWithStart('submit', {
        args: [batch],
        startWorkflowOperation: new WithStartWorkflowOperation<typeof feedbackLedger>('feedbackLedger', {
          workflowId: feedbackLedgerId(day, 0),
          taskQueue: `${config.worker.taskQueuePrefix}-io`,
          args: [{ day, shard: 0, flushIntervalMs: 200 }],
          workflowIdConflictPolicy: 'USE_EXISTING',
        }),
      });
    const err = await send([shard0[0], { ...shard0[1], prompt: '' }, other]).then(
      () => assert.fail('must be refused'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof WorkflowUpdateFailedError);
    assert.ok(err.cause instanceof ApplicationFailure);
    assert.equal(err.cause.type, 'InvalidFeedback');
    assert.deepEqual(
      (err.cause.details?.[0] as { index: number; field: string }[]).map((p) => [p.index, p.field]),
      [
        [1, 'prompt'],
        [2, '(event)'],
      ],
    );
    assert.match(err.cause.message, /belongs to ledger feedback-2090-01-04-\d, not feedback-2090-01-04-0/);
    const [progress] = await progressOf(day);
    assert.equal(progress.accepted, 0, 'the refused batch left nothing behind');
    assert.deepEqual(await send(shard0), { accepted: shard0.length, duplicates: 0 });
  });

  it("keeps a running ledger's own limits: a refusal names events by their place in the caller's batch", async () => {
    const day = '2090-01-07';
    await flywheel.submitFeedback([event(0, day)], { maxEventBytes: 2048 });
    const shard = feedbackShard(event(0, day).id, 4);
    const batch = events(day, 1, 40);
    const bigIndex = batch.findIndex((e, i) => i > 5 && feedbackShard(e.id, 4) === shard);
    batch[bigIndex] = { ...batch[bigIndex], response: 'z'.repeat(4096) };
    const err = await flywheel.submitFeedback(batch).then(
      () => assert.fail('the ledger must refuse'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InvalidFeedback);
    assert.deepEqual(
      err.problems.map((p) => [p.index, p.field]),
      [[bigIndex, '(event)']],
    );
    assert.match(err.problems[0].message, /over the 2048-byte limit/);
    assert.ok(err.accepted > 0 && /partly refused/.test(err.message), 'the other ledgers took their share');
  });

  it('continues as new with its seen ids and part numbers, so duplicates and partitions carry over', async () => {
    const day = '2090-01-05';
    const opts = { ledger: { flushIntervalMs: 50, flushesPerRun: 1 } };
    for (let round = 0; round < 4; round++) {
      await flywheel.submitFeedback(events(day, round * 40, 40), opts);
      await flushed(day);
    }
    const progress = await flushed(day);
    assert.ok(
      progress.every((p) => p.runs >= 3),
      `every ledger rolled over: runs ${progress.map((p) => p.runs)}`,
    );
    const again = await flywheel.submitFeedback(events(day, 0, 160), opts);
    assert.deepEqual([again.accepted, again.duplicates], [0, 160]);
    const mine = [...(await feedbackIdsInStorage(store)).counts].filter(([id]) => id.includes(day));
    assert.equal(mine.length, 160);
    assert.ok(mine.every(([, n]) => n === 1));
    for (const p of progress) {
      const parts = await listFeedbackPartitions(store, { next: {} });
      const own = parts.filter((x) => x.day === day && x.shard === p.shard).map((x) => x.part);
      assert.deepEqual(
        own,
        own.map((_, i) => i),
        'part numbers run on without gaps across runs',
      );
      assert.equal(own.length, p.partitions);
    }
  });

  it('closes a day once it is over and flushed; a late event reopens it and numbering goes on', async () => {
    const day = '2001-02-03';
    const late = { ledger: { flushIntervalMs: 50, closeAfterHours: 0 } };
    const one = events(day, 0, 40).filter((e) => feedbackShard(e.id, 4) === 1);
    await flywheel.submitFeedback(one.slice(0, 2), late);
    const handle = client.workflow.getHandle(feedbackLedgerId(day, 1));
    const summary = (await handle.result()) as { accepted: number; partitions: number };
    assert.deepEqual([summary.accepted, summary.partitions], [2, 1]);
    await flywheel.submitFeedback(one.slice(2, 3), late);
    await client.workflow.getHandle(feedbackLedgerId(day, 1)).result();
    const parts = (await listFeedbackPartitions(store)).filter((p) => p.day === day).map((p) => p.part);
    assert.deepEqual(parts, [0, 1]);
  });

  it('batches single events from many callers into few updates', async () => {
    const day = '2090-01-06';
    const batcher = flywheel.feedbackBatcher({ maxEvents: 100, maxDelayMs: 20 });
    await Promise.all(events(day, 0, 450).map((e) => batcher.add(e)));
    await batcher.close();
    const progress = await flushed(day);
    assert.equal(
      progress.reduce((n, p) => n + p.accepted, 0),
      450,
    );
  });
});

/** Resolves when the child prints a line matching `pattern`. */
function waitForOutput(child: ChildProcess, pattern: RegExp, timeoutMs = 60_000): Promise<void> {
  let seen = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${pattern}:\n${seen}`)), timeoutMs);
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (pattern.test(seen)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before ${pattern}:\n${seen}`));
    });
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve(child.exitCode)
    : new Promise((r) => child.once('exit', (code) => r(code)));
}

function writeJsonl(file: string, batch: unknown[]): string {
  fs.writeFileSync(file, batch.map((e) => JSON.stringify(e)).join('\n') + '\n');
  return file;
}

describe('feedback durability', () => {
  let s3: TestS3Server;
  let gate: S3Gate;
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-feedback-kill-'));

  before(async () => {
    s3 = await startS3Server();
    gate = await startS3Gate(s3.endpoint);
  });
  after(async () => {
    await gate?.close();
    await s3?.stop();
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('`flywheel feedback submit` refuses a file with bad lines whole, naming each line, exit 2', async () => {
    const file = writeJsonl(path.join(scratch, 'bad.jsonl'), [
      event(1, '2091-01-01'),
      { ...event(2, '2091-01-01'), user: 'bob' },
      event(3, '2091-01-01'),
    ]);
    fs.appendFileSync(file, '{not json}\n');
    // Nothing listens at this address: a refused file must not even try to connect.
    const result = await runCli(['feedback', 'submit', file, '--json'], {
      ...process.env,
      TEMPORAL_ADDRESS: '127.0.0.1:1',
    });
    assert.equal(result.status, 2, result.stderr);
    const out = JSON.parse(result.stdout) as { ok: boolean; problems: { line: number; field: string }[] };
    assert.equal(out.ok, false);
    assert.deepEqual(
      out.problems.map((p) => [p.line, p.field]),
      [
        [2, 'user'],
        [4, '(line)'],
      ],
    );
    assert.match(result.stderr, /2 bad lines; nothing submitted/);
  });

  it(
    'feedback a separate process submitted survives SIGKILL of the worker mid-flush: every id stored exactly once',
    { timeout: 240_000 },
    async () => {
      const address = await temporalAddress();
      const bucket = `flywheel-feedback-${Date.now().toString(36)}`;
      const s3client = createS3Client(s3ClientOptions(s3));
      const warm = new S3Store({ bucket, prefix: 'warm', client: s3client });
      await warm.ensureBucket();
      const local = new FsStore(path.join(scratch, 'local'));
      const store = new TieredStore({ hot: local, warm, cold: local });
      const prefix = `flywheel-feedback-kill-${process.pid}`;
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        TEMPORAL_ADDRESS: address,
        FLYWHEEL_HOME: path.join(scratch, 'home'),
        FLYWHEEL_TASK_QUEUE_PREFIX: prefix,
        FLYWHEEL_METRICS_PORT: '0',
        FLYWHEEL_TASK_QUEUES: 'io',
        FLYWHEEL_REACH_UNRESTRICTED: '1',
        FLYWHEEL_WARM: `s3://${bucket}/warm`,
        FLYWHEEL_S3_ENDPOINT: gate.endpoint,
        FLYWHEEL_S3_CHECKSUMS: s3.checksums,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
      };
      const worker = () => spawn(process.execPath, [cli, 'worker'], { cwd: root, env });
      const day = '2091-06-01';
      const wave1 = events(day, 0, 2000);
      const wave2 = [...events(day, 1900, 100), ...events(day, 2000, 500)]; // 100 resubmitted ids
      const held = gate.holdNext(/\/feedback\/2091-06-01\//);

      const first = worker();
      const connection = await Connection.connect({ address });
      try {
        await waitForOutput(first, /worker on/);
        const submitted = await runCli(
          ['feedback', 'submit', writeJsonl(path.join(scratch, 'wave1.jsonl'), wave1), '--json'],
          env,
        );
        assert.equal(submitted.status, 0, submitted.stderr);
        assert.equal((JSON.parse(submitted.stdout) as { accepted: number }).accepted, 2000);

        // A flush has stored its partition and waits for the answer: kill the worker now.
        const heldPath = await held;
        first.kill('SIGKILL');
        await exitOf(first);
        gate.releaseHeld();

        // Submitted while no worker runs: the call returns once the next worker has the events in a ledger.
        const secondWave = runCli(
          ['feedback', 'submit', writeJsonl(path.join(scratch, 'wave2.jsonl'), wave2), '--json'],
          env,
        );
        await new Promise((r) => setTimeout(r, 1000));
        const second = worker();
        try {
          const resubmitted = await secondWave;
          assert.equal(resubmitted.status, 0, resubmitted.stderr);
          const receipt = JSON.parse(resubmitted.stdout) as { accepted: number; duplicates: number };
          assert.deepEqual([receipt.accepted, receipt.duplicates], [500, 100]);

          const flywheel = new FlywheelClient(new Client({ connection }), { taskQueuePrefix: prefix });
          await flywheel.waitFeedbackFlushed(
            [0, 1, 2, 3].map((s) => feedbackLedgerId(day, s)),
            120_000,
          );
          const counts = (await feedbackIdsInStorage(store)).counts;
          const expected = new Set([...wave1, ...wave2].map((e) => e.id));
          assert.equal(expected.size, 2500);
          assert.deepEqual(
            [...expected].filter((id) => counts.get(id) !== 1),
            [],
            'every id is in storage exactly once: none lost, none doubled',
          );
          assert.equal(counts.size, 2500);
          assert.ok(
            gate.puts.filter((p) => p === heldPath).length >= 2,
            'the killed flush was retried, and rewrote the same object',
          );
        } finally {
          second.kill('SIGTERM');
          await exitOf(second);
        }
      } finally {
        first.kill('SIGKILL');
        await connection.close();
        s3client.destroy();
      }
    },
  );
});
