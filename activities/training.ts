import { CancelledFailure, Context } from '@temporalio/activity';
import { CheckpointManager, CheckpointNotFound, retentionPolicies } from '../lib/checkpoint';
import {
  foldEvaluation,
  type Evaluation,
  type SegmentInput,
  type SegmentSummary,
  type TrainingSpec,
} from '../lib/contracts/training';
import { ModelRegistry } from '../lib/registry';
import { openVerified, readAll, readManifest, sha256Hex, type TieredStore } from '../lib/storage';
import { DatasetMetaSchema } from '../lib/pipeline/commit-dataset';
import { createTrainer, tokensFromShards, trainerSpecDigest } from '../lib/train';
import { recordTraining, timeCheckpointSave } from '../lib/metrics';
import { externalModelFiles } from '../lib/external-trainer';
import { withFailureMapping } from './failures';

/** The token streams of a dataset's splits, each shard verified against the manifest as it streams in. */
async function datasetTokens(
  store: TieredStore,
  uri: string,
): Promise<{ train: Uint32Array; validation: Uint32Array }> {
  const manifest = await readManifest(store, uri, DatasetMetaSchema.pick({ splits: true }));
  const meta = manifest.meta;
  const read = async (split: 'train' | 'validation') => {
    const buffers: Buffer[] = [];
    for (const shard of meta.splits[split].shards) {
      const entry = manifest.objects.find((o) => o.uri === shard.uri)!;
      buffers.push(await readAll(await openVerified(store, entry)));
    }
    return tokensFromShards(buffers);
  };
  return { train: await read('train'), validation: await read('validation') };
}

const EVALUATIONS_FILE = 'evaluations.json';

/**
 * One training segment: restore the newest checkpoint that verifies (hot, then warm) — or, for a fine-tune's first
 * segment, the base model's weights — and train up to `segmentSteps` steps, heartbeating step and loss. Every
 * `evalEvery` steps it scores the validation split (early stopping counts these); every `checkpointEvery` steps it
 * checkpoints (committed to warm in the background). A cancellation stops at the next checkpoint, which it leaves
 * committed. A retry after a crash resumes from the last checkpoint and reaches the same weights.
 */
