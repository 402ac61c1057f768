import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { CheckpointManager, keepLastN, type CheckpointMetaInput } from '../lib/checkpoint';
import { TrainingSpec } from '../lib/contracts/training';
import { createS3Client, FsStore, parseTierUri, S3Store, TieredStore, type ObjectStore } from '../lib/storage';
import {
  createTrainer,
  dot,
  mlpLayout,
  mlpTrainingFlopsPerToken,
  Xorshift128,
  type MlpShape,
  type Trainer,
  type TrainerSpecInput,
} from '../lib/train';
import { s3ClientOptions, startS3Server } from '../test/support/s3-server';
import type { Benchmark, Figure } from './harness';

const MB = 1024 * 1024;

/** The FLOP/s benchmark's model: 0.28M parameters, 256 predicted tokens per step, one thread. */
const FLOPS_SPEC: TrainerSpecInput = {
  seed: 1,
  model: { contextTokens: 4, embeddingDim: 32, hiddenDim: 128, maxVocab: 2048 },
  sequenceTokens: 64,
  batch: { trainBatchSize: 4 },
};
const FLOPS_STEPS_PER_ROUND = 2;

/** The checkpoint benchmarks' model: 2.15M parameters, so weights + AdamW moments are about 26 MB. */
const CHECKPOINT_MODEL = { contextTokens: 4, embeddingDim: 64, hiddenDim: 192, maxVocab: 8192 };
const CHECKPOINT_SPEC: TrainerSpecInput = {
  seed: 2,
  model: CHECKPOINT_MODEL,
  sequenceTokens: 64,
  batch: { trainBatchSize: 1 },
};
// The synthetic tokens hold more distinct ids than maxVocab, so the vocabulary is full.
const CHECKPOINT_PARAMETERS = mlpLayout({ ...CHECKPOINT_MODEL, vocabSize: CHECKPOINT_MODEL.maxVocab }).parameters;
const CHECKPOINT_LABEL = `${(CHECKPOINT_PARAMETERS / 1e6).toFixed(2)}M parameters, weights + AdamW moments ${((3 * 4 * CHECKPOINT_PARAMETERS) / 2 ** 20).toFixed(0)} MB`;

const mbps = (bytes: number, ms: number) => ({ value: bytes / MB / (ms / 1000) });

/**
 * Token ids with a long-tailed frequency (P(id) ∝ 1/id, as in text), many more distinct ids than the vocabulary
 * keeps, so every model row is used. Deterministic.
 */
function syntheticTokens(count: number, seed: number): Uint32Array {
  const rng = Xorshift128.fromSeed(seed);
  const logMax = Math.log(50_000);
  const tokens = new Uint32Array(count);
  for (let i = 0; i < count; i++) tokens[i] = Math.floor(Math.exp(rng.nextFloat() * logMax));
  return tokens;
}

/**
 * The matrix products of training `shape` on blocks of positions, written with MlpKernel's loops (float32 weight
 * rows widened to float64, four-way dot products forward, row-at-a-time accumulation backward) and nothing else:
 * no embedding gather, tanh, softmax, gradient reduction, clipping or AdamW. Its FLOP/s is this machine's for the
 * trainer's kernel, so trainer/raw is the share of time the trainer spends in its matrix products.
 */
class RawMatmuls {
  private readonly w1: Float32Array;
  private readonly w2: Float32Array;
  private readonly g1: Float32Array;
  private readonly g2: Float32Array;
  private readonly x: Float64Array;
  private readonly dx: Float64Array;
  private readonly h: Float64Array;
  private readonly dh: Float64Array;
  private readonly y: Float64Array;
  private readonly row: Float64Array;
  private readonly acc: Float64Array;
  private readonly K1: number;

  constructor(
    private readonly shape: MlpShape,
    private readonly block = 64,
  ) {
    const { contextTokens: C, embeddingDim: D, hiddenDim: H, vocabSize: V } = shape;
    this.K1 = C * D;
    const rng = Xorshift128.fromSeed(3);
    const random = (n: number, scale: number) => {
      const a = new Float32Array(n);
      for (let i = 0; i < n; i++) a[i] = (2 * rng.nextFloat() - 1) * scale;
      return a;
    };
    this.w1 = random(H * this.K1, Math.sqrt(3 / this.K1));
    this.w2 = random(V * H, Math.sqrt(3 / H));
    this.g1 = new Float32Array(H * this.K1);
    this.g2 = new Float32Array(V * H);
    this.x = Float64Array.from(random(block * this.K1, 1));
    this.dx = new Float64Array(block * this.K1);
    this.h = new Float64Array(block * H);
    this.dh = new Float64Array(block * H);
    this.y = new Float64Array(block * V);
    this.row = new Float64Array(Math.max(this.K1, H));
    this.acc = new Float64Array(Math.max(this.K1, H));
  }

