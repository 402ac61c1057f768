import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { CancelledFailure, Context } from '@temporalio/activity';
import { CheckpointManager, CheckpointNotFound, retentionPolicies } from '../lib/checkpoint';
import {
  checkpointFileBodies,
  checkpointFileNames,
  checkpointFolder,
  externalScratchDir,
  EXTERNAL_EVALUATIONS_FILE,
  EXTERNAL_PROGRESS_FILE,
  removeWorkDir,
  externalSpecDigest,
  FLYWHEEL_FILES,
  localizeDataset,
  prepareWorkDir,
  protocolError,
  recordTrainer,
  runExternalTrainer,
  SegmentProgress,
  trainerLaunch,
  writeCheckpointFolder,
  type ExternalProgressRecord,
  type ExternalTrainerSpec,
  type CheckpointEvent,
  type RunningTrainer,
  type TrainingEvent,
  type SegmentStart,
} from '../lib/external-trainer';
import { recordCheckpoint, recordTraining } from '../lib/metrics';
import { ModelRegistry } from '../lib/registry';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import type { Evaluation, SegmentInput, SegmentSummary, TrainingSpec } from '../lib/contracts/training';
import { sha256Hex, type TieredStore } from '../lib/storage';
import { canonicalJson } from '../lib/contracts/digest';
import { withFailureMapping } from './failures';

const EVALUATIONS_FILE = EXTERNAL_EVALUATIONS_FILE;
const PROGRESS_FILE = EXTERNAL_PROGRESS_FILE;
type ProgressRecord = ExternalProgressRecord;

type ExternalTrainingSpec = TrainingSpec & { external: ExternalTrainerSpec };

/** Identifies a checkpoint's weights: the trainer's own hash, or one over its files' names and hashes. */
function filesDigest(files: { name: string; sha256: string }[]): string {
  const own = files.filter((f) => !f.name.startsWith(FLYWHEEL_FILES)).sort((a, b) => (a.name < b.name ? -1 : 1));
  return sha256Hex(canonicalJson(own.map((f) => [f.name, f.sha256])));
}

/**
 * Runs an external trainer (a torchrun or deepspeed command from `spec.external`) for one segment: restores the
 * newest checkpoint that verifies into a local folder it resumes from, starts the command in its own process group
 * with the dataset and checkpoint folders in its environment, and reads its JSON-lines progress. Each checkpoint it
 * reports is saved to hot:// with a manifest, committed to warm:// and retained by the spec's policies, exactly
 * like the built-in trainer's. Cancellation, a stall or a timeout terminates the process group (SIGTERM, then
 * SIGKILL); a crash is retried from the last checkpoint; a configuration exit code fails the run with the tail of
 * the trainer's stderr.
 */
