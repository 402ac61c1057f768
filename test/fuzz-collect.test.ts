import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import {
  CollectError,
  QUARANTINE_REASONS,
  SOURCE_FORMATS,
  SourceSpec,
  planSource,
  readUnit,
  type CollectEvent,
  type SourceFormat,
} from '../lib/collect';
import { decodeUtf8 } from '../lib/collect/bytes';
import type { ByteInput, ParseOptions } from '../lib/collect/formats/input';
import { parseInput } from '../lib/collect/formats/parse-input';
import type { RawRecord } from '../lib/collect/records';

const MiB = 1024 * 1024;
/** An input that takes longer than this to read counts as a hang. */
const CASE_TIMEOUT_MS = 10_000;
const DEFAULTS: ParseOptions = {
  format: 'auto',
  fields: { id: 'id', text: 'text', created: 'created' },
  maxDocumentBytes: 10 * MiB,
  oversize: 'skip',
  maxExpansionRatio: 100,
};

let scratch: string;
before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'flywheel-fuzz-collect-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

async function withTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([work, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** `bytes` cut at `cuts` (positions modulo its length): the same input as a reader may receive it from a stream. */
function split(bytes: Buffer, cuts: number[]): Buffer[] {
  if (bytes.length === 0) return [];
  const at = [...new Set(cuts.map((c) => c % bytes.length))].filter((c) => c > 0).sort((a, b) => a - b);
  const pieces: Buffer[] = [];
  let start = 0;
  for (const cut of [...at, bytes.length]) {
    pieces.push(bytes.subarray(start, cut));
    start = cut;
  }
  return pieces;
}

async function* stream(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const chunk of chunks) yield chunk;
}

/** Reads `chunks` as the file `name` through the format dispatcher; any exception fails the caller. */
async function parse(name: string, chunks: Buffer[], opts: Partial<ParseOptions> = {}): Promise<RawRecord[]> {
  const input: ByteInput = { name, path: `fuzz/${name}`, chunks: stream(chunks) };
  const records: RawRecord[] = [];
  await withTimeout(
    (async () => {
      for await (const record of parseInput(input, { ...DEFAULTS, ...opts })) records.push(record);
    })(),
    `reading ${name}`,
  );
  return records;
}

/** Each record is a document with text or a quarantine record with a known reason and a detail; both serialize. */
function assertTyped(records: RawRecord[]): void {
  for (const record of records) {
    if (record.kind === 'document') {
      assert.equal(typeof record.text, 'string');
    } else if (record.kind === 'skipped') {
      assert.match(record.what, /^warc\.\w+$/, 'only WARC readers pass records over');
    } else {
      assert.ok((QUARANTINE_REASONS as readonly string[]).includes(record.reason), `unknown reason ${record.reason}`);
      assert.ok(record.detail.length > 0, 'a quarantine record says why');
    }
    assert.doesNotThrow(() => JSON.stringify(record), 'records are written as JSON lines');
  }
}

const FORMATS = SOURCE_FORMATS as readonly SourceFormat[];
const NAMES = ['a.txt', 'a.md', 'a.jsonl', 'a.json', 'a.eml', 'a.mbox', 'a.tar', 'noext', 'a.gz', 'a.jsonl.zst'];

/** Byte sequences UTF-8 decoders trip on: stray continuation bytes, cut sequences, overlongs, surrogates, BOMs. */
const INVALID_UTF8 = [
  [0xff],
  [0x80],
  [0xc3],
  [0xe2, 0x82],
  [0xf0, 0x9f, 0x98],
  [0xc0, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xef, 0xbb, 0xbf],
].map((b) => Buffer.from(b));

const deepJson = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

/** One line of a JSON-lines file, from well-formed records to garbage. */
const jsonLine: fc.Arbitrary<Buffer> = fc.oneof(
  fc
    .record({ id: fc.oneof(fc.string(), fc.integer()), text: fc.string({ unit: 'binary' }), metadata: fc.jsonValue() })
    .map((r) => Buffer.from(JSON.stringify(r))),
  fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
  fc
    .string({ unit: 'binary', maxLength: 60 })
    .map((s) => Buffer.from([...s].filter((c) => c === '\t' || c.charCodeAt(0) >= 0x20).join(''))),
  fc
    .tuple(fc.string({ maxLength: 20 }), fc.constantFrom(...INVALID_UTF8), fc.string({ maxLength: 20 }))
    .map(([a, bad, b]) => Buffer.concat([Buffer.from(`{"text":"${a}`), bad, Buffer.from(`${b}"}`)])),
  fc.integer({ min: 1, max: 200_000 }).map((depth) => Buffer.from(deepJson(depth))),
  fc
    .integer({ min: 1, max: 200_000 })
    .map((depth) => Buffer.from(`{"text":"deep metadata","metadata":{"a":${deepJson(depth)}}}`)),
  fc
    .constantFrom('{"text":', '{"text": null}', '{"text": 5}', '"just a string"', '{"__proto__":{"text":"x"}}', '')
    .map((s) => Buffer.from(s)),
);

const lineEnd = fc.constantFrom('\n', '\r\n');
const jsonLines = fc
  .array(fc.tuple(jsonLine, lineEnd), { maxLength: 12 })
  .map((lines) => lines.map(([line, end]) => ({ line, end })));

/** Random bytes, and bytes that look like text with invalid UTF-8 mixed in. */
const anyBytes: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 4096 }).map((b) => Buffer.from(b)),
  fc
    .array(
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 80 }).map((s) => Buffer.from(s)),
        fc.constantFrom(...INVALID_UTF8),
      ),
      {
        maxLength: 30,
      },
    )
    .map((parts) => Buffer.concat(parts)),
  jsonLines.map((lines) => Buffer.concat(lines.flatMap(({ line, end }) => [line, Buffer.from(end)]))),
);