  /** FLOPs of one block, counted as mlpTrainingFlopsPerToken counts them. */
  get flopsPerBlock(): number {
    const { hiddenDim: H, vocabSize: V } = this.shape;
    return this.block * 3 * 2 * (this.K1 * H + H * V);
  }

  /** Forward and backward matrix products of both layers for one block of positions. */
  runBlock(): void {
    const { hiddenDim: H, vocabSize: V } = this.shape;
    const { w1, w2, g1, g2, x, dx, h, dh, y, row, acc, K1 } = this;
    const n = this.block;
    for (let j = 0; j < H; j++) {
      const w = j * K1;
      for (let k = 0; k < K1; k++) row[k] = w1[w + k];
      for (let p = 0; p < n; p++) h[p * H + j] = dot(row, x, p * K1, K1);
    }
    for (let v = 0; v < V; v++) {
      const w = v * H;
      for (let j = 0; j < H; j++) row[j] = w2[w + j];
      // The outputs stand in for the logits' gradient: scaled down so accumulations stay in range.
      for (let p = 0; p < n; p++) y[p * V + v] = 1e-3 * dot(row, h, p * H, H);
    }
    dh.fill(0, 0, n * H);
    for (let v = 0; v < V; v++) {
      const w = v * H;
      for (let j = 0; j < H; j++) {
        row[j] = w2[w + j];
        acc[j] = 0;
      }
      for (let p = 0; p < n; p++) {
        const d = y[p * V + v];
        const o = p * H;
        let j = 0;
        for (; j + 3 < H; j += 4) {
          acc[j] += d * h[o + j];
          acc[j + 1] += d * h[o + j + 1];
          acc[j + 2] += d * h[o + j + 2];
          acc[j + 3] += d * h[o + j + 3];
          dh[o + j] += row[j] * d;
          dh[o + j + 1] += row[j + 1] * d;
          dh[o + j + 2] += row[j + 2] * d;
          dh[o + j + 3] += row[j + 3] * d;
        }
        for (; j < H; j++) {
          acc[j] += d * h[o + j];
          dh[o + j] += row[j] * d;
        }
      }
      for (let j = 0; j < H; j++) g2[w + j] += acc[j];
    }
    for (let j = 0; j < H; j++) {
      const w = j * K1;
      for (let k = 0; k < K1; k++) acc[k] = 0;
      for (let p = 0; p < n; p++) {
        const d = dh[p * H + j];
        const o = p * K1;
        for (let k = 0; k < K1; k++) acc[k] += d * x[o + k];
      }
      for (let k = 0; k < K1; k++) g1[w + k] += acc[k];
    }
    dx.fill(0, 0, n * K1);
    for (let j = 0; j < H; j++) {
      const w = j * K1;
      for (let k = 0; k < K1; k++) row[k] = w1[w + k];
      for (let p = 0; p < n; p++) {
        const d = dh[p * H + j];
        const o = p * K1;
        for (let k = 0; k < K1; k++) dx[o + k] += row[k] * d;
      }
    }
  }
}

interface CheckpointFixture {
  files: Record<string, Buffer>;
  bytes: number;
  meta: CheckpointMetaInput;
}

let fixture: CheckpointFixture | undefined;

/** One trained step of the checkpoint model, serialized: the bytes every checkpoint benchmark writes. */
async function checkpointFixture(): Promise<CheckpointFixture> {
  if (fixture) return fixture;
  const trainer = createTrainer(CHECKPOINT_SPEC, syntheticTokens(300_000, 2));
  try {
    if (trainer.parameterCount !== CHECKPOINT_PARAMETERS)
      throw new Error(`checkpoint model has ${trainer.parameterCount} parameters, expected ${CHECKPOINT_PARAMETERS}`);
    await trainer.trainSteps(1); // non-zero AdamW moments
    const files = trainer.serialize();
    fixture = {
      files,
      bytes: Object.values(files).reduce((n, b) => n + b.length, 0),
      meta: { runId: 'bench', epoch: trainer.epoch, specDigest: trainer.specDigest },
    };
    return fixture;
  } finally {
    await trainer.close();
  }
}

