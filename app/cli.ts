import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import {
  ConfigError,
  confineLocalReach,
  describeVariables,
  loadConfig,
  TASK_QUEUE_ROLES,
  type FlywheelConfig,
  type TaskQueueRole,
} from '../lib/config';
import { InvalidSpec } from '../lib/contracts/invalid-spec';
import { shutdownTracing } from '../temporal/tracing';
import type { StorageCheckInput } from '../lib/contracts/storage-check';
import { registerPipelineCommands } from './commands/pipeline';
import { registerDedupCommand } from './commands/dedup';
import { registerPlanCommand } from './commands/plan';
import { registerTrainCommands } from './commands/train';
import { registerCodecServerCommand } from './commands/codec-server';
import { registerFeedbackCommands } from './commands/feedback';
import { registerStatusCommand } from './commands/status';
import { registerReportCommand } from './commands/report';
import { registerCostCommand } from './commands/cost';
import { registerModelsCommands } from './commands/models';
import { registerFlywheelCommands } from './commands/flywheel';
import { registerStorageCommands } from './commands/storage';

// Commands load the SDK (and its native bridge) only when they need it, so `--help` and `config` answer at once.
// Plain require keeps one CommonJS module graph (a dynamic import() would load a second copy through the ESM loader).
/* eslint-disable @typescript-eslint/no-require-imports */
const lazy =
  <T>(load: () => T) =>
  async (): Promise<T> =>
    load();
const runtime = lazy(() => require('../worker/runtime') as typeof import('../worker/runtime'));
const workerMain = lazy(() => require('../worker/main') as typeof import('../worker/main'));
const workerSet = lazy(() => require('../worker/workers') as typeof import('../worker/workers'));
const connection = lazy(
  () => require('../temporal/client-connection') as typeof import('../temporal/client-connection'),
);
const embedded = lazy(() => require('../temporal/embedded') as typeof import('../temporal/embedded'));
const mainJob = lazy(() => require('./main-job') as typeof import('./main-job'));
const torchJob = lazy(() => require('./torch-job') as typeof import('./torch-job'));
const flywheelClient = lazy(() => require('../client/flywheel-client') as typeof import('../client/flywheel-client'));
const codecServerModule = lazy(() => require('./commands/codec-server') as typeof import('./commands/codec-server'));
const payloadCodecModule = lazy(
  () => require('../temporal/payload-codec') as typeof import('../temporal/payload-codec'),
);
const searchAttributes = lazy(
  () => require('../temporal/search-attributes') as typeof import('../temporal/search-attributes'),
);
/* eslint-enable @typescript-eslint/no-require-imports */

/** Exit codes scripts can rely on. */
export const EXIT = { ok: 0, failed: 1, usage: 2, unreachable: 3 } as const;

function parseRoles(value: string): TaskQueueRole[] {
  const roles = value.split(',').map((s) => s.trim());
  const bad = roles.filter((r) => !(TASK_QUEUE_ROLES as readonly string[]).includes(r));
  if (bad.length)
    throw new InvalidArgumentError(`unknown queue ${bad.join(', ')}; use a subset of ${TASK_QUEUE_ROLES.join(',')}`);
  return roles as TaskQueueRole[];
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a whole number ≥ 1');
  return n;
}

/**
 * The embedded default: a local Temporal dev server (started unless one answers), a worker for every queue, and the
 * main job run to the end. Its record goes to `$FLYWHEEL_HOME/last-run.json`.
 */
