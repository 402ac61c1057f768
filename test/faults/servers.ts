import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { findTemporalCli, freePort, startDevServer, type DevServer } from '../../worker/dev-server';

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

const S3PROXY_VERSION = '4.1.0';
const START_TIMEOUT_MS = 30_000;

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

function findS3ProxyJar(): string | undefined {
  const candidates = [
    process.env.S3PROXY_JAR,
    join(
      homedir(),
      '.m2/repository/org/gaul/s3proxy',
      S3PROXY_VERSION,
      `s3proxy-${S3PROXY_VERSION}-jar-with-dependencies.jar`,
    ),
  ];
  return candidates.find((c): c is string => !!c && existsSync(c));
}

function javaOnPath(): boolean {
  const found = (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, 'java')));
  return found && spawnSync('java', ['-version'], { stdio: 'ignore' }).status === 0;
}

/**
 * The JVM runs under a shell that kills it once our end of its stdin closes: on stop(), and when this process dies
 * in any way that runs no exit handler.
 */
const WATCHDOG = [
  'exec 3<&0',
  'java -jar "$0" --properties "$1" 3<&- &',
  'pid=$!',
  '(read _ <&3; kill $pid 2>/dev/null) &',
  'wait $pid',
].join('\n');

async function s3proxy(jar: string, dataDir: string, endpoint: string): Promise<RestartableS3> {
  const accessKeyId = 'flywheel-faults';
  const secretAccessKey = 'flywheel-faults-secret';
  const properties = join(dataDir, '..', 's3proxy.conf');
  const data = join(dataDir, 'buckets');
  mkdirSync(data, { recursive: true });
  writeFileSync(
    properties,
    [
      `s3proxy.endpoint=${endpoint}`,
      's3proxy.authorization=aws-v2-or-v4',
      `s3proxy.identity=${accessKeyId}`,
      `s3proxy.credential=${secretAccessKey}`,
      'jclouds.provider=filesystem',
      `jclouds.filesystem.basedir=${data}`,
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const start = async () => {
    const started = spawn('sh', ['-c', WATCHDOG, jar, properties], { stdio: ['pipe', 'pipe', 'pipe'] });
    child = started;
    let log = '';
    const keep = (chunk: Buffer) => void (log = (log + chunk.toString()).slice(-4096));
    started.stdout?.on('data', keep);
    started.stderr?.on('data', keep);
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (started.exitCode !== null || started.signalCode !== null) {
        throw new Error(`s3proxy exited (${started.exitCode ?? started.signalCode}) before serving:\n${log}`);
      }
      if (await answers(endpoint)) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`s3proxy did not answer at ${endpoint} within ${START_TIMEOUT_MS / 1000} s:\n${log}`);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => running.kill('SIGKILL'), 5000);
      running.once('exit', () => {
        clearTimeout(force);
        resolve();
      });
      running.stdin?.end();
    });
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

async function answers(endpoint: string): Promise<boolean> {
  try {
    await fetch(endpoint, { signal: AbortSignal.timeout(1000) });
    return true; // any HTTP answer, even 403, means it is serving
  } catch {
    return false;
  }
}

interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  resetOnClose?: boolean;
}) => S3rverInstance;

async function s3rver(dataDir: string, port: number, endpoint: string): Promise<RestartableS3> {
  // s3rver ships no types; the constructor shape above is the part used here.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const S3rver = require('s3rver') as S3rverConstructor;
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
