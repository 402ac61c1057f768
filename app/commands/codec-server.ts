import { createHash, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidArgumentError, type Command } from 'commander';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { ConfigError, loadConfig } from '../../lib/config';

export const DEFAULT_CODEC_PORT = 8888;
export const DEFAULT_UI_ORIGINS = ['http://localhost:8233', 'http://127.0.0.1:8233'];
/** What the Web UI sends with /decode and /encode: its namespace, and its access token when told to pass it. */
const ALLOWED_HEADERS = 'Content-Type, X-Namespace, Authorization, Authorization-Extras';
const MAX_BODY_BYTES = 32 * 1024 * 1024;

/** A payload as protobuf JSON: metadata values and data in base64. */
interface JsonPayload {
  metadata?: Record<string, string> | null;
  data?: string | null;
}

export interface CodecServerOptions {
  codec: PayloadCodec;
  host?: string;
  port?: number;
  /** Browser origins allowed to call it (CORS): the Web UI's. */
  uiOrigins?: string[];
  /** When set, every /encode and /decode needs `Authorization: Bearer <token>`. */
  token?: string;
}

export interface RunningCodecServer {
  url: string;
  close(): Promise<void>;
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

/**
 * Temporal's codec server protocol over HTTP: POST .../encode and .../decode take and return `{"payloads": [...]}`
 * (protobuf JSON), so the Web UI (`--ui-codec-endpoint`) and `temporal workflow show --codec-endpoint` show payloads
 * decrypted. Only the last path segment is read, so it can be mounted under a namespace prefix.
 */
export async function startCodecServer(opts: CodecServerOptions): Promise<RunningCodecServer> {
  const origins = new Set(opts.uiOrigins ?? DEFAULT_UI_ORIGINS);
  const tokenDigest = opts.token === undefined ? undefined : sha256(opts.token);

  const server = http.createServer((req, res) => {
    const origin = req.headers.origin;
    if (origin !== undefined && origins.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    res.setHeader('Vary', 'Origin');
    const action = new URL(req.url ?? '/', 'http://codec').pathname.split('/').filter(Boolean).pop();
    if (action !== 'encode' && action !== 'decode') return reply(res, 404, { error: 'POST to /encode or /decode' });

    if (req.method === 'OPTIONS') {
      // A preflight carries no credentials, so it is answered by origin alone.
      if (origin === undefined || !origins.has(origin))
        return reply(res, 403, { error: `origin ${origin ?? '(none)'} is not allowed; start with --ui-origin` });
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', ALLOWED_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
      res.writeHead(204).end();
      return;
    }
    if (req.method !== 'POST') {
      res.setHeader('Allow', 'POST, OPTIONS');
      return reply(res, 405, { error: 'POST only' });
    }
    if (tokenDigest && !bearerMatches(req.headers.authorization, tokenDigest)) {
      res.setHeader('WWW-Authenticate', 'Bearer realm="flywheel-codec"');
      return reply(res, 401, { error: 'a valid Authorization: Bearer <FLYWHEEL_CODEC_TOKEN> header is required' });
    }
    readBody(req)
      .then(async (body) => {
        const payloads = parsePayloads(body).map(fromJson);
        const out = action === 'encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
        reply(res, 200, { payloads: out.map(toJson) });
      })
      .catch((err: unknown) => {
        // Protocol: bad JSON and codec errors (unknown key, failed authentication) are 400s.
        const status = err instanceof BadRequest ? err.status : 400;
        reply(res, status, { error: err instanceof Error ? err.message : String(err) });
      });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? DEFAULT_CODEC_PORT, opts.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeIdleConnections();
      }),
  };
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Constant-time comparison of digests, so the token cannot be guessed byte by byte from timings. */
function bearerMatches(header: string | undefined, tokenDigest: Buffer): boolean {
  const match = /^Bearer\s+(.+)$/i.exec(header ?? '');
  return match !== null && timingSafeEqual(sha256(match[1].trim()), tokenDigest);
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > MAX_BODY_BYTES) {
        reject(new BadRequest(`body over ${MAX_BODY_BYTES} bytes`, 413));
        req.removeAllListeners('data').resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function parsePayloads(body: string): JsonPayload[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new BadRequest('the body is not JSON; expected {"payloads": [{"metadata": {...}, "data": "<base64>"}]}');
  }
  const payloads = (parsed as { payloads?: unknown } | null)?.payloads;
  if (!Array.isArray(payloads)) throw new BadRequest('expected {"payloads": [...]}');
  return payloads as JsonPayload[];
}

function fromJson({ metadata, data }: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(data ?? '', 'base64'),
  };
}

function toJson({ metadata, data }: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
    ),
    data: Buffer.from(data ?? new Uint8Array()).toString('base64'),
  };
}

function reply(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}

function parsePort(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number');
  return n;
}

function parseOrigins(value: string): string[] {
  const origins = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const origin of origins) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || parsed.origin !== origin)
      throw new InvalidArgumentError(
        `expected origins such as http://localhost:8233 (scheme://host[:port]), got ${origin}`,
      );
  }
  return origins;
}

async function runCodecServer(opts: { port: number; host: string; uiOrigin: string[] }): Promise<void> {
  const config = loadConfig();
  const keyRing = config.codec.keyRing;
  if (!keyRing)
    throw new ConfigError([
      { variable: 'FLYWHEEL_CODEC_KEYS', expected: 'a key ring (or FLYWHEEL_CODEC_KEYS_FILE) for the codec server' },
    ]);
  // The SDK loads only when the command runs, so `flywheel --help` stays fast.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { EncryptionCodec } = require('../../temporal/payload-codec') as typeof import('../../temporal/payload-codec');
  const server = await startCodecServer({
    codec: new EncryptionCodec(keyRing),
    host: opts.host,
    port: opts.port,
    uiOrigins: opts.uiOrigin,
    token: config.codec.token,
  });
  console.log(
    `Codec server on ${server.url} (keys ${keyRing.keyIds.join(', ')}; encrypting with ${keyRing.currentKeyId})`,
  );
  console.log(`Web UI origins allowed: ${opts.uiOrigin.join(', ')}`);
  console.log(`Use it: temporal server start-dev --ui-codec-endpoint ${server.url}`);
  if (!config.codec.token && !['127.0.0.1', '::1', 'localhost'].includes(opts.host))
    console.warn(`Warning: bound to ${opts.host} without FLYWHEEL_CODEC_TOKEN: anyone who reaches it can decrypt.`);
  await new Promise<void>((resolve) => {
    const stop = () => void server.close().then(resolve, resolve);
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
}

export function registerCodecServerCommand(program: Command): void {
  program
    .command('codec-server')
    .description("serve Temporal's codec protocol (/encode, /decode) so the Web UI and CLI show encrypted payloads")
    .option('--port <port>', 'port to listen on', parsePort, DEFAULT_CODEC_PORT)
    .option('--host <address>', 'address to bind (loopback unless you set FLYWHEEL_CODEC_TOKEN)', '127.0.0.1')
    .option(
      '--ui-origin <origins>',
      'Web UI origins allowed by CORS, comma-separated',
      parseOrigins,
      DEFAULT_UI_ORIGINS,
    )
    .action((opts: { port: number; host: string; uiOrigin: string[] }) => runCodecServer(opts));
}