async function runEmbeddedStart(opts: { json?: boolean; example?: 'torch' }): Promise<void> {
  const started = new Date();
  const { config, notice } = confineLocalReach(loadConfig(), process.cwd());
  const [{ ensureLocalTemporal }, { installRuntime }, { createWorkers }, { connectClient }, { FlywheelClient }] =
    await Promise.all([embedded(), runtime(), workerSet(), connection(), flywheelClient()]);
  const temporal = await ensureLocalTemporal(config);
  log(opts, `Temporal ${temporal.server ? 'dev server started' : 'server found'} at ${temporal.address}`);
  if (temporal.uiUrl) log(opts, `Temporal Web UI: ${temporal.uiUrl}`);
  if (notice) log(opts, notice);
  const { metricsUrl } = await installRuntime(config, { quiet: true });
  const workers = await createWorkers(config);
  const running = workers.run();
  let failure: unknown;
  let record: Record<string, unknown> = {};
  try {
    const client = new FlywheelClient(await connectClient(config), flywheelOptions(config));
    const print = (line: string) => log(opts, line);
    const job =
      opts.example === 'torch'
        ? await (await torchJob()).runTorchJob(client, config, print)
        : await (await mainJob()).runMainJob(client, config, print);
    record = {
      ...job,
      temporal: { address: temporal.address, uiUrl: temporal.uiUrl, startedHere: Boolean(temporal.server) },
      metricsUrl,
      tiers: config.tiers,
    };
  } catch (err) {
    failure = err;
  } finally {
    await workers.shutdown();
    await running.catch(() => undefined);
    await temporal.server?.stop();
  }
  if (failure) throw failure;
  const finished = new Date();
  const out = { ...record, startedAt: started.toISOString(), finishedAt: finished.toISOString(), ok: true };
  fs.mkdirSync(config.home, { recursive: true });
  const file = path.join(config.home, opts.example === 'torch' ? 'torch-run.json' : 'last-run.json');
  fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
  if (opts.json) console.log(JSON.stringify(out));
  else
    console.log(
      `Done in ${((finished.getTime() - started.getTime()) / 1000).toFixed(1)} s; wrote ${path.relative(process.cwd(), file)}`,
    );
}

/** `flywheel dev`: the same stack as `start`, kept up (UI included) until Ctrl-C. */
async function runDevStack(): Promise<void> {
  const { config, notice } = confineLocalReach(loadConfig(), process.cwd());
  const [{ ensureLocalTemporal }, { installRuntime }, { createWorkers }, { onShutdownSignal }] = await Promise.all([
    embedded(),
    runtime(),
    workerSet(),
    workerMain(),
  ]);
  // With encryption on, the Web UI decodes payloads through a local codec server started alongside.
  const keyRing = config.codec.keyRing;
  const codecServer = keyRing
    ? await (
        await codecServerModule()
      ).startCodecServer({
        codec: new (await payloadCodecModule()).EncryptionCodec(keyRing),
        host: '127.0.0.1',
        port: 0,
      })
    : undefined;
  const temporal = await ensureLocalTemporal(config, { uiCodecEndpoint: codecServer?.url });
  const { metricsUrl } = await installRuntime(config);
  const workers = await createWorkers(config);
  console.log(`Temporal ${temporal.server ? 'dev server' : 'server'} at ${temporal.address}`);
  if (codecServer) console.log(`Codec server (Web UI decodes payloads through it): ${codecServer.url}`);
  if (temporal.uiUrl) console.log(`Temporal Web UI: ${temporal.uiUrl}`);
  console.log(`Worker queues: ${workers.workers.map((w) => w.taskQueue).join(', ')}`);
  if (metricsUrl) console.log(`Worker metrics: ${metricsUrl}`);
  if (notice) console.log(notice);
  console.log('Press Ctrl-C to stop.');
  onShutdownSignal(async () => {
    await workers.shutdown();
    await temporal.server?.stop();
    await codecServer?.close();
  });
  await workers.run();
  await temporal.server?.stop();
}

async function runStorageCheckCommand(opts: { objects?: number; bytes?: number; tier?: string; json?: boolean }) {
  const config = loadConfig();
  const client = await connectFlywheel(config);
  const spec = { objects: opts.objects, objectBytes: opts.bytes, tier: opts.tier } as StorageCheckInput;
  const handle = await client.startStorageCheck(spec);
  if (!opts.json)
    console.log(`Started ${handle.workflowId}; waiting for a worker on ${config.worker.taskQueuePrefix}-io`);
  const result = await handle.result();
  console.log(
    opts.json
      ? JSON.stringify({ workflowId: handle.workflowId, ...result })
      : `Verified ${result.objects} objects, ${result.bytes} bytes: ${result.manifest.uri}`,
  );
}

function log(opts: { json?: boolean }, line: string) {
  (opts.json ? console.error : console.log)(line);
}

