import * as fs from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { loadConfig } from '../../lib/config';
import { DatasetMetaSchema } from '../../lib/pipeline/commit-dataset';
import { readManifest, tieredStoreFromConfig } from '../../lib/storage';
import { externalTrainerOf } from '../../lib/flywheel/external-scores';
import {
  exportHfGpt2,
  ModelNotExportable,
  ModelRegistry,
  writeHfDirectory,
  type ModelVersion,
} from '../../lib/registry';
import { exportSafetensors, generateFromFiles } from '../../lib/train/model-files';

/** What a dataset manifest says of its tokenizer, if anything. */
const DatasetTokenizerMeta = DatasetMetaSchema.pick({ tokenizer: true }).partial();

/** The tokenizer of the dataset a version was trained on, when its manifest is still there. */
async function datasetTokenizer(uri: string): Promise<{ encoding?: string; eot?: number } | undefined> {
  const store = tieredStoreFromConfig(loadConfig());
  const dataset = await readManifest(store, uri, DatasetTokenizerMeta).catch(() => undefined);
  return dataset?.meta.tokenizer;
}

function registryFromConfig(): ModelRegistry {
  return new ModelRegistry(tieredStoreFromConfig(loadConfig()));
}

function parseNumber(min: number, max = Infinity) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`a number in [${min}, ${max}]`);
    return n;
  };
}

function parseWhole(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('a whole number');
  return n;
}

const fixed = (n: number | undefined, digits = 3) => (n === undefined ? '-' : n.toFixed(digits));

function describeVersion(v: ModelVersion, champion?: string): string[] {
  return [
    `${v.model} ${v.version}${v.version === champion ? ' (champion)' : ''}`,
    `  created      ${v.createdAt}`,
    `  run          ${v.run} (step ${v.step})`,
    `  dataset      ${v.dataset}`,
    `  parent       ${v.parent ? `${v.parent.model} ${v.parent.version}` : '-'}`,
    `  metrics      ${Object.entries(v.metrics)
      .map(([k, x]) => `${k} ${fixed(x)}`)
      .join(', ')}`,
    `  spec digest  ${v.specDigest}`,
    `  code         ${v.codeVersion}`,
    `  weights      sha256 ${v.weightsSha256}`,
    `  files        ${v.files.map((f) => `${f.name} (${f.bytes} B)`).join(', ')}`,
  ];
}

