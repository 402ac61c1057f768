import * as path from 'node:path';
import type { FlywheelConfig } from '../lib/config';
import { ModelRegistry } from '../lib/registry';
import type { FlywheelInput } from '../lib/contracts/flywheel';
import type { PipelineInput } from '../lib/contracts/pipeline';
import type { TrainingInput } from '../lib/contracts/training';
import { tieredStoreFromConfig } from '../lib/storage';
import { generateText } from '../lib/train/generate';
import { TrainedModel } from '../lib/train/model-files';
import { describeFlywheel, followFlywheel } from './commands/flywheel';
import { describeDataset, followPipeline, readSpecFile } from './commands/pipeline';
import { writeRunReport } from './commands/report';
import { describeTraining, followTraining } from './commands/train';
import type { FlywheelClient } from '../client/flywheel-client';
import { simulatedFeedbackDay } from './simulated-feedback';

const examples = path.join(__dirname, '..', 'examples');
/** The embedded default's main job: the data pipeline on the bundled sample corpus, ... */
export const MAIN_PIPELINE_SPEC = path.join(examples, 'sample-pipeline.json');
/** ...a training run on the dataset it made, registered as the first model, ... */
export const MAIN_TRAINING_SPEC = path.join(examples, 'sample-training.json');
/** ...and one turn of the flywheel on a simulated day of feedback. */
export const MAIN_FLYWHEEL_SPEC = path.join(examples, 'sample-flywheel.json');
/** Chapters of the sample corpus past the base dataset's (`limit` in sample-pipeline.json) are what users ask about. */
const FEEDBACK_FROM_CHAPTER = 100;
const SAMPLE_PROMPT = 'Call me Ishmael.';

/**
 * pipeline → training → registered model (with a generated sample) → a day of feedback through the client → the
 * flywheel's champion/challenger decision → the run report. Returns the run record for `.flywheel/last-run.json`.
 */
export async function runMainJob(
  client: FlywheelClient,
  config: FlywheelConfig,
  log: (line: string) => void,
): Promise<Record<string, unknown>> {
  const store = tieredStoreFromConfig(config);
  const rel = (file: string) => path.relative(process.cwd(), file);

  const handle = await client.startPipeline(readSpecFile(MAIN_PIPELINE_SPEC) as PipelineInput);
  log(`Main job: data pipeline ${handle.workflowId} on the bundled sample corpus (${rel(MAIN_PIPELINE_SPEC)})`);
  const pipeline = await followPipeline(handle, log);
  for (const line of describeDataset(pipeline)) log(line);

  const trainingSpec = readSpecFile(MAIN_TRAINING_SPEC) as TrainingInput;
  const trainingHandle = await client.startTraining({ ...trainingSpec, dataset: pipeline.manifest.uri });
  log(`Training: workflow ${trainingHandle.workflowId} on ${pipeline.manifest.uri}`);
  const trained = await followTraining(trainingHandle, log);
  for (const line of describeTraining(trained)) log(line);
  const registered = trained.model!;

  const registry = new ModelRegistry(store);
  const encoding = pipeline.tokenizer.encoding;
  const model = TrainedModel.fromFiles(
    await registry.loadFiles(await registry.get(registered.name, registered.version)),
  );
  const sample = generateText(model, SAMPLE_PROMPT, encoding, { maxTokens: 30, temperature: 0.8, topK: 40, seed: 1 });
  log(`Sample from ${registered.name} ${registered.version}: "${SAMPLE_PROMPT}${sample.replace(/\s+/g, ' ')}"`);

  // The deployed champion answers questions; its users' feedback goes through the client as a service's would.
  const champion = await registry.get(registered.name, 'champion');
  const served = TrainedModel.fromFiles(await registry.loadFiles(champion));
  const day = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
  const events = simulatedFeedbackDay({
    day,
    fromChapter: FEEDBACK_FROM_CHAPTER,
    modelVersion: `${champion.model}@${champion.version}`,
    answer: (prompt, i) => generateText(served, prompt, encoding, { maxTokens: 24, temperature: 1, topK: 40, seed: i }),
  });
  const receipt = await client.submitFeedback(events, { ledger: { flushIntervalMs: 500 } });
  log(
    `Feedback: ${events.length} events for ${day} submitted through the client: ${receipt.accepted} accepted, ` +
      `${receipt.duplicates} already there, in ${receipt.ledgers.length} ledgers`,
  );
  // The nightly run reads what the ledgers have flushed; wait for them, as the schedule's night would.
  await client.waitFeedbackFlushed(receipt.ledgers);

  const flywheelHandle = await client.startFlywheel(readSpecFile(MAIN_FLYWHEEL_SPEC) as FlywheelInput);
  log(`Flywheel: workflow ${flywheelHandle.workflowId} (${rel(MAIN_FLYWHEEL_SPEC)})`);
  const decided = await followFlywheel(flywheelHandle, log);
  for (const line of describeFlywheel(decided)) log(line);

  const workflowIds = [handle.workflowId, trainingHandle.workflowId, flywheelHandle.workflowId];
  const report = await writeRunReport({
    client: client.client,
    store,
    workflowIds,
    out: path.join(config.home, 'reports', 'last-run.html'),
  });
  log(`Report: ${rel(report)}`);

  return {
    job: 'dataPipeline → trainingRun → flywheelRun',
    workflowId: handle.workflowId,
    workflowIds,
    pipeline,
    training: {
      workflowId: trainingHandle.workflowId,
      steps: trained.step,
      firstLoss: trained.firstLoss,
      lastLoss: trained.loss,
      valLoss: trained.valLoss,
      perplexity: trained.perplexity,
      evaluations: trained.evaluations,
      checkpoints: trained.checkpoints,
      weightsSha256: trained.weightsSha256,
    },
    model: { name: registered.name, version: registered.version, sample: SAMPLE_PROMPT + sample },
    flywheel: {
      workflowId: flywheelHandle.workflowId,
      events: decided.events,
      newDocs: decided.newDocs,
      decision: decided.decision,
      champion: decided.championAfter,
      challenger: decided.challenger,
      scores: decided.scores,
      reasons: decided.reasons,
    },
    report,
  };
}