const cuts = fc.array(fc.nat(), { maxLength: 8 });

// ---- email ------------------------------------------------------------------------------------------------------

interface MimeLeaf {
  kind: 'leaf';
  type: string;
  charset?: string;
  encoding?: string;
  body: string;
}
interface MimeMultipart {
  kind: 'multipart';
  subtype: string;
  boundary: string;
  parts: MimeNode[];
  closed: boolean;
}
type MimeNode = MimeLeaf | MimeMultipart;

const mimeBody = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.constantFrom(
    '=ZZ=\n=\n=3',
    'not base64 at all!!!',
    Buffer.from('<p>hello <b>world</b></p>').toString('base64'),
    'SGVsbG8=\n====\nV29y',
    '<html><body><div><p>Nested <i>html</i><table><tr><td>cell',
    `${'<div>'.repeat(100_000)}deep${'</div>'.repeat(100_000)}`,
    `${' '.repeat(200_000)}x`,
    '<a'.repeat(200_000),
    '=?utf-8?B?////?= =?bogus?Q?=ZZ?=',
    '\u0000\u0001\u0002 control bytes',
  ),
);

const mimeTree = fc.letrec<{ node: MimeNode }>((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({
      kind: fc.constant('leaf' as const),
      type: fc.constantFrom('text/plain', 'text/html', 'application/octet-stream', 'message/rfc822', 'text/x-odd', ''),
      charset: fc.option(
        fc.constantFrom('utf-8', 'iso-8859-1', 'windows-1252', 'utf-16', 'x-bogus', 'iso-2022-jp', ''),
        {
          nil: undefined,
        },
      ),
      encoding: fc.option(fc.constantFrom('7bit', '8bit', 'base64', 'quoted-printable', 'x-uuencode', 'bogus'), {
        nil: undefined,
      }),
      body: mimeBody,
    }),
    fc.record({
      kind: fc.constant('multipart' as const),
      subtype: fc.constantFrom('mixed', 'alternative', 'related', 'digest', 'x-unknown'),
      boundary: fc.oneof(fc.constantFrom('b1', 'b1', '', '"quoted"', 'a b', '--'), fc.string({ maxLength: 70 })),
      parts: fc.array(tie('node'), { maxLength: 4 }),
      closed: fc.boolean(),
    }),
  ),
})).node;

