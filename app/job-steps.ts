import * as path from 'node:path';
import type { FlywheelClient } from '../client/flywheel-client';
import type { FeedbackEvent } from '../lib/contracts/feedback';
import type { FlywheelInput } from '../lib/contracts/flywheel';
import type { PipelineInput } from '../lib/contracts/pipeline';
import type { TrainingInput } from '../lib/contracts/training';
import { describeFlywheel, followFlywheel } from './commands/flywheel';
import { describeDataset, followPipeline, readSpecFile } from './commands/pipeline';
import { describeTraining, followTraining } from './commands/train';

/** The steps the jobs `flywheel start` runs share: each starts a workflow from a spec file and follows it to its end. */
type Log = (line: string) => void;

/** A path as the user reads it: relative to where they ran the command. */
export const rel = (file: string) => path.relative(process.cwd(), file);

/** The data pipeline of `specFile`, followed with its funnel printed. */
export async function pipelineStep(client: FlywheelClient, specFile: string, job: string, log: Log) {
  const handle = await client.startPipeline(readSpecFile(specFile) as PipelineInput);
  log(`${job}: data pipeline ${handle.workflowId} on the bundled sample corpus (${rel(specFile)})`);
  const pipeline = await followPipeline(handle, log);
  for (const line of describeDataset(pipeline)) log(line);
  return { workflowId: handle.workflowId, pipeline };
}

/** The training run of `specFile` on `dataset`, followed; it registers the run's model. */
export async function trainingStep(client: FlywheelClient, specFile: string, dataset: string, log: Log) {
  const spec = readSpecFile(specFile) as TrainingInput;
  const handle = await client.startTraining({ ...spec, dataset });
  log(
    `Training: workflow ${handle.workflowId} ` +
      (spec.external ? `runs ${spec.external.command.join(' ')}` : `on ${dataset}`),
  );
  const trained = await followTraining(handle, log);
  for (const line of describeTraining(trained)) log(line);
  return { workflowId: handle.workflowId, trained, registered: trained.model! };
}

/** A day of feedback through the client, as a service sends it, waited for until the ledgers have flushed it. */
export async function feedbackStep(client: FlywheelClient, events: FeedbackEvent[], day: string, log: Log) {
  const receipt = await client.submitFeedback(events, { ledger: { flushIntervalMs: 500 } });
  log(
    `Feedback: ${events.length} events for ${day} submitted through the client: ${receipt.accepted} accepted, ` +
      `${receipt.duplicates} already there, in ${receipt.ledgers.length} ledgers`,
  );
  // The nightly run reads what the ledgers have flushed; wait for them, as the schedule's night would.
  await client.waitFeedbackFlushed(receipt.ledgers);
}

/** One flywheel turn of `specFile`, followed to its decision. */
export async function flywheelStep(client: FlywheelClient, specFile: string, log: Log) {
  const handle = await client.startFlywheel(readSpecFile(specFile) as FlywheelInput);
  log(`Flywheel: workflow ${handle.workflowId} (${rel(specFile)})`);
  const decided = await followFlywheel(handle, log);
  for (const line of describeFlywheel(decided)) log(line);
  return { workflowId: handle.workflowId, decided };
}

/** Yesterday, as the day a simulated day of feedback is dated. */
export function yesterday(): string {
  return new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
}
