import * as fs from 'node:fs';
import type { Command } from 'commander';
import type { z } from 'zod';
import type { WorkflowHandle } from '@temporalio/client';
import { loadConfig } from '../../lib/config';
import { parseSpec } from '../../lib/contracts/invalid-spec';
import { PipelineSpec } from '../../lib/contracts/pipeline';
import type { DatasetSummary, PipelineProgress } from '../../lib/contracts/pipeline-results';
import type { FlywheelClient } from '../../client/flywheel-client';
import { followWorkflow } from './follow';

/** Reads a spec file, with an error that names the file and what is wrong with it. */
export function readSpecFile(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw Object.assign(new Error(`cannot read spec file ${file}: ${(err as Error).message}`), { exitCode: 2 });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw Object.assign(new Error(`spec file ${file} is not valid JSON: ${(err as Error).message}`), { exitCode: 2 });
  }
}

/**
 * Reads a spec file and checks it against its workflow's schema before anything connects, so a bad spec is reported
 * as such (InvalidSpec, exit 2, every bad field listed) even when no server is up. Returns the spec as written: the
 * client and the workflow apply the defaults.
 */
export function readCheckedSpec<S extends z.ZodType>(file: string, specName: string, schema: S): z.input<S> {
  const spec = readSpecFile(file);
  parseSpec(specName, schema, spec);
  return spec as z.input<S>;
}

function describeProgress(p: PipelineProgress): string {
  const counts = p.total > 0 ? ` ${p.done}/${p.total}` : '';
  return `[pipeline] ${p.stage}${counts}${p.documents ? `, ${p.documents} documents collected` : ''}`;
}

/** Waits for a pipeline run, printing its stage whenever it changes. */
export function followPipeline(handle: WorkflowHandle, print: (line: string) => void): Promise<DatasetSummary> {
  return followWorkflow<DatasetSummary, PipelineProgress>(handle, describeProgress, print);
}

export function describeDataset(s: DatasetSummary): string[] {
  const funnel = Object.entries(s.stages)
    .map(([stage, st]) => `${stage} ${st.input}→${st.kept}`)
    .join(', ');
  const drops = Object.entries(s.stages)
    .flatMap(([, st]) => Object.entries(st.dropped))
    .sort((a, b) => b[1] - a[1])
    .map(([rule, n]) => `${rule} ${n}`)
    .join(', ');
  const skipped = Object.entries(s.stages.collect?.skipped ?? {})
    .map(([what, n]) => `${what} ${n}`)
    .join(', ');
  return [
    `dataset ${s.dataset}/${s.version}${s.reused ? ' (reused: already committed for this spec)' : ''}: ${s.documents} documents, ${s.tokens} tokens (${s.tokenizer.encoding}, ${s.tokenizer.dtype})`,
    `shards: train ${s.splits.train.shards} (${s.splits.train.documents} docs), validation ${s.splits.validation.shards} (${s.splits.validation.documents} docs)`,
    `funnel: ${funnel}${drops ? `; dropped: ${drops}` : ''}${skipped ? `; passed over (not documents): ${skipped}` : ''}`,
    `manifest: ${s.manifest.uri}`,
  ];
}

export function registerPipelineCommands(program: Command, deps: { connect: () => Promise<FlywheelClient> }): void {
  const pipeline = program
    .command('pipeline')
    .description('the data pipeline: sources → filtered, deduplicated, tokenized WebDataset shards');
  pipeline
    .command('run')
    .description('start a data pipeline from a JSON spec (see examples/); needs a running worker')
    .requiredOption('--spec <file>', 'the pipeline spec, a JSON file')
    .option('--wait', 'wait for the run to finish, showing progress')
    .option('--json', 'print the result (or the started workflow) as JSON on stdout')
    .action(async (opts: { spec: string; wait?: boolean; json?: boolean }) => {
      loadConfig();
      const spec = readCheckedSpec(opts.spec, 'dataPipeline', PipelineSpec);
      const flywheel = await deps.connect();
      const handle = await flywheel.startPipeline(spec);
      const say = (line: string) => (opts.json ? console.error : console.log)(line);
      say(`started ${handle.workflowId}`);
      if (!opts.wait) {
        if (opts.json) console.log(JSON.stringify({ workflowId: handle.workflowId }));
        return;
      }
      const summary = await followPipeline(handle, (line) => console.error(line));
      if (opts.json) console.log(JSON.stringify(summary));
      else for (const line of describeDataset(summary)) console.log(line);
    });
}
