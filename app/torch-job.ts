import * as path from 'node:path';
import type { FlywheelConfig } from '../lib/config';
import { exportHfGpt2, ModelRegistry, writeHfDirectory } from '../lib/registry';
import { tieredStoreFromConfig } from '../lib/storage';
import { feedbackStep, flywheelStep, pipelineStep, rel, trainingStep, yesterday } from './job-steps';
import type { FlywheelClient } from '../client/flywheel-client';
import { simulatedFeedbackDay } from './simulated-feedback';

const examples = path.join(__dirname, '..', 'examples');
/** The real-model job: the sample corpus tokenized with GPT-2's encoding, ... */
export const TORCH_PIPELINE_SPEC = path.join(examples, 'torch-pipeline.json');
/** ...a GPT trained by torchrun on two ranks (examples/torch-gpt), registered as the champion, ... */
export const TORCH_TRAINING_SPEC = path.join(examples, 'torch-training.json');
/** ...and one flywheel turn that fine-tunes it on a day of feedback, gates and decides. */
export const TORCH_FLYWHEEL_SPEC = path.join(examples, 'torch-flywheel.json');
const FEEDBACK_FROM_CHAPTER = 100;

/**
 * pipeline (gpt2 encoding) → torchrun training of a PyTorch GPT → registered champion → a day of feedback →
 * a flywheel turn with the torch trainer (fine-tune from the champion, both scored by the evaluation command, the
 * gate's decision) → the champion exported as a Hugging Face directory. Returns the record for
 * `.flywheel/torch-run.json`.
 */
export async function runTorchJob(
  client: FlywheelClient,
  config: FlywheelConfig,
  log: (line: string) => void,
): Promise<Record<string, unknown>> {
  const store = tieredStoreFromConfig(config);
  const registry = new ModelRegistry(store);
  const { workflowId: pipelineId, pipeline } = await pipelineStep(client, TORCH_PIPELINE_SPEC, 'Torch job', log);
  const {
    workflowId: trainingId,
    trained,
    registered,
  } = await trainingStep(client, TORCH_TRAINING_SPEC, pipeline.manifest.uri, log);

  // The served champion's users ask about chapters it has not seen; their corrections and good ratings are the data.
  const day = yesterday();
  const events = simulatedFeedbackDay({
    day,
    fromChapter: FEEDBACK_FROM_CHAPTER,
    modelVersion: `${registered.name}@${registered.version}`,
    answer: (prompt) => `(an answer about "${prompt.slice(0, 40)}…")`,
  });
  await feedbackStep(client, events, day, log);
  const { workflowId: flywheelId, decided } = await flywheelStep(client, TORCH_FLYWHEEL_SPEC, log);

  const champion = await registry.get(registered.name, 'champion');
  const exportDir = path.join(config.home, 'exports', `${champion.model}-${champion.version}-hf`);
  // A fine-tuned champion's dataset adds feedback shards to this one: the tokenizer is the same.
  const written = exportHfGpt2(champion, await registry.loadFiles(champion), {
    eot: pipeline.tokenizer.eot,
    encoding: pipeline.tokenizer.encoding,
  });
  writeHfDirectory(exportDir, written);
  log(`Export: ${champion.model} ${champion.version} as a Hugging Face GPT2LMHeadModel directory: ${rel(exportDir)}`);

  return {
    job: 'dataPipeline → trainingRun (torchrun) → flywheelRun → HF export',
    workflowIds: [pipelineId, trainingId, flywheelId],
    pipeline: { manifest: pipeline.manifest.uri, documents: pipeline.documents, tokens: pipeline.tokens },
    training: {
      workflowId: trainingId,
      steps: trained.step,
      firstLoss: trained.firstLoss,
      lastLoss: trained.loss,
      valLoss: trained.valLoss,
      tokensPerSecond: trained.tokensPerSecond,
      evaluations: trained.evaluations,
      checkpoints: trained.checkpoints,
      weightsSha256: trained.weightsSha256,
    },
    model: { name: registered.name, version: registered.version },
    flywheel: {
      workflowId: flywheelId,
      decision: decided.decision,
      champion: decided.championAfter,
      challenger: decided.challenger,
      scores: decided.scores,
      reasons: decided.reasons,
    },
    export: { dir: exportDir, model: champion.model, version: champion.version, files: Object.keys(written) },
  };
}