export function buildCli(): Command {
  const program = new Command('flywheel')
    .description('Durable data and training pipelines for language models, on Temporal')
    .showHelpAfterError()
    .exitOverride();

  program
    .command('start')
    .description('start a local Temporal (unless one answers), a worker, and run the main job to the end')
    .option('--json', 'print the run record as JSON on stdout')
    .addOption(
      new Option(
        '--example <job>',
        'run another job instead of the main one: torch = a PyTorch GPT trained by torchrun through the whole loop ' +
          '(needs examples/torch-gpt/requirements.txt); its record goes to torch-run.json',
      ).choices(['torch']),
    )
    .action((opts) => runEmbeddedStart(opts));

  program
    .command('dev')
    .description('start a local Temporal dev server (Web UI on :8233) and a worker, and keep them up until Ctrl-C')
    .action(() => runDevStack());

  program
    .command('worker')
    .description('run a worker for the configured Temporal cluster until SIGINT/SIGTERM')
    .option('--queues <roles>', `task queues to serve, a subset of ${TASK_QUEUE_ROLES.join(',')}`, parseRoles)
    .action(async (opts: { queues?: TaskQueueRole[] }) =>
      (await workerMain()).runWorkerProcess({ roles: opts.queues }),
    );

  program
    .command('search-attributes')
    .description("register Flywheel's search attributes on the configured namespace (self-hosted clusters)")
    .action(async () => {
      const config = loadConfig();
      const { connectClient } = await connection();
      const { registerSearchAttributes } = await searchAttributes();
      const client = await connectClient(config);
      const { added, present } = await registerSearchAttributes(client, config.temporal.namespace);
      console.log(
        `namespace ${config.temporal.namespace}: added ${added.join(', ') || 'none'}; already there ${present.join(', ') || 'none'}`,
      );
      await client.connection.close();
    });

  registerDedupCommand(program);
  registerPlanCommand(program);
  registerCodecServerCommand(program);
  registerFeedbackCommands(program);
  registerStatusCommand(program, { connect: async () => (await connection()).connectClient(loadConfig()) });
  registerReportCommand(program, { connect: async () => (await connection()).connectClient(loadConfig()) });
  registerCostCommand(program, { connect: async (config) => (await connection()).connectClient(config) });
  registerModelsCommands(program);

  registerTrainCommands(program, {
    connect: () => connectFlywheel(loadConfig()),
  });

  registerFlywheelCommands(program, {
    connect: () => connectFlywheel(loadConfig()),
  });
  registerStorageCommands(program, {
    connect: () => connectFlywheel(loadConfig()),
  });

  registerPipelineCommands(program, {
    connect: () => connectFlywheel(loadConfig()),
  });

  program
    .command('storage-check')
    .description('write objects to a tier, commit a manifest and verify it, as a workflow (needs a running worker)')
    .option('--objects <n>', 'number of objects', parseCount)
    .option('--bytes <n>', 'bytes per object', parseCount)
    .option('--tier <tier>', 'hot, warm or cold')
    .option('--json', 'print the result as JSON')
    .action((opts) => runStorageCheckCommand(opts));

  program
    .command('config')
    .description('check the environment and print the resolved configuration')
    .option('--variables', 'list every variable with its default instead')
    .action((opts: { variables?: boolean }) => {
      if (opts.variables) {
        for (const v of describeVariables())
          console.log(`${v.variable.padEnd(34)} ${v.default ?? ''}\t${v.description}`);
        return;
      }
      const config = loadConfig();
      const masked = {
        ...config,
        temporal: { ...config.temporal, apiKey: config.temporal.apiKey ? '***' : undefined },
        codec: { ...config.codec, token: config.codec.token ? '***' : undefined },
        s3: {
          ...config.s3,
          credentials: config.s3.credentials
            ? { accessKeyId: config.s3.credentials.accessKeyId, secretAccessKey: '***' }
            : undefined,
        },
      };
      console.log(JSON.stringify(masked, null, 2));
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildCli();
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help') return EXIT.ok;
    if (typeof code === 'string' && code.startsWith('commander.')) return EXIT.usage;
    if (err instanceof ConfigError || err instanceof InvalidSpec) {
      console.error(err.message);
      return EXIT.usage;
    }
    const exitCode = (err as { exitCode?: number }).exitCode;
    console.error(`flywheel: ${err instanceof Error ? err.message : String(err)}`);
    return typeof exitCode === 'number' ? exitCode : EXIT.failed;
  } finally {
    // The spans of this command go out before the process exits (bounded: a dead collector never holds it up).
    await shutdownTracing();
  }
}

if (require.main === module) {
  void main(process.argv).then((code) => process.exit(code));
}

/** What every FlywheelClient of this process is built with: its task queues and the feedback shard count. */
function flywheelOptions(config: FlywheelConfig) {
  return { taskQueuePrefix: config.worker.taskQueuePrefix, feedback: config.feedback };
}

async function connectFlywheel(config: FlywheelConfig) {
  const [{ connectClient }, { FlywheelClient }] = await Promise.all([connection(), flywheelClient()]);
  return new FlywheelClient(await connectClient(config), flywheelOptions(config));
}
