import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { S3ClientOptions } from '../../lib/storage';
import { freePort } from '../../temporal/dev-server';

export interface TestS3Server {
  kind: 's3proxy' | 's3rver';
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: 'us-east-1';
  /** 'when_supported' only for servers that parse aws-chunked trailing checksums (s3rver stores the framing). */
  checksums: 'when_supported' | 'when_required';
  stop(): Promise<void>;
}

export const S3PROXY_VERSION = '4.1.0';
const ACCESS_KEY = 'flywheel-test';
const SECRET_KEY = 'flywheel-test-secret';
const START_TIMEOUT_MS = 30_000;

/**
 * A real S3-compatible server for the storage contract: the one the test runner already started (env), else
 * s3proxy on a free loopback port when Java and its jar are present, else in-process s3rver.
 */
export async function startS3Server(): Promise<TestS3Server> {
  const fromEnv = process.env.FLYWHEEL_TEST_S3_ENDPOINT;
  if (fromEnv) {
    const kind = process.env.FLYWHEEL_TEST_S3_KIND === 's3rver' ? 's3rver' : 's3proxy';
    const server: TestS3Server = {
      kind,
      endpoint: fromEnv,
      accessKeyId: process.env.FLYWHEEL_TEST_S3_ACCESS_KEY ?? ACCESS_KEY,
      secretAccessKey: process.env.FLYWHEEL_TEST_S3_SECRET ?? SECRET_KEY,
      region: 'us-east-1',
      checksums: process.env.FLYWHEEL_TEST_S3_CHECKSUMS === 'when_supported' ? 'when_supported' : 'when_required',
      stop: async () => undefined, // owned by whoever started it
    };
    announce(server, 'shared by the test runner');
    return server;
  }
  // FLYWHEEL_TEST_S3_SERVER=s3rver|s3proxy forces one, e.g. to exercise the fallback on a machine with Java.
  const wanted = process.env.FLYWHEEL_TEST_S3_SERVER;
  const jar = wanted === 's3rver' ? undefined : findS3ProxyJar();
  const java = jar !== undefined && javaOnPath();
  if (wanted === 's3proxy' && !java) {
    throw new Error(
      'FLYWHEEL_TEST_S3_SERVER=s3proxy but no s3proxy: install Java 17 and put the jar at $S3PROXY_JAR or ' +
        `~/.m2/repository/org/gaul/s3proxy/${S3PROXY_VERSION}/s3proxy-${S3PROXY_VERSION}-jar-with-dependencies.jar`,
    );
  }
  const server = jar !== undefined && java ? await startS3Proxy(jar) : await startS3rver();
  announce(server);
  return server;
}

function announce(server: TestS3Server, note?: string): void {
  const label = server.kind === 's3proxy' ? `s3proxy ${S3PROXY_VERSION}` : 's3rver';
  process.stderr.write(
    `[flywheel test] S3 server: ${label} at ${server.endpoint} (checksums ${server.checksums}${note ? `, ${note}` : ''})\n`,
  );
}

