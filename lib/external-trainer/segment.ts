import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CheckpointManager } from '../checkpoint';
import { canonicalJson } from '../contracts/digest';
import { currentUsage, gpusGiven } from '../cost';
import { InvalidSpec } from '../contracts/invalid-spec';
import type { Evaluation, SegmentInput, SegmentSummary, TrainingSpec } from '../contracts/training';
import { recordCheckpoint, recordTraining } from '../metrics';
import { ModelRegistry } from '../registry/model-registry';
import { sha256Hex } from '../storage/hashing';
import type { TieredStore } from '../storage/tiered-store';
import { restoreNewest, runCheckpoints, type SegmentHooks, type SegmentRunner } from '../train/segment-runner';
import {
  checkpointFileBodies,
  checkpointFileNames,
  checkpointFolder,
  EXTERNAL_EVALUATIONS_FILE,
  EXTERNAL_PROGRESS_FILE,
  FLYWHEEL_FILES,
  writeCheckpointFolder,
  type ExternalProgressRecord,
} from './checkpoint-folder';
import { externalSpecDigest, trainerLaunch } from './environment';
import { protocolError } from './errors';
import { localizeDataset } from './local-dataset';
import type { CheckpointEvent } from './protocol';
import { runExternalTrainer, type RunningTrainer, type TrainerRunOutcome, type TrainingEvent } from './run-trainer';
import { SegmentProgress, type SegmentStart } from './segment-progress';
import type { ExternalTrainerSpec } from './spec';
import { externalScratchDir, prepareWorkDir, recordTrainer, removeWorkDir, type TrainerWorkDir } from './work-dir';

type ExternalTrainingSpec = TrainingSpec & { external: ExternalTrainerSpec };

/** What the segment has saved so far: the checkpoints, their commits to warm, the newest weights' hash. */
interface SavedSoFar {
  steps: number[];
  commits: Promise<unknown>[];
  weightsSha256?: string;
}

/**
 * One segment of an external trainer (a torchrun or deepspeed command from `spec.external`): restores the newest
 * checkpoint that verifies into a local folder it resumes from, starts the command in its own process group with
 * the dataset and checkpoint folders in its environment, and reads its JSON-lines progress. Each checkpoint it
 * reports is saved to hot:// with a manifest, committed to warm:// and retained by the spec's policies, exactly like
 * the built-in trainer's. Cancellation, a stall or a timeout terminates the process group (SIGTERM, then SIGKILL); a
 * crash is retried from the last checkpoint; a configuration exit code fails the run with the tail of the trainer's
 * stderr.
 */
export const runExternalSegment: SegmentRunner = async ({ store, input, hooks }) => {
  const spec = withExternal(input.spec);
  const checkpoints = runCheckpoints(store, spec, hooks.log);
  const specDigest = externalSpecDigest(spec);
  // One folder per run and store, so two deployments sharing a machine never share a work folder.
  const storeId = sha256Hex(store.backendUri(checkpoints.layout.latestUri())).slice(0, 12);
  const work = await prepareWorkDir(join(externalScratchDir(), 'runs', `${spec.run}-${storeId}`));
  const saved: SavedSoFar = { steps: [], commits: [] };
  try {
    const restored = await restoreInto(checkpoints, specDigest, work.resume, hooks.log);
    const progress = new SegmentProgress(spec, restored.start, input);
    saved.weightsSha256 = restored.weightsSha256;
    let stopped: TrainerRunOutcome['stopped'];
    if (progress.start < progress.until && !progress.patienceSpent) {
      const run = { store, spec, input, hooks, work, progress, checkpoints, specDigest, saved };
      stopped = await runTrainer(run);
    }
    await Promise.all(saved.commits);
    const step = progress.lastCheckpoint ?? progress.start;
    if (stopped === 'cancelled') {
      const message = `training cancelled; the external trainer was stopped (last checkpoint: step ${step})`;
      return { status: 'cancelled', step, message };
    }
    const final = progress.evaluations.filter((e) => e.step <= step).at(-1);
    if (final === undefined) {
      throw protocolError(
        `no eval event by step ${step}; print {"event":"eval","step":N,"valLoss":x} at least at ` +
          'FLYWHEEL_UNTIL_STEP, before the checkpoint',
      );
    }
    await checkpoints.applyRetention();
    recordTraining(hooks.meter, { tokensPerSecond: progress.tokensPerSecond });
    const summary: SegmentSummary = {
      step,
      epoch: progress.atCheckpoint.epoch,
      loss: progress.atCheckpoint.loss ?? final.loss,
      valLoss: final.valLoss,
      perplexity: final.perplexity,
      tokensPerSecond: progress.tokensPerSecond,
      resumedFrom: progress.start,
      checkpoints: saved.steps,
      weightsSha256: saved.weightsSha256 ?? '',
      firstLoss: progress.firstLoss,
      evaluations: progress.evaluationsAfter(input.from),
      earlyStop: progress.earlyStop,
      stoppedEarly: stopped === 'requested' || progress.patienceSpent,
    };
    return { status: 'completed', summary };
  } finally {
    await checkpoints.drain().catch(() => undefined);
    await removeWorkDir(work).catch(() => undefined);
  }
};

