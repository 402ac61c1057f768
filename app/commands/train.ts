import type { Command } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import { loadConfig } from '../../lib/config';
import { TrainingSpec, type TrainingProgress, type TrainingResult } from '../../lib/contracts/training';
import type { FlywheelClient } from '../../client/flywheel-client';
import { followWorkflow } from './follow';
import { readCheckedSpec } from './pipeline';

export type { TrainingResult };

function describeProgress(p: TrainingProgress): string {
  return (
    `[train] ${p.stage === 'paused' ? 'paused at ' : ''}step ${p.step}/${p.steps}` +
    (p.loss !== undefined ? `, loss ${p.loss.toFixed(3)}` : '') +
    (p.valLoss !== undefined ? `, validation loss ${p.valLoss.toFixed(3)}` : '')
  );
}

/**
 * The run's progress: the workflow's (as of its last finished segment), moved on to the step and loss the running
 * segment last heartbeated, so a long segment shows its steps as they go.
 */
async function trainingProgress(handle: WorkflowHandle): Promise<TrainingProgress> {
  const progress = (await handle.query('progress')) as TrainingProgress;
  const data = (await handle.describe().catch(() => undefined))?.raw.pendingActivities?.[0]?.heartbeatDetails
    ?.payloads?.[0]?.data;
  if (!data) return progress;
  try {
    // Plain JSON payloads only: with payload encryption on, the workflow's own progress is shown.
    const beat = JSON.parse(Buffer.from(data).toString('utf8')) as { step?: unknown; loss?: unknown };
    if (typeof beat.step === 'number' && beat.step > progress.step)
      return { ...progress, step: beat.step, loss: typeof beat.loss === 'number' ? beat.loss : progress.loss };
  } catch {
    // Not JSON: an encrypted or binary payload.
  }
  return progress;
}

/** Waits for a training run, printing step and loss whenever they change. */
export function followTraining(handle: WorkflowHandle, print: (line: string) => void): Promise<TrainingResult> {
  return followWorkflow<TrainingResult, TrainingProgress>(handle, describeProgress, print, {
    read: () => trainingProgress(handle),
  });
}

export function describeTraining(r: TrainingResult): string[] {
  return [
    `trained ${r.step} steps in ${r.segments} segments: loss ${r.firstLoss?.toFixed(3) ?? '?'} → ${r.loss.toFixed(3)}, ` +
      `validation loss ${r.valLoss.toFixed(3)} (perplexity ${r.perplexity.toFixed(1)})`,
    (r.checkpoints.length
      ? `checkpoints written at steps ${r.checkpoints.join(', ')}`
      : 'nothing left to train: the run had finished before') + `; weights sha256 ${r.weightsSha256.slice(0, 16)}…`,
    ...(r.stoppedEarly ? [`stopped early at step ${r.step}: validation loss stopped improving`] : []),
    ...(r.model ? [`registered model ${r.model.name} ${r.model.version}`] : []),
  ];
}

export function registerTrainCommands(program: Command, deps: { connect: () => Promise<FlywheelClient> }): void {
  const train = program.command('train').description('training runs on a dataset, checkpointed to the tiers');
  train
    .command('run')
    .description('start a training run from a JSON spec (see examples/sample-training.json); needs a running worker')
    .requiredOption('--spec <file>', 'the training spec, a JSON file')
    .option('--wait', 'wait for the run to finish, showing step and loss')
    .option('--json', 'print the result (or the started workflow) as JSON on stdout')
    .action(async (opts: { spec: string; wait?: boolean; json?: boolean }) => {
      loadConfig();
      const spec = readCheckedSpec(opts.spec, 'trainingRun', TrainingSpec);
      const flywheel = await deps.connect();
      const handle = await flywheel.startTraining(spec);
      const say = (line: string) => (opts.json ? console.error : console.log)(line);
      say(`started ${handle.workflowId}`);
      if (!opts.wait) {
        if (opts.json) console.log(JSON.stringify({ workflowId: handle.workflowId }));
        return;
      }
      const result = await followTraining(handle, (line) => console.error(line));
      if (opts.json) console.log(JSON.stringify(result));
      else for (const line of describeTraining(result)) console.log(line);
    });
  const control = (name: string, description: string, act: (handle: WorkflowHandle) => Promise<void>) =>
    train
      .command(`${name} <run>`)
      .description(description)
      .action(async (run: string) => {
        loadConfig();
        const flywheel = await deps.connect();
        const handle = flywheel.client.workflow.getHandle(`train-${run}`);
        await act(handle);
        console.log(`${name}: train-${run}`);
      });
  control('pause', 'pause a run at the end of its current segment (a checkpoint)', (h) => h.signal('pause'));
  control('resume', 'resume a paused run', (h) => h.signal('resume'));
  control('cancel', 'cancel a run; it stops at its next checkpoint and leaves it committed', async (h) => {
    await h.cancel();
  });
}