/** Where warm:// lives for a benchmark, and the same bytes moved without the store or the manager. */
interface WarmBackend {
  label: string;
  store: ObjectStore;
  rawWrite(key: string, bytes: Buffer): Promise<void>;
  rawRead(key: string): Promise<Buffer>;
  close(): Promise<void>;
}

async function folderBackend(dir: string): Promise<WarmBackend> {
  const root = path.join(dir, 'warm');
  return {
    label: 'folder',
    store: new FsStore(root),
    async rawWrite(key, bytes) {
      await fs.promises.mkdir(path.dirname(path.join(root, key)), { recursive: true });
      await fs.promises.writeFile(path.join(root, key), bytes, { flush: true });
    },
    rawRead: (key) => fs.promises.readFile(path.join(root, key)),
    close: async () => undefined,
  };
}

async function s3Backend(): Promise<WarmBackend> {
  const server = await startS3Server();
  const client = createS3Client(s3ClientOptions(server));
  const bucket = 'flywheel-bench';
  const store = new S3Store({ bucket, client });
  await store.ensureBucket();
  return {
    label: `S3 (${server.kind})`,
    store,
    async rawWrite(key, bytes) {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes }));
    },
    async rawRead(key) {
      const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return Buffer.from(await res.Body!.transformToByteArray());
    },
    async close() {
      client.destroy();
      await server.stop();
    },
  };
}

/**
 * Checkpoint save to warm (hot write, then the warm commit awaited) and restore from warm (sha256 verified), each
 * against the same bytes written to hot and copied to warm, or read from warm, by hand.
 */
function checkpointBenchmarks(tier: 'folder' | 's3'): Benchmark[] {
  let dir = '';
  let backend: WarmBackend | undefined;
  let data: CheckpointFixture | undefined;
  let round = 0;
  const open = async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-ckpt-'));
    data = await checkpointFixture();
    backend = tier === 'folder' ? await folderBackend(dir) : await s3Backend();
  };
  const close = async () => {
    await backend?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const stores = (hot: string) =>
    new TieredStore({
      hot: new FsStore(path.join(dir, hot)),
      warm: backend!.store,
      cold: new FsStore(path.join(dir, 'cold')),
    });
  let saver: CheckpointManager | undefined;
  let restorer: CheckpointManager | undefined;

  const save: Benchmark = {
    name: `training checkpoint save to warm, ${tier} (${CHECKPOINT_LABEL})`,
    unit: 'MB/s',
    target: 0.5,
    async setup() {
      await open();
      saver = new CheckpointManager({ store: stores('hot'), runPrefix: 'runs/bench-save/checkpoints' });
    },
    candidate: {
      label: 'CheckpointManager.save + commitToWarm',
      async run() {
        const step = ++round;
        const t = performance.now();
        await saver!.save(step, data!.files, data!.meta);
        await saver!.commitToWarm(step);
        const ms = performance.now() - t;
        await saver!.applyRetention([keepLastN(2)]);
        return mbps(data!.bytes, ms);
      },
    },
    baseline: {
      label: 'raw write to hot (fsync) + copy to warm',
      async run() {
        const folder = path.join(dir, 'raw-hot', String(++round));
        const names = Object.keys(data!.files);
        const t = performance.now();
        await fs.promises.mkdir(folder, { recursive: true });
        await Promise.all(
          names.map((name) => fs.promises.writeFile(path.join(folder, name), data!.files[name], { flush: true })),
        );
        await Promise.all(
          names.map(async (name) =>
            backend!.rawWrite(`raw/${round}/${name}`, await fs.promises.readFile(path.join(folder, name))),
          ),
        );
        const ms = performance.now() - t;
        fs.rmSync(folder, { recursive: true, force: true });
        return mbps(data!.bytes, ms);
      },
    },
    teardown: close,
  };

  let restoreStep = 0;
  const restore: Benchmark = {
    name: `training checkpoint restore from warm, ${tier} (sha256 verified)`,
    unit: 'MB/s',
    target: 0.5,
    async setup() {
      await open();
      const writer = new CheckpointManager({ store: stores('hot'), runPrefix: 'runs/bench-restore/checkpoints' });
      restoreStep = 100;
      await writer.save(restoreStep, data!.files, data!.meta);
      await writer.commitToWarm(restoreStep);
      // An empty hot tier, as on a fresh machine: restore reads warm.
      restorer = new CheckpointManager({ store: stores('hot-empty'), runPrefix: 'runs/bench-restore/checkpoints' });
    },
    candidate: {
      label: 'CheckpointManager.restoreLatest',
      async run() {
        const t = performance.now();
        const restored = await restorer!.restoreLatest();
        const ms = performance.now() - t;
        if (restored.tier !== 'warm' || restored.step !== restoreStep)
          throw new Error(`restored step ${restored.step} from ${restored.tier}, expected ${restoreStep} from warm`);
        return mbps(data!.bytes, ms);
      },
    },
    baseline: {
      label: 'raw read of the same objects',
      async run() {
        const layout = restorer!.layout;
        const names = Object.keys(data!.files);
        const t = performance.now();
        const read = await Promise.all(
          names.map((name) => backend!.rawRead(parseTierUri(layout.fileUri('warm', restoreStep, name)).key)),
        );
        const ms = performance.now() - t;
        const bytes = read.reduce((n, b) => n + b.length, 0);
        if (bytes !== data!.bytes) throw new Error(`read ${bytes} bytes, expected ${data!.bytes}`);
        return mbps(bytes, ms);
      },
    },
    teardown: close,
  };
  return [save, restore];
}

