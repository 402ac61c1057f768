import * as path from 'node:path';
import type { FlywheelConfig } from '../lib/config';
import { ModelRegistry } from '../lib/registry';
import { tieredStoreFromConfig } from '../lib/storage';
import { generateText } from '../lib/train/generate';
import { TrainedModel } from '../lib/train/model-files';
import { writeRunReport } from './commands/report';
import { feedbackStep, flywheelStep, pipelineStep, rel, trainingStep, yesterday } from './job-steps';
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
  const { workflowId: pipelineId, pipeline } = await pipelineStep(client, MAIN_PIPELINE_SPEC, 'Main job', log);
  const {
    workflowId: trainingId,
    trained,
    registered,
  } = await trainingStep(client, MAIN_TRAINING_SPEC, pipeline.manifest.uri, log);

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
  const day = yesterday();
  const events = simulatedFeedbackDay({
    day,
    fromChapter: FEEDBACK_FROM_CHAPTER,
    modelVersion: `${champion.model}@${champion.version}`,
    answer: (prompt, i) => generateText(served, prompt, encoding, { maxTokens: 24, temperature: 1, topK: 40, seed: i }),
  });
  await feedbackStep(client, events, day, log);
  const { workflowId: flywheelId, decided } = await flywheelStep(client, MAIN_FLYWHEEL_SPEC, log);

  const workflowIds = [pipelineId, trainingId, flywheelId];
  const report = await writeRunReport({
    client: client.client,
    store,
    workflowIds,
    out: path.join(config.home, 'reports', 'last-run.html'),
  });
  log(`Report: ${rel(report)}`);

  return {
    job: 'dataPipeline → trainingRun → flywheelRun',
    workflowId: pipelineId,
    workflowIds,
    pipeline,
    training: {
      workflowId: trainingId,
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
      workflowId: flywheelId,
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