export function createExternalTrainingActivities({ store }: { store: TieredStore }) {
  const registry = new ModelRegistry(store);
  return {
    async externalSegment(input: SegmentInput): Promise<SegmentSummary> {
      return withFailureMapping(async () => {
        const spec = withExternal(input.spec);
        const ctx = Context.current();
        const checkpoints = new CheckpointManager({
          store,
          runPrefix: `runs/${spec.run}/checkpoints`,
          policy: retentionPolicies(spec.retention),
          onWarning: (w) => ctx.log.warn(`skipped a checkpoint copy: ${w.message}`),
        });
        const specDigest = externalSpecDigest(spec);
        // One folder per run and store, so two deployments sharing a machine never share a work folder.
        const storeId = sha256Hex(store.backendUri(checkpoints.layout.latestUri())).slice(0, 12);
        const work = await prepareWorkDir(join(externalScratchDir(), 'runs', `${spec.run}-${storeId}`));
        const commits: Promise<unknown>[] = [];
        const saved: number[] = [];
        try {
          const restored = await restoreLatest(checkpoints, specDigest, work.resume, ctx);
          const progress = new SegmentProgress(spec, restored.start, input);
          let weightsSha256 = restored.weightsSha256;
          let stopped: 'cancelled' | 'requested' | undefined;
          if (progress.start < progress.until && !progress.patienceSpent) {
            const dataset = await localizeDataset(
              store,
              spec.dataset,
              join(externalScratchDir(), 'shards'),
              work.datasetFile,
            );
            // A fine-tune's first segment starts from the base model's registered files; later ones resume.
            const init = progress.start === 0 ? input.base : undefined;
            if (init) {
              const base = await registry.get(init.model, init.version);
              await writeCheckpointFolder(work.init, await registry.loadFiles(base));
            }
            const launch = trainerLaunch({
              spec,
              work,
              dataset,
              start: progress.start,
              until: progress.until,
              attempt: ctx.info.attempt,
              init,
            });
            let pid: number | undefined;
            const heartbeat = () => ctx.heartbeat({ step: progress.lastStep, loss: progress.loss, pid });
            let stopAtCheckpoint = false;

            const saveCheckpoint = async (event: CheckpointEvent) => {
              const { step, files, modelFiles, weightsSha256: weights } = event;
              const folder = checkpointFolder(work.checkpoints, step);
              const names = await checkpointFileNames(folder, step, files, modelFiles);
              const evaluated = progress.evaluations.at(-1);
              const record: ProgressRecord = {
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
                  [EVALUATIONS_FILE]: JSON.stringify(progress.evaluations),
                  [PROGRESS_FILE]: JSON.stringify(record),
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
              recordCheckpoint(ctx.metricMeter, {
                bytes: checkpoint.objects.reduce((sum, o) => sum + o.bytes, 0),
                seconds: Number(process.hrtime.bigint() - started) / 1e9,
              });
              weightsSha256 =
                weights ??
                filesDigest(checkpoint.meta.files.map((name, i) => ({ name, sha256: checkpoint.objects[i].sha256 })));
              progress.committed(step);
              saved.push(step);
              // Committed to warm while the trainer goes on; awaited before the segment reports done.
              const commit = checkpoints.commitToWarm(step);
              commit.catch(() => undefined);
              commits.push(commit);
              await rm(folder, { recursive: true, force: true });
            };

            const onEvent = async (event: TrainingEvent, trainer: RunningTrainer) => {
              if (event.event === 'step') progress.step(event);
              else if (event.event === 'eval') {
                progress.eval(event);
                stopAtCheckpoint ||= progress.patienceSpent;
              } else if (event.event === 'checkpoint') {
                progress.checkpoint(event);
                await saveCheckpoint(event);
                if (stopAtCheckpoint) trainer.stop();
              } else progress.done(event);
              heartbeat();
            };

            const outcome = await runExternalTrainer({
              launch: { ...launch, cwd: spec.external.cwd },
              progressFile: spec.external.report === 'file' ? work.progressFile : undefined,
              stallTimeoutMs: spec.external.stallTimeoutSeconds * 1000,
              timeoutMs: spec.external.timeoutSeconds === undefined ? undefined : spec.external.timeoutSeconds * 1000,
              killGraceMs: spec.external.killGraceSeconds * 1000,
              nonRetryableExitCodes: spec.external.nonRetryableExitCodes,
              signal: ctx.cancellationSignal,
              onStart: (trainer) => {
                pid = trainer.pid;
                heartbeat();
                recordTrainer(work, trainer.pid).catch((err: Error) =>
                  ctx.log.warn(`could not record the trainer's pid: ${err.message}`),
                );
              },
              onEvent,
              onText: (line, stream) => ctx.log.debug(`trainer ${stream}: ${line}`),
            });
            stopped = outcome.stopped;
          }
          await Promise.all(commits);
          const step = progress.lastCheckpoint ?? progress.start;
          if (stopped === 'cancelled') {
            const reason: unknown = ctx.cancellationSignal.reason;
            if (!ctx.cancellationDetails?.cancelRequested && reason instanceof Error) throw reason;
            throw new CancelledFailure(
              `training cancelled; the external trainer was stopped (last checkpoint: step ${step})`,
            );
          }
          const final = progress.evaluations.filter((e) => e.step <= step).at(-1);
          if (final === undefined) {
            throw protocolError(
              `no eval event by step ${step}; print {"event":"eval","step":N,"valLoss":x} at least at ` +
                'FLYWHEEL_UNTIL_STEP, before the checkpoint',
            );
          }
          await checkpoints.applyRetention();
          recordTraining(ctx.metricMeter, { tokensPerSecond: progress.tokensPerSecond });
          return {
            step,
            epoch: progress.atCheckpoint.epoch,
            loss: progress.atCheckpoint.loss ?? final.loss,
            valLoss: final.valLoss,
            perplexity: final.perplexity,
            tokensPerSecond: progress.tokensPerSecond,
            resumedFrom: progress.start,
            checkpoints: saved,
            weightsSha256: weightsSha256 ?? '',
            firstLoss: progress.firstLoss,
            evaluations: progress.evaluationsAfter(input.from),
            earlyStop: progress.earlyStop,
            stoppedEarly: stopped === 'requested' || progress.patienceSpent,
          };
        } finally {
          await checkpoints.drain().catch(() => undefined);
          await removeWorkDir(work).catch(() => undefined);
        }
      });
    },
  };
}

function withExternal(spec: TrainingSpec): ExternalTrainingSpec {
  if (spec.external === undefined) {
    throw new InvalidSpec('trainingRun', [
      { field: 'external', message: 'externalSegment runs only specs with external' },
    ]);
  }
  return spec as ExternalTrainingSpec;
}

function parseRecord<T>(bytes: Buffer | undefined): T | undefined {
  return bytes === undefined ? undefined : (JSON.parse(bytes.toString('utf8')) as T);
}

/**
 * Writes the newest checkpoint that verifies (hot, then warm, then cold) into `folder` for the trainer to resume
 * from, and returns where it stands; a run without checkpoints starts at step 0.
 */
async function restoreLatest(
  checkpoints: CheckpointManager,
  specDigest: string,
  folder: string,
  ctx: Context,
): Promise<{ start: SegmentStart; weightsSha256?: string }> {
  let restored;
  try {
    restored = await checkpoints.restoreLatest({ expect: { specDigest } });
  } catch (err) {
    if (err instanceof CheckpointNotFound) return { start: { step: 0, evaluations: [] } };
    throw err;
  }
  for (const skipped of restored.skipped)
    ctx.log.warn(`checkpoint step ${skipped.step} in ${skipped.tier} did not verify: ${skipped.message}`);
  const files = Object.entries(restored.files);
  await writeCheckpointFolder(folder, Object.fromEntries(files.filter(([name]) => !name.startsWith(FLYWHEEL_FILES))));
  const record = parseRecord<ProgressRecord>(restored.files[PROGRESS_FILE]);
  return {
    start: {
      step: restored.step,
      evaluations: parseRecord<Evaluation[]>(restored.files[EVALUATIONS_FILE]) ?? [],
      loss: record?.loss,
      epoch: record?.epoch ?? restored.meta.epoch,
    },
    weightsSha256:
      // The restore verified every file against these hashes: no need to hash them again.
      record?.weightsSha256 ??
      filesDigest(restored.meta.files.map((name, i) => ({ name, sha256: restored.objects[i].sha256 }))),
  };
}