/** `flywheel models ...`: the registry in warm://models, read and changed directly (no workflow needed). */
export function registerModelsCommands(program: Command): void {
  const models = program
    .command('models')
    .description('the model registry: versions with lineage and metrics, the champion alias, exports');

  models
    .command('list')
    .description('list registered model versions, oldest first')
    .argument('[model]', 'only this model')
    .option('--json', 'print the versions as JSON')
    .action(async (model: string | undefined, opts: { json?: boolean }) => {
      const registry = registryFromConfig();
      const versions = await registry.list(model);
      const champions = new Map<string, string | undefined>();
      for (const name of new Set(versions.map((v) => v.model)))
        champions.set(name, (await registry.aliases(name)).champion);
      if (opts.json) {
        console.log(JSON.stringify(versions.map((v) => ({ ...v, champion: champions.get(v.model) === v.version }))));
        return;
      }
      if (!versions.length) {
        console.log(model ? `no versions of ${model}` : 'no models registered');
        return;
      }
      console.log(['model', 'version', 'created', 'run', 'step', 'valLoss', ''].join('\t'));
      for (const v of versions)
        console.log(
          [
            v.model,
            v.version,
            v.createdAt.slice(0, 19),
            v.run,
            v.step,
            fixed(v.metrics.valLoss),
            champions.get(v.model) === v.version ? 'champion' : '',
          ].join('\t'),
        );
    });

  models
    .command('show')
    .description("a version's lineage, metrics and files (default: the champion, else the newest)")
    .argument('<model>')
    .argument('[version]', 'v1, v2, ... or champion')
    .option('--json', 'print the version, its alias history and decisions as JSON')
    .action(async (model: string, version: string | undefined, opts: { json?: boolean }) => {
      const registry = registryFromConfig();
      const found = await registry.get(model, version);
      const aliases = await registry.aliases(model);
      if (opts.json) {
        const decisions = await registry.decisions(model);
        console.log(JSON.stringify({ ...found, aliases, decisions }));
        return;
      }
      for (const line of describeVersion(found, aliases.champion)) console.log(line);
    });

  models
    .command('promote')
    .description('make a version the champion (the previous one is kept for rollback)')
    .argument('<model>')
    .argument('<version>')
    .option('--reason <text>', 'why, kept in the alias history', 'promoted by hand')
    .action(async (model: string, version: string, opts: { reason: string }) => {
      const state = await registryFromConfig().promote(model, version, opts.reason);
      console.log(`${model}: champion is now ${state.champion}`);
    });

  models
    .command('rollback')
    .description('restore the previous champion')
    .argument('<model>')
    .option('--reason <text>', 'why, kept in the alias history', 'rolled back by hand')
    .action(async (model: string, opts: { reason: string }) => {
      const state = await registryFromConfig().rollback(model, opts.reason);
      console.log(`${model}: champion is back to ${state.champion}`);
    });

  models
    .command('export')
    .description(
      'write a version for serving: its weights as one safetensors file, or (--format hf) a Hugging Face directory ' +
        'that transformers and vLLM load (GPT-2-shaped external models)',
    )
    .argument('<model>')
    .argument('[version]', 'v1, v2, ... or champion')
    .requiredOption('--out <path>', 'the .safetensors file (safetensors) or the directory (hf) to write')
    .addOption(
      new Option('--format <format>', 'safetensors: the weights as one file; hf: a GPT2LMHeadModel directory')
        .choices(['safetensors', 'hf'])
        .default('safetensors'),
    )
    .action(async (model: string, version: string | undefined, opts: { out: string; format: 'safetensors' | 'hf' }) => {
      const store = tieredStoreFromConfig(loadConfig());
      const registry = new ModelRegistry(store);
      const found = await registry.get(model, version);
      const files = await registry.loadFiles(found);
      if (opts.format === 'hf') {
        const tokenizer = await datasetTokenizer(found.dataset);
        const written = exportHfGpt2(found, files, { eot: tokenizer?.eot, encoding: tokenizer?.encoding });
        const bytes = writeHfDirectory(opts.out, written);
        console.log(
          `wrote ${opts.out}: ${model} ${found.version} as a Hugging Face GPT2LMHeadModel directory ` +
            `(${Object.keys(written).join(', ')}; ${bytes} bytes)`,
        );
        return;
      }
      if (externalTrainerOf(found)) {
        throw new ModelNotExportable(
          model,
          found.version,
          `it was trained by an external command, whose files are its own format ` +
            `(${found.files.map((f) => f.name).join(', ')}); export it with --format hf (GPT-2-shaped models)`,
        );
      }
      const bytes = exportSafetensors(found, files);
      fs.writeFileSync(opts.out, bytes);
      console.log(`wrote ${opts.out}: ${model} ${found.version}, ${bytes.length} bytes`);
    });

  models
    .command('generate')
    .description('sample text from a version')
    .argument('<model>')
    .argument('[version]', 'v1, v2, ... or champion')
    .requiredOption('--prompt <text>', 'the text to continue')
    .option('--max-tokens <n>', 'tokens to generate', parseWhole, 40)
    .option('--temperature <t>', '0 = always the most likely token', parseNumber(0, 10), 0.8)
    .option('--top-k <k>', 'sample among the k most likely tokens', parseWhole)
    .option('--top-p <p>', 'sample among the most likely tokens covering this probability', parseNumber(0, 1))
    .option('--seed <n>', 'same seed, same text', parseWhole, 0)
    .option('--json', 'print {model, version, prompt, text} as JSON')
    .action(
      async (
        model: string,
        version: string | undefined,
        opts: {
          prompt: string;
          maxTokens: number;
          temperature: number;
          topK?: number;
          topP?: number;
          seed: number;
          json?: boolean;
        },
      ) => {
        const registry = registryFromConfig();
        const found = await registry.get(model, version);
        const store = tieredStoreFromConfig(loadConfig());
        const dataset = await readManifest(store, found.dataset, DatasetTokenizerMeta).catch(() => undefined);
        const encoding = dataset?.meta.tokenizer?.encoding;
        const text = generateFromFiles(await registry.loadFiles(found), opts.prompt, encoding ?? 'cl100k_base', {
          maxTokens: opts.maxTokens,
          temperature: opts.temperature,
          topK: opts.topK,
          topP: opts.topP,
          seed: opts.seed,
        });
        if (opts.json) console.log(JSON.stringify({ model, version: found.version, prompt: opts.prompt, text }));
        else console.log(opts.prompt + text);
      },
    );
}