export function findS3ProxyJar(): string | undefined {
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

export function javaOnPath(): boolean {
  const found = (process.env.PATH ?? '').split(delimiter).some((dir) => dir && existsSync(join(dir, 'java')));
  return found && spawnSync('java', ['-version'], { stdio: 'ignore' }).status === 0;
}

async function startS3Proxy(jar: string): Promise<TestS3Server> {
  const scratch = mkdtempSync(join(tmpdir(), 'flywheel-s3proxy-'));
  const endpoint = `http://127.0.0.1:${await freePort('127.0.0.1')}`;
  const properties = writeS3ProxyConfig(scratch, endpoint, { accessKeyId: ACCESS_KEY, secretAccessKey: SECRET_KEY });
  const removeScratch = () => rmSync(scratch, { recursive: true, force: true });
  process.once('exit', removeScratch);
  let child: ChildProcess;
  try {
    child = await runS3Proxy(jar, properties, endpoint);
  } catch (err) {
    process.removeListener('exit', removeScratch);
    removeScratch();
    throw err;
  }
  return {
    kind: 's3proxy',
    endpoint,
    accessKeyId: ACCESS_KEY,
    secretAccessKey: SECRET_KEY,
    region: 'us-east-1',
    checksums: 'when_supported',
    stop: async () => {
      process.removeListener('exit', removeScratch);
      await stopS3Proxy(child);
      removeScratch();
    },
  };
}

/** s3proxy's properties for a filesystem backend under `folder` (data in `folder/data`); returns the file's path. */
export function writeS3ProxyConfig(
  folder: string,
  endpoint: string,
  keys: { accessKeyId: string; secretAccessKey: string },
): string {
  const data = join(folder, 'data');
  mkdirSync(data, { recursive: true });
  const properties = join(folder, 's3proxy.conf');
  writeFileSync(
    properties,
    [
      `s3proxy.endpoint=${endpoint}`,
      's3proxy.authorization=aws-v2-or-v4',
      `s3proxy.identity=${keys.accessKeyId}`,
      `s3proxy.credential=${keys.secretAccessKey}`,
      'jclouds.provider=filesystem',
      `jclouds.filesystem.basedir=${data}`,
      '',
    ].join('\n'),
  );
  return properties;
}

/** Starts s3proxy under its watchdog and resolves once it answers HTTP; a start that fails stops what it started. */
export async function runS3Proxy(jar: string, properties: string, endpoint: string): Promise<ChildProcess> {
  const child = spawn('sh', ['-c', WATCHDOG, jar, properties], { stdio: ['pipe', 'pipe', 'pipe'] });
  let log = '';
  const keep = (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-8192);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  // If this process dies without stopping it, its stdin closes and the watchdog stops the JVM.
  try {
    await waitForHttp(endpoint, child, () => log);
  } catch (err) {
    await stopS3Proxy(child);
    throw err;
  }
  return child;
}

/**
 * Runs the JVM under a shell that kills it once our end of its stdin closes: when stop() closes it, and when this
 * process dies in any way (SIGKILL, a test-runner timeout) that runs no exit handler. The shell exits with the JVM.
 */
const WATCHDOG = [
  'exec 3<&0', // background jobs get /dev/null as stdin, so keep ours on fd 3 for the watcher
  'java -jar "$0" --properties "$1" 3<&- &',
  'pid=$!',
  '(read _ <&3; kill $pid 2>/dev/null) &',
  'wait $pid',
].join('\n');

async function waitForHttp(endpoint: string, child: ChildProcess, logTail: () => string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`s3proxy exited (${child.exitCode ?? child.signalCode}) before serving:\n${logTail()}`);
    }
    try {
      await fetch(endpoint, { signal: AbortSignal.timeout(1000) });
      return; // any HTTP answer (even 403) means it is serving
    } catch {
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`s3proxy did not answer at ${endpoint} within ${START_TIMEOUT_MS / 1000} s:\n${logTail()}`);
}

/** Closes the watchdog's stdin (which stops the JVM), SIGKILL after 5 s. */
export async function stopS3Proxy(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const force = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(force);
      resolve();
    });
    child.stdin?.end(); // the watchdog shell stops the JVM
  });
}

export interface S3rverInstance {
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}
export type S3rverConstructor = new (options: {
  address: string;
  port: number;
  silent: boolean;
  directory: string;
  resetOnClose?: boolean;
}) => S3rverInstance;

async function startS3rver(): Promise<TestS3Server> {
  const S3rver = loadS3rver();
  const directory = mkdtempSync(join(tmpdir(), 'flywheel-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
  const { port } = await server.run();
  return {
    kind: 's3rver',
    endpoint: `http://127.0.0.1:${port}`,
    accessKeyId: 'S3RVER', // the only key pair s3rver accepts
    secretAccessKey: 'S3RVER',
    region: 'us-east-1',
    checksums: 'when_required',
    stop: async () => {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/** Client settings for a test server: path style, its keys and checksum mode, few attempts. */
export function s3ClientOptions(server: TestS3Server, overrides: Partial<S3ClientOptions> = {}): S3ClientOptions {
  return {
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
    checksums: server.checksums,
    maxAttempts: 2,
    ...overrides,
  };
}

/** The s3rver constructor (s3rver ships no types; S3rverConstructor is the part used). */
export function loadS3rver(): S3rverConstructor {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require('s3rver') as S3rverConstructor;
}
