import type { Command } from 'commander';
import type { WorkflowHandle } from '@temporalio/client';
import { loadConfig } from '../../lib/config';
import type { SegmentSummary, TrainingInput, TrainingProgress } from '../../lib/spec/training';
import type { FlywheelClient } from '../flywheel-client';
import { followWorkflow } from './follow';
import { readSpecFile } from './pipeline';

export type TrainingResult = SegmentSummary & { segments: number };

function describeProgress(p: TrainingProgress): string {
  return (
    `[train] step ${p.step}/${p.steps}` +
    (p.loss !== undefined ? `, loss ${p.loss.toFixed(3)}` : '') +
    (p.valLoss !== undefined ? `, validation loss ${p.valLoss.toFixed(3)}` : '')
  );
}

/** Waits for a training run, printing step and loss whenever they change. */
export function followTraining(handle: WorkflowHandle, print: (line: string) => void): Promise<TrainingResult> {
  return followWorkflow<TrainingResult, TrainingProgress>(handle, describeProgress, print);
}

export function describeTraining(r: TrainingResult): string[] {
  return [
    `trained ${r.step} steps in ${r.segments} segments: loss ${r.firstLoss?.toFixed(3) ?? '?'} → ${r.loss.toFixed(3)}, ` +
      `validation loss ${r.valLoss.toFixed(3)} (perplexity ${r.perplexity.toFixed(1)})`,
    `checkpoints of the last segment: steps ${r.checkpoints.join(', ')}; weights sha256 ${r.weightsSha256.slice(0, 16)}…`,
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
      const spec = readSpecFile(opts.spec) as TrainingInput;
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
}