function renderMime(node: MimeNode): string {
  if (node.kind === 'leaf') {
    const headers = [
      node.type === ''
        ? 'Content-Type:'
        : `Content-Type: ${node.type}${node.charset === undefined ? '' : `; charset=${node.charset}`}`,
      ...(node.encoding === undefined ? [] : [`Content-Transfer-Encoding: ${node.encoding}`]),
    ];
    return `${headers.join('\r\n')}\r\n\r\n${node.body}`;
  }
  const parts = node.parts.map((part) => `--${node.boundary}\r\n${renderMime(part)}\r\n`).join('');
  return (
    `Content-Type: multipart/${node.subtype}; boundary=${node.boundary}\r\n\r\n` +
    `preamble\r\n${parts}${node.closed ? `--${node.boundary}--\r\n` : ''}`
  );
}

const headerLines = fc.array(
  fc.oneof(
    fc.constantFrom(
      'From: Ann <ann@example.com>',
      'From: <<<>>>',
      'To: a@b, "Broken <x@y',
      'Subject: =?utf-8?B?w6k=?= report',
      'Subject: =?x-bogus?Q?=ZZ?=',
      'Date: not a date',
      'Date: Tue, 1 Jul 2003 10:52:37 +0200',
      'Message-ID: <id@example.com>',
      'X-Folded: first\r\n second\r\n\tthird',
      'MIME-Version: 1.0',
    ),
    fc.string({ maxLength: 60 }).map((s) => `X-Random: ${s.replace(/[\r\n]/g, ' ')}`),
  ),
  { maxLength: 6 },
);

const email = fc
  .tuple(headerLines, mimeTree)
  .map(([headers, tree]) => `${headers.join('\r\n')}\r\n${renderMime(tree)}`);

/** mboxrd escaping, as a writer applies it: a body line that could read as a separator gets one more '>'. */
const mboxEscape = (message: string) => message.replace(/^(>*From )/gm, '>$1');

/** A control byte other than tab, newlines, form feed, backspace or escape makes text look binary. */
const TEXT_CONTROLS = new Set([0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1b]);
const hasBinaryLook = (text: string) =>
  [...text].some((c) => {
    const code = c.charCodeAt(0);
    return (code < 0x20 && !TEXT_CONTROLS.has(code)) || code === 0x7f;
  });

// ---- tests -------------------------------------------------------------------------------------------------------

describe('every reader under hostile bytes', () => {
  it('any bytes, any name and format, any chunking: typed records only, never an exception or a hang', async () => {
    await fc.assert(
      fc.asyncProperty(
        anyBytes,
        fc.constantFrom(...NAMES),
        fc.constantFrom(...FORMATS),
        cuts,
        async (bytes, name, format, at) => {
          assertTyped(await parse(name, split(bytes, at), { format }));
        },
      ),
      { numRuns: 400, includeErrorInReport: true },
    );
  });

  it('reads the same records however the bytes are cut into chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        anyBytes,
        fc.constantFrom('a.txt', 'a.jsonl', 'a.json', 'a.mbox', 'a.eml', 'noext'),
        cuts,
        async (bytes, name, at) => {
          const whole = await parse(name, [bytes]);
          assert.deepEqual(await parse(name, split(bytes, at)), whole);
        },
      ),
      { numRuns: 200, includeErrorInReport: true },
    );
  });
});