interface TrainerRun {
  store: TieredStore;
  spec: ExternalTrainingSpec;
  input: SegmentInput;
  hooks: SegmentHooks;
  work: TrainerWorkDir;
  progress: SegmentProgress;
  checkpoints: CheckpointManager;
  specDigest: string;
  saved: SavedSoFar;
}

/** Starts the trainer for the segment and follows its events to its end; says whether it was stopped on purpose. */
async function runTrainer(run: TrainerRun): Promise<TrainerRunOutcome['stopped']> {
  const { store, spec, input, hooks, work, progress } = run;
  const dataset = await localizeDataset(store, spec.dataset, join(externalScratchDir(), 'shards'), work.datasetFile);
  // A fine-tune's first segment starts from the base model's registered files; later ones resume.
  const init = progress.start === 0 ? input.base : undefined;
  if (init) {
    const registry = new ModelRegistry(store);
    const base = await registry.get(init.model, init.version);
    await writeCheckpointFolder(work.init, await registry.loadFiles(base));
  }
  const launch = trainerLaunch({
    spec,
    work,
    dataset,
    start: progress.start,
    until: progress.until,
    attempt: hooks.attempt,
    init,
  });
  let pid: number | undefined;
  const heartbeat = () => hooks.heartbeat({ step: progress.lastStep, loss: progress.loss, pid });
  let stopAtCheckpoint = false;

  const onEvent = async (event: TrainingEvent, trainer: RunningTrainer) => {
    if (event.event === 'step') progress.step(event);
    else if (event.event === 'eval') {
      progress.eval(event);
      stopAtCheckpoint ||= progress.patienceSpent;
    } else if (event.event === 'checkpoint') {
      progress.checkpoint(event);
      await saveCheckpoint(run, event);
      if (stopAtCheckpoint) trainer.stop();
    } else progress.done(event);
    heartbeat();
  };

  // Its GPUs are held from start to exit, busy or not: GPU time is wall time × the GPUs it was given.
  const gpus = gpusGiven(launch.argv, launch.env);
  const started = performance.now();
  const outcome = await runExternalTrainer({
    launch: { ...launch, cwd: spec.external.cwd },
    progressFile: spec.external.report === 'file' ? work.progressFile : undefined,
    stallTimeoutMs: spec.external.stallTimeoutSeconds * 1000,
    timeoutMs: spec.external.timeoutSeconds === undefined ? undefined : spec.external.timeoutSeconds * 1000,
    killGraceMs: spec.external.killGraceSeconds * 1000,
    nonRetryableExitCodes: spec.external.nonRetryableExitCodes,
    signal: hooks.signal,
    onStart: (trainer) => {
      pid = trainer.pid;
      heartbeat();
      recordTrainer(work, trainer.pid).catch((err: Error) =>
        hooks.log.warn(`could not record the trainer's pid: ${err.message}`),
      );
    },
    onEvent,
    onText: (line, stream) => hooks.log.debug(`trainer ${stream}: ${line}`),
  }).finally(() => {
    const usage = currentUsage();
    if (usage) usage.gpuSeconds += (gpus * (performance.now() - started)) / 1000;
  });
  return outcome.stopped;
}

