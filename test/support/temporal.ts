import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after } from 'node:test';
import { Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { flywheelLogger } from '../../worker/runtime';
import { findTemporalCli, startDevServer } from '../../temporal/dev-server';
import { loadConfig, type FlywheelConfig } from '../../lib/config';

export interface SharedTemporal {
  address: string;
  kind: string;
  stop(): Promise<void>;
}

/**
 * The installed `temporal` CLI's dev server when there is one; on a fresh machine without it, the dev server the
 * SDK downloads (needs internet). Prints which one ran.
 */
export async function startSharedTemporal(dbFile: string): Promise<SharedTemporal> {
  let cli;
  try {
    cli = await findTemporalCli({ download: false });
  } catch {
    cli = undefined;
  }
  if (cli) {
    const server = await startDevServer({ cli, dbFile });
    const kind = `temporal CLI dev server (${cli.source}: ${cli.path})`;
    console.error(`[flywheel test] Temporal: ${kind} at ${server.address}`);
    return { address: server.address, kind, stop: () => server.stop() };
  }
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const { FLYWHEEL_SEARCH_ATTRIBUTES } = await import('../../workflows/search-attributes');
  const env = await TestWorkflowEnvironment.createLocal({
    server: { ip: '127.0.0.1', dbFilename: dbFile, searchAttributes: [...FLYWHEEL_SEARCH_ATTRIBUTES] },
  });
  const address = env.connection.options.address;
  const kind = 'SDK-downloaded dev server (no temporal CLI installed)';
  console.error(`[flywheel test] Temporal: ${kind} at ${address}`);
  return { address, kind, stop: () => env.teardown() };
}

/**
 * Worker logs at WARN in tests, so the runner's output stays readable. Set as the SDK's default runtime options rather
 * than installed: the SDK creates the runtime on first use (an in-process worker or native connection) and shuts it
 * down when the last one closes, so a suite whose workers are child processes never holds one open.
 */
function quietTestRuntime(): void {
  Runtime.defaultOptions = {
    logger: flywheelLogger('WARN'),
    telemetryOptions: { logging: { filter: makeTelemetryFilterString({ core: 'WARN' }), forward: {} } },
  };
}

let shared: Promise<string> | undefined;

/** Address of the run's shared server; a test file run on its own starts one for itself. */
export function temporalAddress(): Promise<string> {
  if (process.env.FLYWHEEL_TEST_TEMPORAL_ADDRESS) return Promise.resolve(process.env.FLYWHEEL_TEST_TEMPORAL_ADDRESS);
  shared ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-temporal-'));
    const server = await startSharedTemporal(path.join(dir, 'temporal.db'));
    after(() => server.stop());
    return server.address;
  })();
  return shared;
}

/** A configuration on local-folder tiers in a fresh temp dir, its own task queue prefix, metrics off. */
const homes: string[] = [];
process.on('exit', () => {
  for (const home of homes) fs.rmSync(home, { recursive: true, force: true });
});

export function testConfig(address: string, env: Record<string, string> = {}): FlywheelConfig {
  quietTestRuntime();
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-home-'));
  homes.push(home);
  return loadConfig({
    TEMPORAL_ADDRESS: address,
    FLYWHEEL_HOME: home,
    FLYWHEEL_TASK_QUEUE_PREFIX: `flywheel-test-${process.pid}-${Math.random().toString(36).slice(2, 8)}`,
    FLYWHEEL_METRICS_PORT: '0',
    ...env,
  });
}
