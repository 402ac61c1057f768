import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FlywheelConfig } from '../lib/config';
import type { FlywheelInput } from '../lib/contracts/flywheel';
import type { PipelineInput } from '../lib/contracts/pipeline';
import type { TrainingInput } from '../lib/contracts/training';
import { exportHfGpt2, ModelRegistry } from '../lib/registry';
import { tieredStoreFromConfig } from '../lib/storage';
import { describeFlywheel, followFlywheel } from './commands/flywheel';
import { describeDataset, followPipeline, readSpecFile } from './commands/pipeline';
import { describeTraining, followTraining } from './commands/train';
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
  const rel = (file: string) => path.relative(process.cwd(), file);

  const handle = await client.startPipeline(readSpecFile(TORCH_PIPELINE_SPEC) as PipelineInput);
  log(`Torch job: data pipeline ${handle.workflowId} on the bundled sample corpus (${rel(TORCH_PIPELINE_SPEC)})`);
  const pipeline = await followPipeline(handle, log);
  for (const line of describeDataset(pipeline)) log(line);

  const trainingSpec = readSpecFile(TORCH_TRAINING_SPEC) as TrainingInput;
  const trainingHandle = await client.startTraining({ ...trainingSpec, dataset: pipeline.manifest.uri });
  log(`Training: workflow ${trainingHandle.workflowId} runs ${trainingSpec.external?.command.join(' ')}`);
  const trained = await followTraining(trainingHandle, log);
  for (const line of describeTraining(trained)) log(line);
  const registered = trained.model!;

  // The served champion's users ask about chapters it has not seen; their corrections and good ratings are the data.
  const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  const events = simulatedFeedbackDay({
    day,
    fromChapter: FEEDBACK_FROM_CHAPTER,
    modelVersion: `${registered.name}@${registered.version}`,
    answer: (prompt) => `(an answer about "${prompt.slice(0, 40)}…")`,
  });
  const receipt = await client.submitFeedback(events, { ledger: { flushIntervalMs: 500 } });
  log(
    `Feedback: ${events.length} events for ${day}: ${receipt.accepted} accepted, ${receipt.duplicates} already there`,
  );
  await client.waitFeedbackFlushed(receipt.ledgers);

  const flywheelHandle = await client.startFlywheel(readSpecFile(TORCH_FLYWHEEL_SPEC) as FlywheelInput);
  log(`Flywheel: workflow ${flywheelHandle.workflowId} (${rel(TORCH_FLYWHEEL_SPEC)})`);
  const decided = await followFlywheel(flywheelHandle, log);
  for (const line of describeFlywheel(decided)) log(line);

  const champion = await registry.get(registered.name, 'champion');
  const exportDir = path.join(config.home, 'exports', `${champion.model}-${champion.version}-hf`);
  // A fine-tuned champion's dataset adds feedback shards to this one: the tokenizer is the same.
  const written = exportHfGpt2(champion, await registry.loadFiles(champion), {
    eot: pipeline.tokenizer.eot,
    encoding: pipeline.tokenizer.encoding,
  });
  fs.mkdirSync(exportDir, { recursive: true });
  for (const [name, bytes] of Object.entries(written)) fs.writeFileSync(path.join(exportDir, name), bytes);
  log(`Export: ${champion.model} ${champion.version} as a Hugging Face GPT2LMHeadModel directory: ${rel(exportDir)}`);

  return {
    job: 'dataPipeline → trainingRun (torchrun) → flywheelRun → HF export',
    workflowIds: [handle.workflowId, trainingHandle.workflowId, flywheelHandle.workflowId],
    pipeline: { manifest: pipeline.manifest.uri, documents: pipeline.documents, tokens: pipeline.tokens },
    training: {
      workflowId: trainingHandle.workflowId,
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
      workflowId: flywheelHandle.workflowId,
      decision: decided.decision,
      champion: decided.championAfter,
      challenger: decided.challenger,
      scores: decided.scores,
      reasons: decided.reasons,
    },
    export: { dir: exportDir, model: champion.model, version: champion.version, files: Object.keys(written) },
  };
}