/** Saves the checkpoint the trainer reported to hot:// with Flywheel's records, and commits it to warm behind. */
async function saveCheckpoint(run: TrainerRun, event: CheckpointEvent): Promise<void> {
  const { spec, hooks, work, progress, checkpoints, specDigest, saved } = run;
  const { step, files, modelFiles, weightsSha256: weights } = event;
  const folder = checkpointFolder(work.checkpoints, step);
  const names = await checkpointFileNames(folder, step, files, modelFiles);
  const evaluated = progress.evaluations.at(-1);
  const record: ExternalProgressRecord = {
    loss: progress.loss,
    epoch: progress.epoch,
    tokensPerSecond: progress.tokensPerSecond,
    weightsSha256: weights,
    ...(modelFiles ? { modelFiles: [...new Set(modelFiles)].sort() } : {}),
  };
  const started = process.hrtime.bigint();
  const checkpoint = await checkpoints.save(
    step,
    {
      ...checkpointFileBodies(folder, names),
      [EXTERNAL_EVALUATIONS_FILE]: JSON.stringify(progress.evaluations),
      [EXTERNAL_PROGRESS_FILE]: JSON.stringify(record),
    },
    {
      runId: spec.run,
      epoch: progress.epoch,
      specDigest,
      metrics: {
        ...(progress.loss === undefined ? {} : { loss: progress.loss }),
        ...(evaluated?.step === step ? { valLoss: evaluated.valLoss } : {}),
      },
    },
  );
  recordCheckpoint(hooks.meter, {
    bytes: checkpoint.objects.reduce((sum, o) => sum + o.bytes, 0),
    seconds: Number(process.hrtime.bigint() - started) / 1e9,
  });
  saved.weightsSha256 =
    weights ?? filesDigest(checkpoint.meta.files.map((name, i) => ({ name, sha256: checkpoint.objects[i].sha256 })));
  progress.committed(step);
  saved.steps.push(step);
  // Committed to warm while the trainer goes on; awaited before the segment reports done.
  const commit = checkpoints.commitToWarm(step);
  commit.catch(() => undefined);
  saved.commits.push(commit);
  await rm(folder, { recursive: true, force: true });
}

function withExternal(spec: TrainingSpec): ExternalTrainingSpec {
  if (spec.external === undefined) {
    throw new InvalidSpec('trainingRun', [
      { field: 'external', message: 'externalSegment runs only specs with external' },
    ]);
  }
  return spec as ExternalTrainingSpec;
}

/** Identifies a checkpoint's weights: the trainer's own hash, or one over its files' names and hashes. */
function filesDigest(files: { name: string; sha256: string }[]): string {
  const own = files.filter((f) => !f.name.startsWith(FLYWHEEL_FILES)).sort((a, b) => (a.name < b.name ? -1 : 1));
  return sha256Hex(canonicalJson(own.map((f) => [f.name, f.sha256])));
}

function parseRecord<T>(bytes: Buffer | undefined): T | undefined {
  return bytes === undefined ? undefined : (JSON.parse(bytes.toString('utf8')) as T);
}

/**
 * Writes the newest checkpoint that verifies (hot, then warm, then cold) into `folder` for the trainer to resume
 * from, and returns where it stands; a run without checkpoints starts at step 0.
 */
async function restoreInto(
  checkpoints: CheckpointManager,
  specDigest: string,
  folder: string,
  log: SegmentHooks['log'],
): Promise<{ start: SegmentStart; weightsSha256?: string }> {
  const restored = await restoreNewest(checkpoints, specDigest, log);
  if (!restored) return { start: { step: 0, evaluations: [] } };
  const files = Object.entries(restored.files);
  await writeCheckpointFolder(folder, Object.fromEntries(files.filter(([name]) => !name.startsWith(FLYWHEEL_FILES))));
  const record = parseRecord<ExternalProgressRecord>(restored.files[EXTERNAL_PROGRESS_FILE]);
  return {
    start: {
      step: restored.step,
      evaluations: parseRecord<Evaluation[]>(restored.files[EXTERNAL_EVALUATIONS_FILE]) ?? [],
      loss: record?.loss,
      epoch: record?.epoch ?? restored.meta.epoch,
    },
    weightsSha256:
      // The restore verified every file against these hashes: no need to hash them again.
      record?.weightsSha256 ??
      filesDigest(restored.meta.files.map((name, i) => ({ name, sha256: restored.objects[i].sha256 }))),
  };
}
