import { foldEvaluation, type Evaluation, type SegmentSummary } from '../contracts/training';
import { recordTraining, timeCheckpointSave } from '../metrics';
import { ModelRegistry } from '../registry/model-registry';
import { sha256Hex } from '../storage/hashing';
import { restoreNewest, runCheckpoints, type SegmentRunner } from './segment-runner';
import { readSplitTokens } from './shard-tokens';
import { createTrainer, trainerSpecDigest } from './trainer';

/** Flywheel's record of a run's evaluations, saved beside the weights in every built-in checkpoint. */
export const BUILTIN_EVALUATIONS_FILE = 'evaluations.json';

/**
 * One segment of the built-in trainer: restore the newest checkpoint that verifies (hot, then warm) — or, for a
 * fine-tune's first segment, the base model's weights — and train up to `segmentSteps` steps, heartbeating step and
 * loss. Every `evalEvery` steps it scores the validation split (early stopping counts these); every
 * `checkpointEvery` steps it checkpoints (committed to warm in the background). A cancellation stops at the next
 * checkpoint, which it leaves committed. A retry after a crash resumes from the last checkpoint and reaches the same
 * weights.
 */
export const runBuiltinSegment: SegmentRunner = async ({ store, input, hooks }) => {
  const { spec } = input;
  const data = {
    train: await readSplitTokens(store, spec.dataset, 'train'),
    validation: await readSplitTokens(store, spec.dataset, 'validation'),
  };
  const trainerSpec = { ...spec.trainer, schedule: { ...spec.trainer.schedule, totalSteps: spec.steps } };
  const checkpoints = runCheckpoints(store, spec, hooks.log);
  const restored = await restoreNewest(checkpoints, trainerSpecDigest(trainerSpec), hooks.log);
  // A fine-tune starts from its base model; once it has a checkpoint of its own (which keeps the base's
  // vocabulary), later segments and retries build from that and do not read the base again.
  const registry = new ModelRegistry(store);
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
      const saved = restored.files[BUILTIN_EVALUATIONS_FILE];
      evaluations = saved ? (JSON.parse(saved.toString('utf8')) as Evaluation[]) : [];
    }
    evaluations = evaluations.filter((e) => e.step > input.from && e.step <= trainer.step);
    let earlyStop = input.earlyStop;
    for (const e of evaluations) earlyStop = foldEvaluation(earlyStop, e.valLoss, spec.earlyStopping?.minDelta ?? 0);
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
        hooks.heartbeat({ step, loss });
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
      cancelled = hooks.signal.aborted;
      const atCheckpoint = trainer.step % spec.checkpointEvery === 0;
      if (atCheckpoint || trainer.step === end || stoppedEarly) {
        await timeCheckpointSave(
          hooks.meter,
          checkpoints,
          trainer.step,
          {
            ...trainer.serialize(),
            [BUILTIN_EVALUATIONS_FILE]: Buffer.from(JSON.stringify(evaluations)),
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
      return {
        status: 'cancelled',
        step: trainer.step,
        message: `training cancelled; stopped at the checkpoint of step ${trainer.step}`,
      };
    }
    const final = evaluations.at(-1)?.step === trainer.step ? evaluations.at(-1)! : undefined;
    const scored = final
      ? { loss: final.valLoss, perplexity: final.perplexity }
      : trainer.evaluate(validation, { maxTokens: spec.evalTokens });
    await checkpoints.applyRetention();
    recordTraining(hooks.meter, { tokensPerSecond: last.tokensPerSecond });
    const summary: SegmentSummary = {
      step: trainer.step,
      epoch: trainer.epoch,
      loss: last.loss,
      valLoss: scored.loss,
      perplexity: scored.perplexity,
      tokensPerSecond: last.tokensPerSecond,
      resumedFrom,
      checkpoints: saved,
      weightsSha256: sha256Hex(trainer.serialize()['weights.f32']),
      firstLoss: resumedFrom === 0 ? firstLoss : undefined,
      evaluations,
      earlyStop,
      stoppedEarly,
    };
    return { status: 'completed', summary };
  } finally {
    await checkpoints.drain().catch(() => undefined);
    await trainer.close();
  }
};
