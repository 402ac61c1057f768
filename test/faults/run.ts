import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { startS3Server } from '../support/s3-server';
import { startSharedTemporal } from '../support/temporal';
import {
  datasetDigest,
  faultPipelineSpec,
  faultTrainingSpec,
  scenarioSetup,
  TRAINING_DATA,
  type DatasetDigest,
  type FaultContext,
} from './context';
import { writeFaultCorpus } from './corpus';
import { feedbackFlushKilled } from './feedback-faults';
import { formatTable, runScenario, type Scenario } from './harness';
import {
  diskFullWhileSharding,
  s3StoppedMidUpload,
  temporalKilledMidPipeline,
  workerKilledDuringStage,
} from './pipeline-faults';
import {
  checkpointCorrupted,
  hotTierWiped,
  workerKilledDuringCheckpointCommit,
  workerKilledMidSegment,
} from './training-faults';
import { startWorker } from '../support/worker-process';

/**
 * `npm run test:faults`: one Temporal dev server and one S3 server for the suite (the restart scenarios start their
 * own, to kill), a clean pipeline and training run to compare with, the fault scenarios in two concurrent waves, and
 * a table of what happened. FLYWHEEL_FAULTS_ONLY=<regex> picks scenarios by name.
 */
async function main(): Promise<number> {
  // The AWS SDK's notice about its future Node.js support would repeat in every process that builds a client.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-faults-'));
  const corpus = path.join(scratch, 'corpus');
  writeFaultCorpus(corpus, { documents: 1000, files: 40, repeats: 20 });
  const temporal = await startSharedTemporal(path.join(scratch, 'temporal.db'));
  const s3 = await startS3Server();
  const connection = await Connection.connect({ address: temporal.address });
  const client = new Client({ connection });
  const base = { scratch, address: temporal.address, client };
  const ctx: FaultContext = {
    ...base,
    corpus,
    clean: { pipeline: once(() => cleanPipeline(base, corpus)), training: once(() => cleanTraining(base)) },
  };

  const baseline: Scenario[] = [
    {
      name: 'clean pipeline (baseline)',
      run: async () => {
        const digest = await ctx.clean.pipeline();
        return { outcome: `${digest.shards} shards, dataset digest ${digest.manifest.slice(0, 12)}…` };
      },
    },
    {
      name: 'clean training (baseline)',
      run: async () => ({ outcome: `weights sha256 ${(await ctx.clean.training()).weightsSha256.slice(0, 12)}…` }),
    },
  ];
  // The worker kills mid-pipeline wait two minutes for the killed activity's heartbeat to time out: they go first, and
  // the other scenarios run in that wait rather than slow the stages the kills aim at.
  const kills = (['collect', 'dedup', 'tokenize', 'shard'] as const).map((stage) => {
    let landed!: () => void;
    const killed = new Promise<void>((resolve) => (landed = resolve));
    return { scenario: workerKilledDuringStage(ctx, stage, landed), landed, killed };
  });
  const others: Scenario[] = [
    workerKilledMidSegment(ctx),
    workerKilledDuringCheckpointCommit(ctx, s3),
    feedbackFlushKilled(ctx, s3),
    temporalKilledMidPipeline(ctx),
    s3StoppedMidUpload(ctx),
    checkpointCorrupted(ctx),
    hotTierWiped(ctx),
    diskFullWhileSharding(ctx),
  ];
  const only = process.env.FLYWHEEL_FAULTS_ONLY ? new RegExp(process.env.FLYWHEEL_FAULTS_ONLY, 'i') : undefined;
  const chosen = (s: Scenario) => !only || only.test(s.name);

  const started = Date.now();
  const report = async (scenario: Scenario) => {
    const result = await runScenario(scenario);
    console.log(`[faults] ${result.status} ${scenario.name} (${result.seconds.toFixed(0)} s): ${result.outcome}`);
    return result;
  };
  const firstWave = kills
    .filter((k) => chosen(k.scenario))
    .map((k) => ({ ...k, result: report(k.scenario).finally(k.landed) }));
  await Promise.all(firstWave.map((k) => k.killed));
  const secondWave = [...baseline, ...others.filter(chosen)].map(report);
  const results = [
    ...(await Promise.all(secondWave.slice(0, baseline.length))),
    ...(await Promise.all(firstWave.map((k) => k.result))),
    ...(await Promise.all(secondWave.slice(baseline.length))),
  ];
  console.log(`\n${formatTable(results)}`);
  console.log(
    'recover: seconds from the end of the fault (kill, server back, space freed) until the interrupted step completed\n',
  );
  const failed = results.filter((r) => r.status === 'fail').length;
  const skipped = results.filter((r) => r.status === 'skip').length;
  console.log(
    `[faults] ${results.length - failed - skipped} passed, ${failed} failed, ${skipped} skipped in ` +
      `${((Date.now() - started) / 1000).toFixed(0)} s; servers: Temporal ${temporal.kind}, S3 ${s3.kind}`,
  );
  await connection.close();
  await s3.stop();
  await temporal.stop();
  try {
    fs.rmSync(scratch, { recursive: true, force: true });
  } catch (err) {
    console.warn(`[faults] could not remove ${scratch}: ${(err as Error).message}`);
  }
  return failed > 0 ? 1 : 0;
}

type Base = Pick<FaultContext, 'scratch' | 'address' | 'client'>;

/** Runs `start` on the first call; every call gets that one promise. */
function once<T>(start: () => Promise<T>): () => Promise<T> {
  let promise: Promise<T> | undefined;
  return () => (promise ??= start());
}

async function cleanPipeline(base: Base, corpus: string): Promise<DatasetDigest> {
  const setup = scenarioSetup(base, 'clean-pipeline');
  const worker = startWorker(setup.env);
  try {
    return await datasetDigest(setup.store, await (await setup.startPipeline(faultPipelineSpec(corpus))).result());
  } finally {
    await worker.stop();
  }
}

async function cleanTraining(base: Base): Promise<{ dataset: string; weightsSha256: string }> {
  const setup = scenarioSetup(base, 'clean-training');
  const worker = startWorker(setup.env);
  try {
    const dataset = (await (await setup.startPipeline(TRAINING_DATA)).result()).manifest.uri;
    const result = await (await setup.startTraining(faultTrainingSpec('clean', dataset))).result();
    return { dataset, weightsSha256: result.weightsSha256 };
  } finally {
    await worker.stop();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error('[faults] could not run the fault suite:', err);
    process.exit(1);
  },
);
