import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FlywheelConfig } from '../lib/config';
import { isListening, startDevServer, type DevServer } from './dev-server';

export interface LocalTemporal {
  address: string;
  uiUrl?: string;
  /** The server this process started, if it had to start one. */
  server?: DevServer;
}

const LOCAL_HOSTS = new Set(['localhost', '127.0.0.1', '0.0.0.0', '[::1]']);

/**
 * The embedded default's Temporal: reuse a server already answering at TEMPORAL_ADDRESS (say, a `flywheel dev`
 * in another terminal); else, for a local address, start the CLI dev server on it with its SQLite file under
 * FLYWHEEL_HOME (so history survives restarts) and the Web UI on port + 1000.
 */
export async function ensureLocalTemporal(
  config: FlywheelConfig,
  opts: { ui?: boolean; uiCodecEndpoint?: string } = {},
): Promise<LocalTemporal> {
  const address = config.temporal.address;
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i);
  const port = Number(address.slice(i + 1));
  if (await isListening(address)) {
    const uiUrl = (await isListening(`${host}:${port + 1000}`, 300)) ? `http://localhost:${port + 1000}` : undefined;
    return { address, uiUrl };
  }
  if (!LOCAL_HOSTS.has(host)) {
    throw new Error(
      `Nothing answers at TEMPORAL_ADDRESS=${address} and it is not a local address, so no dev server is started ` +
        'for it: check the address, or unset it to use the embedded server on localhost:7233.',
    );
  }
  let uiPort: number | false = false;
  if (opts.ui !== false) {
    uiPort = port + 1000;
    if (await isListening(`127.0.0.1:${uiPort}`, 300)) {
      console.warn(`[flywheel] port ${uiPort} is taken: starting Temporal without its Web UI`);
      uiPort = false;
    }
  }
  fs.mkdirSync(config.home, { recursive: true });
  const server = await startDevServer({
    ip: '127.0.0.1',
    port,
    uiPort,
    namespace: config.temporal.namespace,
    dbFile: path.join(config.home, 'temporal.db'),
    logFile: path.join(config.home, 'temporal.log'),
    uiCodecEndpoint: opts.uiCodecEndpoint,
  });
  return { address: server.address, uiUrl: server.uiUrl, server };
}
