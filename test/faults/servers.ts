import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { findTemporalCli, freePort, startDevServer, type DevServer } from '../../temporal/dev-server';
import {
  findS3ProxyJar,
  javaOnPath,
  loadS3rver,
  runS3Proxy,
  stopS3Proxy,
  writeS3ProxyConfig,
  type S3rverInstance,
} from '../support/s3-server';

/** A Temporal dev server on a fixed port and SQLite file, so it can be killed and brought back with its history. */
export interface RestartableTemporal {
  address: string;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Starts it again on the same port and database file. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRestartableTemporal(dbFile: string): Promise<RestartableTemporal> {
  const cli = await findTemporalCli({ download: true });
  const port = await freePort();
  let server: DevServer | undefined = await startDevServer({ cli, dbFile, port });
  return {
    address: server.address,
    async kill() {
      await server?.kill();
      server = undefined;
    },
    async restart() {
      server = await startDevServer({ cli, dbFile, port });
    },
    async stop() {
      await server?.stop();
      server = undefined;
    },
  };
}

/** An S3-compatible server that can be stopped and started again on the same port and data folder. */
export interface RestartableS3 {
  kind: 's3proxy' | 's3rver';
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: 'us-east-1';
  checksums: 'when_supported' | 'when_required';
  /** Stops serving: connections are refused until start(). */
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** s3proxy (a separate JVM) when Java and its jar are installed, else s3rver in this process. */
export async function startRestartableS3(dataDir: string): Promise<RestartableS3> {
  mkdirSync(dataDir, { recursive: true });
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const jar = findS3ProxyJar();
  if (jar && process.env.FLYWHEEL_TEST_S3_SERVER !== 's3rver' && javaOnPath()) {
    return s3proxy(jar, dataDir, endpoint);
  }
  return s3rver(dataDir, port, endpoint);
}

async function s3proxy(jar: string, dataDir: string, endpoint: string): Promise<RestartableS3> {
  const accessKeyId = 'flywheel-faults';
  const secretAccessKey = 'flywheel-faults-secret';
  const properties = writeS3ProxyConfig(dataDir, endpoint, { accessKeyId, secretAccessKey });
  let child: ChildProcess | undefined;
  const start = async () => {
    child = await runS3Proxy(jar, properties, endpoint);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (running) await stopS3Proxy(running);
  };
  await start();
  return {
    kind: 's3proxy',
    endpoint,
    accessKeyId,
    secretAccessKey,
    region: 'us-east-1',
    checksums: 'when_supported',
    stop,
    start,
  };
}

async function s3rver(dataDir: string, port: number, endpoint: string): Promise<RestartableS3> {
  const S3rver = loadS3rver();
  let server: S3rverInstance | undefined;
  const start = async () => {
    const next = new S3rver({ address: '127.0.0.1', port, silent: true, directory: dataDir, resetOnClose: false });
    await next.run();
    server = next;
  };
  const stop = async () => {
    await server?.close();
    server = undefined;
  };
  await start();
  return {
    kind: 's3rver',
    endpoint,
    accessKeyId: 'S3RVER', // the only key pair s3rver accepts
    secretAccessKey: 'S3RVER',
    region: 'us-east-1',
    checksums: 'when_required',
    stop,
    start,
  };
}
