import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { QuarantineRecord } from '../lib/document';
import {
  SourceFetchFailed,
  SourceNotFound,
  SourceSpec,
  SourceTooLarge,
  planSource,
  readUnit,
  type CollectContext,
  type CollectEvent,
  type SourceSpecInput,
} from '../lib/collect';

// The test server listens on loopback, which url sources reach only when the host is listed by name.
const ctx: CollectContext = { now: () => new Date('2025-01-02T03:04:05.000Z'), allowedHosts: ['127.0.0.1'] };
const LINES = '{"id":"a","text":"first record"}\n{"id":"b","text":"second record"}\n';

/** Requests per path, to see retries happen (or not). */
const hits = new Map<string, number>();
let server: Server;
let base: string;

function route(req: IncomingMessage, res: ServerResponse): void {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  const count = (hits.get(url.pathname) ?? 0) + 1;
  hits.set(url.pathname, count);
  switch (url.pathname) {
    case '/records.jsonl':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(LINES);
      return;
    case '/story.txt':
      res.writeHead(200, { 'content-type': 'text/plain', 'last-modified': 'Wed, 21 Oct 2015 07:28:00 GMT' });
      res.end('Once upon a time.');
      return;
    case '/export': // no extension: the content type names the format
      res.writeHead(200, { 'content-type': 'application/x-ndjson; charset=utf-8' });
      res.end(LINES);
      return;
    case '/records.jsonl.gz':
      res.writeHead(200, { 'content-type': 'application/gzip' });
      res.end(gzipSync(LINES));
      return;
    case '/hang': // never answers
      return;
    case '/stall': // answers, sends a little, then goes silent
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('the beginning of a long ');
      return;
    case '/flaky': // fails twice, then works
      if (count <= 2) {
        res.writeHead(503);
        res.end('try later');
      } else {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('served on the third attempt.');
      }
      return;
    case '/broken':
      res.writeHead(500);
      res.end('always broken');
      return;
    case '/huge': // chunked, no length announced: the limit must cut the stream
      res.writeHead(200, { 'content-type': 'text/plain' });
      for (let i = 0; i < 64; i++) res.write('x'.repeat(1024));
      res.end();
      return;
    case '/announced-huge':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(10 * 1024 * 1024) });
      res.end();
      return;
    default:
      res.writeHead(404);
      res.end('no such thing');
  }
}

before(async () => {
  server = createServer(route);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
after(async () => {
  server.closeAllConnections(); // the hanging requests
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => hits.clear());

async function fetchUrl(path: string, options: Partial<SourceSpecInput> = {}): Promise<CollectEvent[]> {
  const source = SourceSpec.parse({ type: 'url', url: `${base}${path}`, retryBackoffMs: 10, ...options });
  const [unit] = await planSource(source, ctx);
  const events: CollectEvent[] = [];
  for await (const event of readUnit(unit, ctx)) events.push(event);
  return events;
}

const texts = (events: CollectEvent[]) => events.flatMap((e) => (e.kind === 'document' ? [e.doc.text] : []));
const quarantined = (events: CollectEvent[]): QuarantineRecord[] =>
  events.flatMap((e) => (e.kind === 'quarantine' ? [e.record] : []));

describe('url sources', () => {
  it('downloads and reads a JSON-lines URL', async () => {
    const events = await fetchUrl('/records.jsonl');
    assert.deepEqual(texts(events), ['first record', 'second record']);
    const first = events[0];
    assert.ok(first.kind === 'document');
    assert.equal(first.doc.id, 'a');
    assert.equal(first.doc.source, `${base}/records.jsonl#1`);
  });

  it('dates a downloaded text file by its Last-Modified header', async () => {
    const [event] = await fetchUrl('/story.txt');
    assert.ok(event.kind === 'document');
    assert.equal(event.doc.text, 'Once upon a time.');
    assert.equal(event.doc.created, '2015-10-21T07:28:00.000Z');
  });

  it('picks the format from the Content-Type when the URL has no extension', async () => {
    assert.deepEqual(texts(await fetchUrl('/export')), ['first record', 'second record']);
  });

  it('unwraps a gzipped download', async () => {
    assert.deepEqual(texts(await fetchUrl('/records.jsonl.gz')), ['first record', 'second record']);
  });

  it('retries 5xx answers with backoff and succeeds', async () => {
    assert.deepEqual(texts(await fetchUrl('/flaky', { retries: 3 })), ['served on the third attempt.']);
    assert.equal(hits.get('/flaky'), 3);
  });

  it('times out a silent server, retries, then fails with SourceFetchFailed', async () => {
    await assert.rejects(fetchUrl('/hang', { timeoutMs: 150, retries: 2 }), (err: unknown) => {
      assert.ok(err instanceof SourceFetchFailed);
      assert.equal(err.attempts, 3);
      assert.equal(err.retryable, true);
      assert.match(err.message, /timed out: no data from the server for 150 ms; 3 attempts/);
      return true;
    });
    assert.equal(hits.get('/hang'), 3);
  });

  it('times out a server that stops sending mid-body', async () => {
    await assert.rejects(fetchUrl('/stall', { timeoutMs: 150, retries: 0 }), /timed out/);
  });

  it('quarantines the URL after the retries when onSourceError is skip', async () => {
    const events = await fetchUrl('/hang', { timeoutMs: 100, retries: 1, onSourceError: 'skip' });
    assert.equal(events.length, 1);
    const [record] = quarantined(events);
    assert.equal(record.reason, 'fetch_failed');
    assert.equal(record.source, `${base}/hang`);
    assert.equal(hits.get('/hang'), 2);
  });

  it('gives up on a server that keeps failing, saying the status', async () => {
    await assert.rejects(
      fetchUrl('/broken', { retries: 1 }),
      (err: unknown) => err instanceof SourceFetchFailed && err.status === 500 && err.attempts === 2,
    );
  });

  it('does not retry a 404: SourceNotFound at once', async () => {
    await assert.rejects(fetchUrl('/nothing-here', { retries: 3 }), SourceNotFound);
    assert.equal(hits.get('/nothing-here'), 1);
  });

  it('aborts a download that passes maxBytes, announced or not', async () => {
    await assert.rejects(
      fetchUrl('/huge', { maxBytes: 10_000 }),
      (err: unknown) => err instanceof SourceTooLarge && /passed 10000 bytes/.test(err.message),
    );
    await assert.rejects(
      fetchUrl('/announced-huge', { maxBytes: 10_000 }),
      (err: unknown) => err instanceof SourceTooLarge && /announces 10485760 bytes/.test(err.message),
    );
    const skipped = await fetchUrl('/huge', { maxBytes: 10_000, onSourceError: 'skip' });
    assert.equal(quarantined(skipped)[0].reason, 'too_large');
    assert.equal(hits.get('/huge'), 2, 'never retried');
  });
});
