import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { FlywheelError } from '../../common';
import type { CollectContext } from '../context';
import { CollectError, SourceFetchFailed, SourceForbidden, SourceNotFound, SourceTooLarge } from '../errors';
import { checkHostAllowed } from '../reach';
import type { UrlSource } from '../source-spec';
import type { SourceUnit } from '../source-unit';
import type { OpenedUnit } from './opened-unit';
import { fetchWithinReach } from './reach-fetch';

const MAX_BACKOFF_MS = 30_000;
/** As many redirects as browsers and fetch follow. */
const MAX_REDIRECTS = 20;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);

/** The extension a Content-Type implies, for URLs whose path does not name a format. */
const CONTENT_TYPE_EXTENSIONS: Record<string, string> = {
  'application/json': '.json',
  'application/x-ndjson': '.jsonl',
  'application/jsonl': '.jsonl',
  'application/jsonlines': '.jsonl',
  'application/x-jsonlines': '.jsonl',
  'text/plain': '.txt',
  'text/markdown': '.md',
  'message/rfc822': '.eml',
  'application/mbox': '.mbox',
  'application/x-tar': '.tar',
  'application/gzip': '.gz',
  'application/x-gzip': '.gz',
  'application/zstd': '.zst',
  'text/html': '.html',
  'application/xhtml+xml': '.html',
  'application/vnd.apache.parquet': '.parquet',
  'application/warc': '.warc',
};

/**
 * Downloads a URL to a temporary file (so a retry restarts cleanly and parsing never holds a socket), then reads it
 * like a local file. Retries 5xx/408/429 answers, network errors and timeouts with exponential backoff. Redirects
 * are followed one by one, each target checked against the allowed hosts first.
 */