describe('JSON lines', () => {
  it('gives every non-blank line exactly one record, whatever it holds: nothing is dropped silently', async () => {
    await fc.assert(
      fc.asyncProperty(jsonLines, cuts, fc.constantFrom(64, 1024, 10 * MiB), async (lines, at, maxDocumentBytes) => {
        const bytes = Buffer.concat(lines.flatMap(({ line, end }) => [line, Buffer.from(end)]));
        const records = await parse('a.jsonl', split(bytes, at), { maxDocumentBytes });
        assertTyped(records);
        const lineLimit = Math.max(4 * maxDocumentBytes, MiB);
        const expected = lines.filter(
          ({ line }) => line.length > lineLimit || decodeUtf8(line).text.trim() !== '',
        ).length;
        assert.equal(records.length, expected);
      }),
      { numRuns: 200, includeErrorInReport: true },
    );
  });

  it('quarantines arrays and metadata nested past what JSON.stringify can write, instead of crashing later', async () => {
    const deep = deepJson(300_000);
    const records = await parse('a.jsonl', [
      Buffer.from(`${deep}\n{"text":"kept","metadata":{"a":${deep}}}\n{"text":"fine","metadata":{"a":[[1]]}}\n`),
    ]);
    assert.deepEqual(
      records.map((r) => (r.kind === 'document' ? r.text : r.kind === 'quarantine' ? r.reason : r.what)),
      ['not_an_object', 'nested_too_deep', 'fine'],
    );
    assertTyped(records);
  });
});

describe('email', () => {
  it('an .eml of any MIME structure and encoding is one document or one quarantine record', async () => {
    await fc.assert(
      fc.asyncProperty(email, cuts, async (message, at) => {
        const records = await parse('a.eml', split(Buffer.from(message, 'utf8'), at));
        assertTyped(records);
        assert.equal(records.length, 1);
      }),
      { numRuns: 150, includeErrorInReport: true },
    );
  });

  it('an .mbox of n messages gives n records, each a document or a quarantine record', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(email, { minLength: 1, maxLength: 4 }), cuts, async (messages, at) => {
        fc.pre(!messages.some(hasBinaryLook));
        const mbox = messages.map(
          (m, i) => `From sender${i}@example.com Mon Jan  1 00:00:00 2024\n${mboxEscape(m)}\n\n`,
        );
        const records = await parse('a.mbox', split(Buffer.from(mbox.join(''), 'utf8'), at));
        assertTyped(records);
        assert.equal(records.length, messages.length);
      }),
      { numRuns: 100, includeErrorInReport: true },
    );
  });

  it('quarantines HTML nested too deeply to parse in time; a body ending in a long run of spaces is quick', async () => {
    const deepHtml = [
      'From: a@example.com',
      'Content-Type: text/html',
      '',
      `${'<div>'.repeat(200_000)}deep${'</div>'.repeat(200_000)}`,
    ].join('\r\n');
    let started = Date.now();
    const [record] = await parse('a.eml', [Buffer.from(deepHtml)]);
    assert.equal(record.kind === 'quarantine' && record.reason, 'nested_too_deep');
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);

    const spaces = ['From: a@example.com', '', `start${' '.repeat(2_000_000)}end`].join('\r\n');
    started = Date.now();
    const [doc] = await parse('a.eml', [Buffer.from(spaces)]);
    assert.equal(doc.kind, 'document');
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
  });
});

// Exact external-memory readings need a collection before each sample.
setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