export function trainBenchmarks(): Benchmark[] {
  let trainer: Trainer | undefined;
  let raw: RawMatmuls | undefined;
  let flopsPerStep = 0;
  const flops: Benchmark = {
    name: 'training FLOP/s vs a raw matmul with the same kernel (one thread)',
    unit: 'GFLOP/s',
    target: 0.5,
    async setup() {
      trainer = createTrainer(FLOPS_SPEC, syntheticTokens(300_000, 1));
      raw = new RawMatmuls(trainer.shape);
      flopsPerStep = trainer.tokensPerStep * mlpTrainingFlopsPerToken(trainer.shape);
    },
    candidate: {
      label: 'Trainer.trainSteps',
      async run() {
        const t = performance.now();
        await trainer!.trainSteps(FLOPS_STEPS_PER_ROUND);
        return { value: (FLOPS_STEPS_PER_ROUND * flopsPerStep) / 1e9 / ((performance.now() - t) / 1000) };
      },
    },
    baseline: {
      label: "raw matmuls, MlpKernel's loops",
      async run() {
        const blocks = (FLOPS_STEPS_PER_ROUND * flopsPerStep) / raw!.flopsPerBlock;
        const t = performance.now();
        for (let b = 0; b < blocks; b++) raw!.runBlock();
        return { value: (blocks * raw!.flopsPerBlock) / 1e9 / ((performance.now() - t) / 1000) };
      },
    },
    async teardown() {
      await trainer?.close();
    },
  };
  return [flops, ...checkpointBenchmarks('folder'), ...checkpointBenchmarks('s3')];
}

/**
 * One training segment as the trainSegment activity runs it (TrainingSpec's default segmentSteps and
 * checkpointEvery, a synchronous per-step callback like its heartbeat, serialize + save to hot, warm commit in the
 * background, awaited at the end), timing how long training is blocked at each checkpoint.
 */