export function createTrainingActivities({ store }: { store: TieredStore }) {
  const registry = new ModelRegistry(store);
  return {
    async trainSegment(input: SegmentInput): Promise<SegmentSummary> {
      return withFailureMapping(async () => {
        const { spec } = input;
        const ctx = Context.current();
        const data = await datasetTokens(store, spec.dataset);
        const trainerSpec = { ...spec.trainer, schedule: { ...spec.trainer.schedule, totalSteps: spec.steps } };
        const checkpoints = new CheckpointManager({
          store,
          runPrefix: `runs/${spec.run}/checkpoints`,
          policy: retentionPolicies(spec.retention),
          onWarning: (w) => ctx.log.warn(`skipped a checkpoint copy: ${w.message}`),
        });
        let restored: Awaited<ReturnType<typeof checkpoints.restoreLatest>> | undefined;
        try {
          restored = await checkpoints.restoreLatest({ expect: { specDigest: trainerSpecDigest(trainerSpec) } });
          for (const skipped of restored.skipped)
            ctx.log.warn(`checkpoint step ${skipped.step} in ${skipped.tier} did not verify: ${skipped.message}`);
        } catch (err) {
          if (!(err instanceof CheckpointNotFound)) throw err;
        }
        // A fine-tune starts from its base model; once it has a checkpoint of its own (which keeps the base's
        // vocabulary), later segments and retries build from that and do not read the base again.
        const initFrom = !input.base
          ? undefined
          : (restored?.files ?? (await registry.loadFiles(await registry.get(input.base.model, input.base.version))));
        const trainer = createTrainer(
          trainerSpec,
          data.train,
          // Ranks on worker threads: bitwise the same result as running them in turn, faster on several cores.
          { rankThreads: spec.trainer.dataParallelRanks > 1, initFrom },
        );
        const evalEvery = spec.evalEvery ?? spec.segmentSteps;
        const validation = data.validation.length > trainer.shape.contextTokens + 1 ? data.validation : data.train;
        try {
          let resumedFrom = 0;
          /** The training loss the restored checkpoint recorded: what a segment with nothing left to train reports. */
          let restoredLoss: number | undefined;
          let evaluations: Evaluation[] = [];
          if (restored) {
            trainer.restore(restored.files);
            resumedFrom = restored.step;
            restoredLoss = restored.meta.metrics.loss;
            const saved = restored.files[EVALUATIONS_FILE];
            evaluations = saved ? (JSON.parse(saved.toString('utf8')) as Evaluation[]) : [];
          }
          evaluations = evaluations.filter((e) => e.step > input.from && e.step <= trainer.step);
          let earlyStop = input.earlyStop;
          for (const e of evaluations)
            earlyStop = foldEvaluation(earlyStop, e.valLoss, spec.earlyStopping?.minDelta ?? 0);
          const patienceSpent = () => !!spec.earlyStopping && earlyStop.sinceBest >= spec.earlyStopping.patience;

          const end = Math.min(spec.steps, trainer.step + spec.segmentSteps);
          const saved: number[] = [];
          const pending: Promise<unknown>[] = [];
          let firstLoss: number | undefined;
          let last = { loss: restoredLoss ?? NaN, tokensPerSecond: 0 };
          let stoppedEarly = patienceSpent();
          let cancelled = false;
          const untilNext = (every: number) => every - (trainer.step % every);
          while (trainer.step < end && !stoppedEarly && !cancelled) {
            const chunk = Math.min(untilNext(spec.checkpointEvery), untilNext(evalEvery), end - trainer.step);
            last = await trainer.trainSteps(chunk, async ({ step, loss }) => {
              firstLoss ??= loss;
              ctx.heartbeat({ step, loss });
              // Yield to the event loop once per step, so the background commit to warm runs beside training.
              await new Promise<void>((resolve) => setImmediate(resolve));
            });
            const metrics: Record<string, number> = { loss: last.loss };
            if (trainer.step % evalEvery === 0 || trainer.step === spec.steps) {
              const scored = trainer.evaluate(validation, { maxTokens: spec.evalTokens });
              evaluations.push({
                step: trainer.step,
                epoch: trainer.epoch,
                valLoss: scored.loss,
                perplexity: scored.perplexity,
                loss: last.loss,
              });
              metrics.valLoss = scored.loss;
              earlyStop = foldEvaluation(earlyStop, scored.loss, spec.earlyStopping?.minDelta ?? 0);
              stoppedEarly = patienceSpent();
            }
            cancelled = ctx.cancellationSignal.aborted;
            const atCheckpoint = trainer.step % spec.checkpointEvery === 0;
            if (atCheckpoint || trainer.step === end || stoppedEarly) {
              await timeCheckpointSave(
                ctx.metricMeter,
                checkpoints,
                trainer.step,
                {
                  ...trainer.serialize(),
                  [EVALUATIONS_FILE]: Buffer.from(JSON.stringify(evaluations)),
                },
                { runId: spec.run, epoch: trainer.epoch, specDigest: trainer.specDigest, metrics },
              );
              saved.push(trainer.step);
              // Committed to warm while training goes on; awaited before the segment reports done.
              pending.push(checkpoints.commitToWarm(trainer.step));
            } else cancelled = false; // a cancellation waits for the next checkpoint
          }
          await Promise.all(pending);
          if (cancelled) {
            throw new CancelledFailure(`training cancelled; stopped at the checkpoint of step ${trainer.step}`);
          }
          const final = evaluations.at(-1)?.step === trainer.step ? evaluations.at(-1)! : undefined;
          const scored = final
            ? { loss: final.valLoss, perplexity: final.perplexity }
            : trainer.evaluate(validation, { maxTokens: spec.evalTokens });
          await checkpoints.applyRetention();
          recordTraining(ctx.metricMeter, { tokensPerSecond: last.tokensPerSecond });
          const weights = trainer.serialize()['weights.f32'];
          return {
            step: trainer.step,
            epoch: trainer.epoch,
            loss: last.loss,
            valLoss: scored.loss,
            perplexity: scored.perplexity,
            tokensPerSecond: last.tokensPerSecond,
            resumedFrom,
            checkpoints: saved,
            weightsSha256: sha256Hex(weights),
            firstLoss: resumedFrom === 0 ? firstLoss : undefined,
            evaluations,
            earlyStop,
            stoppedEarly,
          };
        } finally {
          await checkpoints.drain().catch(() => undefined);
          await trainer.close();
        }
      });
    },

    /** Pins an alias such as `champion` to the version it names now, so a whole run uses one base model. */
    async resolveModel(input: { model: string; version: string }): Promise<{ model: string; version: string }> {
      return withFailureMapping(async () => {
        const found = await registry.get(input.model, input.version);
        return { model: found.model, version: found.version };
      });
    },

    /**
     * Registers the run's checkpoint at `step` as a model version: its files are copied into the registry with
     * lineage (dataset, base model, spec, code version) and metrics. A retry returns the version already made.
     */
    async registerModel(input: {
      spec: TrainingSpec;
      step: number;
      base?: { model: string; version: string };
      metrics: Record<string, number>;
    }): Promise<{ name: string; version: string }> {
      return withFailureMapping(async () => {
        const { spec } = input;
        const checkpoints = new CheckpointManager({
          store,
          runPrefix: `runs/${spec.run}/checkpoints`,
          policy: retentionPolicies(spec.retention),
        });
        const restored = await checkpoints.restore(input.step);
        // An external trainer's model is the files its checkpoint names as such (weights and config), not its
        // optimizer state; the built-in trainer's checkpoint is its model.
        const files = spec.external
          ? externalModelFiles(restored.files, `run ${spec.run}'s checkpoint at step ${input.step}`)
          : Object.fromEntries(Object.entries(restored.files).filter(([name]) => name !== EVALUATIONS_FILE));
        const registered = await registry.register({
          model: spec.model ?? spec.run,
          run: spec.run,
          dataset: spec.dataset,
          parent: input.base,
          step: input.step,
          specDigest: restored.meta.specDigest,
          spec,
          // Only numbers: a metric that could not be measured is left out rather than registered as null.
          metrics: Object.fromEntries(Object.entries(input.metrics).filter(([, v]) => Number.isFinite(v))),
          files,
        });
        // The first version of a model is its champion; later ones must earn it (the flywheel's gate, or by hand).
        if ((await registry.aliases(registered.model)).champion === undefined)
          await registry.promote(registered.model, registered.version, 'first registered version');
        return { name: registered.model, version: registered.version };
      });
    },
  };
}