export async function openUrlUnit(unit: SourceUnit, ctx: CollectContext): Promise<OpenedUnit> {
  const { source } = unit;
  if (source.type !== 'url') throw new Error(`openUrlUnit given a ${source.type} unit`);
  checkHostAllowed(new URL(source.url), ctx.allowedHosts, source.url);
  const dir = await mkdtemp(path.join(ctx.tmpDir ?? tmpdir(), 'flywheel-url-'));
  const file = path.join(dir, 'body');
  const cleanup = () => rm(dir, { recursive: true, force: true });
  let download: Download;
  try {
    download = await downloadWithRetries(source, ctx, file);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const stream = createReadStream(file, { highWaterMark: 1024 * 1024 });
  return {
    input: {
      name: nameFor(source.url, download.contentType),
      path: source.url,
      chunks: stream as AsyncIterable<Buffer>,
      modified: download.lastModified,
    },
    close: async () => {
      stream.destroy();
      await cleanup();
    },
  };
}

interface Download {
  bytes: number;
  contentType?: string;
  lastModified?: Date;
}

async function downloadWithRetries(source: UrlSource, ctx: CollectContext, file: string): Promise<Download> {
  const attempts = source.retries + 1;
  for (let attempt = 1; ; attempt++) {
    try {
      return await downloadOnce(source, ctx, file);
    } catch (err) {
      const failure = classify(err, source.url);
      if (failure.final instanceof CollectError) throw failure.final;
      if (!failure.retryable || attempt >= attempts) {
        throw new SourceFetchFailed(source.url, failure.detail, attempt, failure.retryable, failure.status, {
          cause: err,
        });
      }
      const backoff = Math.min(source.retryBackoffMs * 2 ** (attempt - 1), MAX_BACKOFF_MS);
      await new Promise((resolve) => setTimeout(resolve, backoff));
    }
  }
}

class HttpStatus extends FlywheelError {
  constructor(readonly status: number) {
    super('HttpStatus', `HTTP ${status}`, { retryable: status >= 500 || status === 408 || status === 429 });
  }
}

class IdleTimeout extends FlywheelError {
  constructor(readonly ms: number) {
    super('IdleTimeout', `no data from the server for ${ms} ms`, { retryable: true });
  }
}

async function downloadOnce(source: UrlSource, ctx: CollectContext, file: string): Promise<Download> {
  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  let timedOut = false;
  // The timeout is an idle timeout: a large download is fine as long as bytes keep coming.
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, source.timeoutMs);
  };
  arm();
  try {
    const res = await fetchFollowingAllowed(source.url, ctx, controller.signal);
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new HttpStatus(res.status);
    }
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > source.maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw new SourceTooLarge(source.url, source.maxBytes, `the server announces ${declared} bytes`);
    }
    const out = createWriteStream(file);
    let bytes = 0;
    try {
      if (res.body) {
        for await (const chunk of Readable.fromWeb(res.body as import('node:stream/web').ReadableStream<Uint8Array>)) {
          arm();
          bytes += (chunk as Buffer).length;
          if (bytes > source.maxBytes) {
            controller.abort();
            throw new SourceTooLarge(source.url, source.maxBytes, `the body passed ${source.maxBytes} bytes`);
          }
          if (!out.write(chunk)) await once(out, 'drain');
        }
      }
      out.end();
      await once(out, 'finish');
    } finally {
      out.destroy();
    }
    const lastModified = res.headers.get('last-modified');
    const modified = lastModified ? new Date(lastModified) : undefined;
    return {
      bytes: (await stat(file)).size,
      contentType: res.headers.get('content-type') ?? undefined,
      lastModified: modified && !Number.isNaN(modified.getTime()) ? modified : undefined,
    };
  } catch (err) {
    if (timedOut && !(err instanceof CollectError)) throw new IdleTimeout(source.timeoutMs);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Fetches `url`, following redirects only to http(s) URLs on the allowed hosts. */
async function fetchFollowingAllowed(url: string, ctx: CollectContext, signal: AbortSignal): Promise<Response> {
  // The default fetch checks the addresses each host resolves to as it connects (see fetchWithinReach).
  const fetchFn = ctx.fetch ?? fetchWithinReach(ctx.allowedHosts, url);
  let target = new URL(url);
  for (let redirects = 0; ; redirects++) {
    const res = await fetchFn(target.href, { signal, redirect: 'manual' });
    const location = REDIRECT_STATUSES.has(res.status) ? res.headers.get('location') : null;
    if (location === null) return res;
    await res.body?.cancel().catch(() => undefined);
    let next: URL;
    try {
      next = new URL(location, target);
    } catch {
      throw new SourceFetchFailed(url, `a redirect to an invalid URL (${location.slice(0, 200)})`, 1, false);
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') {
      throw new SourceForbidden(url, `it redirects to ${next.protocol} URL ${next.href}; only http(s) is collected`);
    }
    checkHostAllowed(next, ctx.allowedHosts, url, true);
    if (redirects >= MAX_REDIRECTS) {
      throw new SourceFetchFailed(url, `more than ${MAX_REDIRECTS} redirects (last to ${next.href})`, 1, false);
    }
    target = next;
  }
}

interface Failure {
  retryable: boolean;
  detail: string;
  status?: number;
  /** A failure that already has its own type and is never retried. */
  final?: CollectError;
}

function classify(err: unknown, url: string): Failure {
  if (err instanceof CollectError) return { retryable: false, detail: err.message, final: err };
  if (err instanceof IdleTimeout) return { retryable: err.retryable, detail: `timed out: ${err.message}` };
  if (err instanceof HttpStatus) {
    const { status } = err;
    const detail = `the server answered HTTP ${status}`;
    if (status === 404 || status === 410) return { retryable: false, detail, final: new SourceNotFound(url, detail) };
    if (status === 401 || status === 403) return { retryable: false, detail, final: new SourceForbidden(url, detail) };
    return { retryable: err.retryable, detail, status };
  }
  const cause = (err as { cause?: { code?: unknown } }).cause;
  const code = typeof cause?.code === 'string' ? ` ${cause.code}` : '';
  const message = err instanceof Error ? err.message : String(err);
  return { retryable: true, detail: `network error${code}: ${message}` };
}

function nameFor(url: string, contentType: string | undefined): string {
  const pathname = new URL(url).pathname;
  const last = pathname.slice(pathname.lastIndexOf('/') + 1);
  let name: string;
  try {
    name = decodeURIComponent(last);
  } catch {
    name = last; // a stray `%` is part of the name, not an escape
  }
  name ||= 'index';
  const hasExtension = /\.[A-Za-z0-9]+$/.test(name);
  const mime = contentType?.split(';')[0].trim().toLowerCase();
  if (!hasExtension && mime && CONTENT_TYPE_EXTENSIONS[mime]) name += CONTENT_TYPE_EXTENSIONS[mime];
  return name;
}