describe('lines and files of hundreds of MB', () => {
  const TOTAL = 256 * MiB;

  /** `head`, 256 MiB in fresh 1 MiB chunks with no newline, then `tail`; tracks the most memory held meanwhile. */
  function hugeLine(head: string, tail: string): { chunks: AsyncGenerator<Buffer>; peak: () => number } {
    let peak = 0;
    const base = (collectGarbage(), process.memoryUsage().arrayBuffers);
    async function* chunks(): AsyncGenerator<Buffer> {
      yield Buffer.from(head);
      for (let sent = 0; sent < TOTAL; sent += MiB) {
        if (sent % (16 * MiB) === 0) {
          collectGarbage();
          peak = Math.max(peak, process.memoryUsage().arrayBuffers - base);
        }
        yield Buffer.alloc(MiB, 0x61);
      }
      yield Buffer.from(tail);
    }
    return { chunks: chunks(), peak: () => peak };
  }

  const mboxHead = 'From a@example.com Mon Jan  1 00:00:00 2024\nSubject: big\n\n';
  const next = '\n\nFrom b@example.com Mon Jan  1 00:00:00 2024\nSubject: small\n\nThe message after.\n';
  const cases: { name: string; head?: string; tail?: string; bound: number; expect: string[] }[] = [
    { name: 'a.jsonl', tail: '\n{"text":"the line after"}\n', bound: 64 * MiB, expect: ['oversize', 'the line after'] },
    { name: 'a.txt', bound: 40 * MiB, expect: ['oversize'] },
    { name: 'a.mbox', head: mboxHead, tail: next, bound: 40 * MiB, expect: ['oversize', 'The message after.'] },
    { name: 'a.eml', bound: 96 * MiB, expect: ['oversize'] },
  ];
  for (const { name, head = '', tail = '', bound, expect } of cases) {
    it(`${name}: a 256 MiB line is quarantined while holding at most ${bound / MiB} MiB`, async () => {
      const { chunks, peak } = hugeLine(head, tail);
      const records: RawRecord[] = [];
      for await (const record of parseInput({ name, path: name, chunks }, DEFAULTS)) records.push(record);
      assert.deepEqual(
        records.map((r) => (r.kind === 'document' ? r.text : r.kind === 'quarantine' ? r.reason : r.what)),
        expect,
      );
      assert.ok(peak() < bound, `held ${Math.round(peak() / MiB)} MiB`);
    });
  }
});

describe('collecting files end to end', () => {
  let files = 0;

  it(
    'refuses a file swapped for a named pipe after planning, instead of hanging on it',
    { skip: process.platform === 'win32' },
    async () => {
      const file = path.join(scratch, 'swapped.txt');
      await writeFile(file, 'planned as a file');
      const ctx = { now: () => new Date('2025-01-01T00:00:00Z') };
      const [unit] = await planSource(SourceSpec.parse({ type: 'path', path: file, onSourceError: 'skip' }), ctx);
      await rm(file);
      execFileSync('mkfifo', [file]);
      const events: CollectEvent[] = [];
      await withTimeout(
        (async () => {
          for await (const event of readUnit(unit, ctx)) events.push(event);
        })(),
        'reading a named pipe',
      );
      assert.deepEqual(
        events.map((e) => (e.kind === 'quarantine' ? e.record.reason : 'document')),
        ['unreadable'],
      );
    },
  );

  it('documents stay within maxDocumentBytes and serialize; ordinals count every record; errors are typed', async () => {
    await fc.assert(
      fc.asyncProperty(
        anyBytes,
        fc.constantFrom(...NAMES),
        fc.integer({ min: 1, max: 256 }),
        fc.constantFrom('skip' as const, 'truncate' as const),
        async (bytes, name, maxDocumentBytes, oversize) => {
          const file = path.join(scratch, `case-${++files}.${name}`);
          await writeFile(file, bytes);
          const source = SourceSpec.parse({
            type: 'path',
            path: file,
            maxDocumentBytes,
            oversize,
          });
          const ctx = { now: () => new Date('2025-01-01T00:00:00Z'), allowedRoots: [scratch] };
          const events: CollectEvent[] = [];
          try {
            await withTimeout(
              (async () => {
                for (const unit of await planSource(source, ctx)) {
                  for await (const event of readUnit(unit, ctx)) events.push(event);
                }
              })(),
              `collecting ${name}`,
            );
          } catch (err) {
            assert.ok(err instanceof CollectError, `untyped ${(err as Error)?.name}: ${(err as Error)?.message}`);
            return;
          }
          events.forEach((event, i) => {
            assert.equal(event.ordinal, i);
            assert.doesNotThrow(() => JSON.stringify(event));
            if (event.kind === 'document') {
              assert.ok(Buffer.byteLength(event.doc.text) <= maxDocumentBytes, 'a document fits maxDocumentBytes');
            } else {
              assert.ok((QUARANTINE_REASONS as readonly string[]).includes(event.record.reason));
              assert.ok(event.record.detail && event.record.source);
            }
          });
        },
      ),
      { numRuns: 150, includeErrorInReport: true },
    );
  });
});
