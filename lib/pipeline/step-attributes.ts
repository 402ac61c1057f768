import type { PipelineStage } from '../contracts/pipeline-results';
import type { StepEnv } from './stage';
import type { RunKey } from './stage-output';
import type { pipelineSteps } from './steps';

type Steps = typeof pipelineSteps;
type InputOf<S> = S extends { run(input: infer I, env: StepEnv): unknown } ? I : never;

/** The stage a step belongs to, in the workflow's progress terms; `carry` pages move results across continue-as-new. */
export type StepStage = Exclude<PipelineStage, 'validate' | 'done'> | 'carry';

/** Where a step belongs, and the input fields that name the piece of work one call does (its unit). */
interface StepTrace<S> {
  stage: StepStage;
  unit?: (keyof InputOf<S> & string)[];
}

/** Every step's stage and unit fields: a new step without an entry does not compile. */
const STEP_TRACE: { [K in keyof Steps]: StepTrace<Steps[K]> } = {
  findCommittedDataset: { stage: 'plan' },
  savePipelineCarryPage: { stage: 'carry', unit: ['execution', 'page'] },
  loadPipelineCarryPage: { stage: 'carry', unit: ['execution', 'page'] },
  planCollection: { stage: 'plan' },
  collectBatch: { stage: 'collect', unit: ['batch'] },
  filterBatch: { stage: 'filter', unit: ['batch'] },
  committedExactDedupStage: { stage: 'dedup' },
  exactDedupKeysStage: { stage: 'dedup', unit: ['batch'] },
  exactDedupJoinStage: { stage: 'dedup' },
  exactDedupFilterStage: { stage: 'dedup', unit: ['batch'] },
  exactDedupOnePassStage: { stage: 'dedup' },
  commitExactDedupStage: { stage: 'dedup' },
  planNearDedupStage: { stage: 'near-dedup' },
  signNearDedupStage: { stage: 'near-dedup', unit: ['unit'] },
  joinNearDedupStage: { stage: 'near-dedup', unit: ['bands'] },
  clusterNearDedupStage: { stage: 'near-dedup' },
  filterNearDedupStage: { stage: 'near-dedup', unit: ['index'] },
  commitNearDedupStage: { stage: 'near-dedup' },
  tokenizePartitionStage: { stage: 'tokenize', unit: ['index'] },
  planShardsStage: { stage: 'shard' },
  writeShardStage: { stage: 'shard', unit: ['split', 'index'] },
  commitDatasetStage: { stage: 'commit' },
};

/**
 * What a trace shows of one call of a step: its stage, the dataset version it builds and the unit it works on
 * (`batch 3`, `split train, index 2`), under `flywheel.*` attribute names.
 */
export function stepSpanAttributes(step: keyof Steps, input: RunKey): Record<string, string> {
  const { stage, unit } = STEP_TRACE[step];
  const attributes: Record<string, string> = {
    'flywheel.stage': stage,
    'flywheel.step': step,
    'flywheel.dataset': input.dataset,
    'flywheel.dataset.version': input.version,
    'flywheel.spec_digest': input.digest,
  };
  const fields = input as unknown as Record<string, unknown>;
  const named = (unit ?? []).filter((key) => fields[key] !== undefined);
  if (named.length > 0) attributes['flywheel.unit'] = named.map((key) => `${key} ${unitValue(fields[key])}`).join(', ');
  return attributes;
}

function unitValue(value: unknown): string {
  return Array.isArray(value) ? value.join(',') : String(value);
}

/** The stage of a pipeline step by its activity name (`filterBatch` → filter); undefined for any other activity. */
export function stepStage(activityType: string): StepStage | undefined {
  return Object.hasOwn(STEP_TRACE, activityType) ? STEP_TRACE[activityType as keyof Steps].stage : undefined;
}
