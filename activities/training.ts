import { CancelledFailure, Context } from '@temporalio/activity';
import type { SegmentInput, SegmentSummary, TrainingSpec } from '../lib/contracts/training';
import { externalModelFiles } from '../lib/external-trainer';
import { ModelRegistry } from '../lib/registry';
import type { TieredStore } from '../lib/storage';
import { BUILTIN_EVALUATIONS_FILE, runBuiltinSegment, runCheckpoints } from '../lib/train';
import { withFailureMapping } from './failures';
import { segmentHooks } from './segment-hooks';

export function createTrainingActivities({ store }: { store: TieredStore }) {
  const registry = new ModelRegistry(store);
  return {
    /** One segment of the built-in trainer (lib/train/segment.ts); a cancellation stops at its next checkpoint. */
    async trainSegment(input: SegmentInput): Promise<SegmentSummary> {
      return withFailureMapping(async () => {
        const outcome = await runBuiltinSegment({ store, input, hooks: segmentHooks(Context.current()) });
        if (outcome.status === 'cancelled') throw new CancelledFailure(outcome.message);
        return outcome.summary;
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
        const restored = await runCheckpoints(store, spec).restore(input.step);
        // An external trainer's model is the files its checkpoint names as such (weights and config), not its
        // optimizer state; the built-in trainer's checkpoint is its model.
        const files = spec.external
          ? externalModelFiles(restored.files, `run ${spec.run}'s checkpoint at step ${input.step}`)
          : Object.fromEntries(Object.entries(restored.files).filter(([name]) => name !== BUILTIN_EVALUATIONS_FILE));
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