async function checkpointStall(): Promise<Figure[]> {
  const { segmentSteps, checkpointEvery } = TrainingSpec.parse({ run: 'bench', dataset: 'warm://bench/manifest.json' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-stall-'));
  const folder = (name: string) => new FsStore(path.join(dir, name));
  const checkpoints = new CheckpointManager({
    store: new TieredStore({ hot: folder('hot'), warm: folder('warm'), cold: folder('cold') }),
    runPrefix: 'runs/bench-stall/checkpoints',
  });
  const trainer = createTrainer(CHECKPOINT_SPEC, syntheticTokens(300_000, 2));
  try {
    await checkpointFixture(); // compiles the kernel's hot paths for this shape before the clock starts
    const stalls: number[] = [];
    const commits: { started: number; finished?: number }[] = [];
    const chunks: { steps: number; ms: number }[] = [];
    const pending: Promise<unknown>[] = [];
    let heartbeat = { step: 0, loss: NaN };
    let bytes = 0;
    const t0 = performance.now();
    while (trainer.step < segmentSteps) {
      const steps = Math.min(checkpointEvery - (trainer.step % checkpointEvery), segmentSteps - trainer.step);
      const c = performance.now();
      await trainer.trainSteps(steps, ({ step, loss }) => {
        heartbeat = { step, loss };
      });
      chunks.push({ steps, ms: performance.now() - c });
      const s = performance.now();
      const files = trainer.serialize();
      await checkpoints.save(trainer.step, files, {
        runId: 'bench-stall',
        epoch: trainer.epoch,
        specDigest: trainer.specDigest,
        metrics: { loss: heartbeat.loss },
      });
      stalls.push(performance.now() - s);
      bytes = Object.values(files).reduce((n, b) => n + b.length, 0);
      const commit: { started: number; finished?: number } = { started: performance.now() };
      commits.push(commit);
      pending.push(checkpoints.commitToWarm(trainer.step).then(() => (commit.finished = performance.now())));
    }
    const d = performance.now();
    await Promise.all(pending);
    const drainMs = performance.now() - d;
    const segmentMs = performance.now() - t0;
    const stallMs = stalls.reduce((a, b) => a + b, 0);
    const stepMs = chunks.reduce((a, c) => a + c.ms, 0) / chunks.reduce((a, c) => a + c.steps, 0);
    // A commit started before the last chunk that finished only after it did not overlap training.
    const overlapped = commits
      .slice(0, -1)
      .map((c, i) => (c.finished ?? Infinity) - c.started < chunks[i + 1].ms * 0.9)
      .every(Boolean);
    return [
      {
        name: 'training stall per checkpoint (serialize + hot save), share of segment time',
        value: stallMs / segmentMs,
        unit: '',
        max: 0.05,
        note:
          `${segmentSteps}-step segment, checkpoint every ${checkpointEvery}: ${stalls.length} × ` +
          `${(bytes / MB).toFixed(0)} MB, ${stalls.map((ms) => ms.toFixed(0)).join(' / ')} ms blocked of ` +
          `${(segmentMs / 1000).toFixed(1)} s (${stepMs.toFixed(0)} ms/step); last warm commit awaited at the end ` +
          `${drainMs.toFixed(0)} ms; earlier commits ${overlapped ? 'overlapped' : 'did NOT overlap'} training`,
      },
    ];
  } finally {
    await trainer.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

interface RecoveryRun {
  server: string;
  heartbeatTimeoutSeconds: number;
  killedAtStep: number;
  sinceLastHeartbeatAtKill: number;
  workerReadySeconds: number;
  retryStartedSeconds: number;
  resumedSeconds: number;
  resumedHeartbeatStep: number;
  checkpointEvery: number;
}

/** A train worker SIGKILLed mid-segment under a dev server, in a fresh process (its own Temporal runtime). */
function recoveryAfterKill(): Figure[] {
  process.stderr.write('running: training recovery after SIGKILL of the train worker\n');
  const run = spawnSync(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, 'train-recovery.ts')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (run.status !== 0) throw new Error(`training recovery run failed (exit ${run.status})`);
  const r = JSON.parse(run.stdout.trim().split('\n').at(-1)!) as RecoveryRun;
  return [
    {
      name: `training recovery after SIGKILL: kill → training again (heartbeat timeout ${r.heartbeatTimeoutSeconds} s)`,
      value: r.resumedSeconds,
      unit: 's',
      note:
        `killed at step ≥ ${r.killedAtStep}, ${r.sinceLastHeartbeatAtKill.toFixed(1)} s after the last heartbeat; ` +
        `new worker ready ${r.workerReadySeconds.toFixed(1)} s, retry started ${r.retryStartedSeconds.toFixed(1)} s, ` +
        `heartbeat at step ${r.resumedHeartbeatStep} (checkpoint every ${r.checkpointEvery}); ${r.server}`,
    },
  ];
}

/** Figures with bounds rather than baselines: the checkpoint stall share and the recovery time after a SIGKILL. */
export async function trainFigures(): Promise<Figure[]> {
  process.stderr.write('running: training stall per checkpoint\n');
  return [...(await checkpointStall()), ...recoveryAfterKill()];
}
