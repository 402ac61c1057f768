import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { pack as tarPack, type Header } from 'tar-stream';
import type { Document, QuarantineRecord } from '../lib/document';
import {
  CollectStats,
  SAMPLE_DOCUMENTS_PER_UNIT,
  SourceForbidden,
  SourceNotFound,
  SourceSpec,
  SourceUnreadable,
  planSource,
  readUnit,
  sampleCorpus,
  type CollectContext,
  type CollectEvent,
  type SourceSpecInput,
  type SourceUnit,
} from '../lib/collect';
import { InvalidSpec, parseSpec } from '../lib/contracts/invalid-spec';

const NOW = new Date('2025-01-02T03:04:05.000Z');
const ctx: CollectContext = { now: () => NOW };
const MiB = 1024 * 1024;
const FIXTURES = path.join(__dirname, 'fixtures', 'collect');

let root: string;
before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'flywheel-collect-'));
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

let folders = 0;
/** A fresh folder holding `files` (paths may have subfolders). */
async function folder(files: Record<string, string | Buffer>): Promise<string> {
  const dir = path.join(root, `case-${++folders}`);
  await mkdir(dir, { recursive: true });
  for (const [name, body] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), body);
  }
  return dir;
}

interface Collected {
  units: SourceUnit[];
  events: CollectEvent[];
  docs: Document[];
  quarantined: QuarantineRecord[];
}

async function collect(input: SourceSpecInput, context: CollectContext = ctx): Promise<Collected> {
  const units = await planSource(SourceSpec.parse(input), context);
  const events: CollectEvent[] = [];
  for (const unit of units) for await (const event of readUnit(unit, context)) events.push(event);
  return {
    units,
    events,
    docs: events.flatMap((e) => (e.kind === 'document' ? [e.doc] : [])),
    quarantined: events.flatMap((e) => (e.kind === 'quarantine' ? [e.record] : [])),
  };
}

async function collectFile(name: string, body: string | Buffer, options: Partial<SourceSpecInput> = {}) {
  const dir = await folder({ [name]: body });
  return collect({ type: 'path', path: path.join(dir, name), ...options } as SourceSpecInput);
}

interface TarEntry {
  header: Partial<Header> & Pick<Header, 'name'>;
  body?: string | Buffer;
}

function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const archive = tarPack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk) => {
    chunks.push(chunk as Buffer);
  });
  const done = new Promise<Buffer>((resolve) => archive.on('end', () => resolve(Buffer.concat(chunks))));
  for (const { header, body } of entries) archive.entry({ mtime: NOW, ...header }, body ?? '');
  archive.finalize();
  return done;
}

/** A zstd frame of raw and RLE blocks (RFC 8878 §3.1.1), so tests need no compressor. */
function zstdFrame(blocks: Array<{ raw: Buffer } | { rle: number; size: number }>): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x38])]; // magic, no size/checksum, 128 KiB window
  blocks.forEach((block, i) => {
    const last = i === blocks.length - 1 ? 1 : 0;
    const [type, size, body]: [number, number, Buffer] =
      'raw' in block ? [0, block.raw.length, block.raw] : [1, block.size, Buffer.from([block.rle])];
    const header = last | (type << 1) | (size << 3);
    parts.push(Buffer.from([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff]), body);
  });
  return Buffer.concat(parts);
}

const PROSE =
  'It is a way I have of driving off the spleen and regulating the circulation. Whenever I find myself ' +
  'growing grim about the mouth, I account it high time to get to sea as soon as I can.';

describe('SourceSpec', () => {
  it('fills every default for a bare path source', () => {
    assert.deepEqual(SourceSpec.parse({ type: 'path', path: 'data' }), {
      type: 'path',
      path: 'data',
      format: 'auto',
      fields: { id: 'id', text: 'text', created: 'created' },
      maxDocumentBytes: 10 * MiB,
      oversize: 'skip',
      maxExpansionRatio: 100,
      onSourceError: 'fail',
    });
  });

  it('gives url sources their timeout, size and retry defaults', () => {
    const url = SourceSpec.parse({ type: 'url', url: 'https://example.org/a.jsonl' });
    assert.ok(url.type === 'url');
    assert.equal(url.timeoutMs, 30_000);
    assert.equal(url.maxBytes, 256 * MiB);
    assert.equal(url.retries, 3);
  });

  it('names every bad field: non-http URLs, bad s3 URIs, unknown fields', () => {
    const bad = [
      { type: 'url', url: 'ftp://example.org/x' },
      { type: 's3', uri: 'https://bucket/x' },
      { type: 'path', path: 'x', colour: 'red' },
    ];
    for (const input of bad) assert.throws(() => parseSpec('source', SourceSpec, input), InvalidSpec);
  });
});

describe('planning', () => {
  it('lists a folder in sorted order with stable ids and sizes, skipping hidden files', async () => {
    const dir = await folder({ 'b.txt': 'bb', 'a/z.md': 'zzz', 'a/y.txt': 'y', '.hidden.txt': 'h' });
    const source = SourceSpec.parse({ type: 'path', path: dir });
    const first = await planSource(source, ctx);
    const second = await planSource(source, ctx);
    assert.deepEqual(
      first.map((u) => [u.ref, u.bytes]),
      [
        ['a/y.txt', 1],
        ['a/z.md', 3],
        ['b.txt', 2],
      ],
    );
    assert.deepEqual(
      first.map((u) => u.id),
      second.map((u) => u.id),
    );
    assert.equal(new Set(first.map((u) => u.id)).size, 3);
  });

  it('filters a folder with a glob', async () => {
    const dir = await folder({ 'a.txt': 'a', 'b.md': 'b', 'c.json': '{}', 'sub/d.txt': 'd' });
    const units = await planSource(SourceSpec.parse({ type: 'path', path: dir, glob: '**/*.{txt,md}' }), ctx);
    assert.deepEqual(
      units.map((u) => u.ref),
      ['a.txt', 'b.md', 'sub/d.txt'],
    );
  });

  it('refuses a path outside the allowed roots before looking at it', async () => {
    const allowed = await folder({ 'ok.txt': 'ok' });
    const outside = await folder({ 'secret.txt': 'secret' });
    await assert.rejects(
      planSource(SourceSpec.parse({ type: 'path', path: outside }), { ...ctx, allowedRoots: [allowed] }),
      (err: unknown) => err instanceof SourceForbidden && /outside the allowed roots/.test(err.message),
    );
  });

  it('says SourceNotFound for a missing path inside the allowed roots', async () => {
    const allowed = await folder({});
    await assert.rejects(
      planSource(SourceSpec.parse({ type: 'path', path: path.join(allowed, 'nope') }), {
        ...ctx,
        allowedRoots: [allowed],
      }),
      SourceNotFound,
    );
  });

  it('does not follow symbolic links inside a folder', async () => {
    const outside = await folder({ 'secret.txt': 'the secret' });
    const dir = await folder({ 'ok.txt': PROSE });
    await symlink(path.join(outside, 'secret.txt'), path.join(dir, 'link.txt'));
    await symlink(outside, path.join(dir, 'linked-folder'));
    const units = await planSource(SourceSpec.parse({ type: 'path', path: dir }), ctx);
    assert.deepEqual(
      units.map((u) => u.ref),
      ['ok.txt'],
    );
  });

  it('refuses, when read, a file swapped for a link outside the allowed roots after planning', async () => {
    const outside = await folder({ 'secret.txt': 'the secret' });
    const allowed = await folder({ 'a.txt': PROSE });
    const guarded = { ...ctx, allowedRoots: [allowed] };
    const [skip] = await planSource(SourceSpec.parse({ type: 'path', path: allowed, onSourceError: 'skip' }), guarded);
    const [fail] = await planSource(SourceSpec.parse({ type: 'path', path: allowed }), guarded);
    await rm(path.join(allowed, 'a.txt'));
    await symlink(path.join(outside, 'secret.txt'), path.join(allowed, 'a.txt'));
    const events: CollectEvent[] = [];
    for await (const e of readUnit(skip, guarded)) events.push(e);
    assert.equal(events.length, 1);
    assert.ok(events[0].kind === 'quarantine');
    assert.equal(events[0].record.reason, 'forbidden');
    assert.match(events[0].record.detail ?? '', /symbolic link\), outside the allowed roots/);
    await assert.rejects(async () => {
      for await (const e of readUnit(fail, guarded)) void e;
    }, SourceForbidden);
  });

  it('slices the sample corpus into units of 16 documents up to the limit', async () => {
    const units = await planSource(SourceSpec.parse({ type: 'sample', limit: 40 }), ctx);
    assert.deepEqual(
      units.map((u) => u.ref),
      ['0-16', '16-32', '32-40'],
    );
    assert.equal(SAMPLE_DOCUMENTS_PER_UNIT, 16);
    assert.ok(units.every((u) => u.bytes > 0 && u.uri === 'sample:moby-dick'));
  });
});

describe('text files', () => {
  it('reads a .txt file as one document with path, bytes, mtime and a derived id', async () => {
    const dir = await folder({ 'note.txt': PROSE });
    const mtime = new Date('2020-05-06T07:08:09.000Z');
    await utimes(path.join(dir, 'note.txt'), mtime, mtime);
    const { docs } = await collect({ type: 'path', path: dir });
    assert.equal(docs.length, 1);
    const [doc] = docs;
    assert.equal(doc.text, PROSE);
    assert.equal(doc.source, path.join(dir, 'note.txt'));
    assert.equal(doc.added, NOW.toISOString());
    assert.equal(doc.created, mtime.toISOString());
    assert.deepEqual(doc.metadata, {
      path: path.join(dir, 'note.txt'),
      bytes: Buffer.byteLength(PROSE),
      format: 'txt',
    });
    assert.match(doc.id, /^[0-9a-f]{32}$/);
    assert.equal((await collect({ type: 'path', path: dir })).docs[0].id, doc.id, 'ids are deterministic');
  });

  it('reads a .md file the same way, marked as markdown', async () => {
    const { docs } = await collectFile('README.md', '# Title\n\nSome *markdown* text.\n');
    assert.equal(docs[0].text, '# Title\n\nSome *markdown* text.\n');
    assert.equal(docs[0].metadata.format, 'md');
  });

  it('repairs invalid UTF-8 with U+FFFD, flags the document and counts it', async () => {
    const body = Buffer.concat([Buffer.from('caf'), Buffer.from([0xe9]), Buffer.from(' au lait, ok.')]);
    const { docs, events } = await collectFile('latin1.txt', body);
    assert.equal(docs[0].text, 'caf\uFFFD au lait, ok.');
    assert.equal(docs[0].metadata.utf8Repaired, true);
    const stats = new CollectStats();
    for (const e of events) stats.add(e);
    assert.equal(stats.utf8Repaired, 1);
  });

  it('quarantines a binary file as binary', async () => {
    const body = Buffer.alloc(4096, 7);
    body[100] = 0;
    const { docs, quarantined } = await collectFile('image.txt', body);
    assert.equal(docs.length, 0);
    assert.equal(quarantined[0].reason, 'binary');
    assert.match(quarantined[0].detail ?? '', /NUL bytes/);
  });

  it('quarantines a file of control characters without NULs as binary', async () => {
    const { quarantined } = await collectFile('noise.txt', Buffer.alloc(2000, 0x01));
    assert.equal(quarantined[0].reason, 'binary');
    assert.match(quarantined[0].detail ?? '', /control bytes/);
  });

  it('rejects empty documents at collection, with the reason and the line, and keeps the rest', async () => {
    const body = [
      '{"id":"a","text":"one"}',
      '{"id":"b","text":""}',
      '{"id":"c","text":"  \\n\\t "}',
      '{"id":"d","text":"two"}',
    ];
    const { docs, quarantined } = await collectFile('some-empty.jsonl', body.join('\n') + '\n');
    assert.deepEqual(
      docs.map((d) => d.id),
      ['a', 'd'],
    );
    assert.deepEqual(
      quarantined.map((q) => [q.reason, q.location]),
      [
        ['empty', 'line 2'],
        ['empty', 'line 3'],
      ],
    );
    assert.match(quarantined[0].detail ?? '', /no text/);
  });

  it('skips a document over maxDocumentBytes to quarantine by default', async () => {
    const { docs, quarantined } = await collectFile('big.txt', 'x'.repeat(1000), { maxDocumentBytes: 100 });
    assert.equal(docs.length, 0);
    assert.equal(quarantined[0].reason, 'oversize');
    assert.match(quarantined[0].detail ?? '', /1000 bytes, over maxDocumentBytes \(100\)/);
  });

  it('truncates an oversize document on a character boundary when asked', async () => {
    // 'é' is two bytes: a 101-byte cut would split the 51st.
    const { docs } = await collectFile('big.txt', 'é'.repeat(100), { maxDocumentBytes: 101, oversize: 'truncate' });
    assert.equal(docs[0].text, 'é'.repeat(50));
    assert.equal(docs[0].metadata.truncated, true);
    assert.equal(docs[0].metadata.originalBytes, 200);
    assert.equal(docs[0].metadata.utf8Repaired, undefined, 'a cut character is not an encoding error');
  });

  it('quarantines an unreadable file, or throws SourceUnreadable when onSourceError is fail', async () => {
    const dir = await folder({ 'a.txt': PROSE });
    const skip = await planSource(SourceSpec.parse({ type: 'path', path: dir, onSourceError: 'skip' }), ctx);
    const fail = await planSource(SourceSpec.parse({ type: 'path', path: dir }), ctx);
    // Replaced by a folder after planning: open() succeeds, reading fails (root reads any mode, so no chmod).
    await rm(path.join(dir, 'a.txt'));
    await mkdir(path.join(dir, 'a.txt'));
    const events: CollectEvent[] = [];
    for await (const e of readUnit(skip[0], ctx)) events.push(e);
    assert.equal(events.length, 1);
    assert.ok(events[0].kind === 'quarantine');
    assert.equal(events[0].record.reason, 'unreadable');
    assert.match(events[0].record.detail ?? '', /not a regular file/);
    await assert.rejects(async () => {
      for await (const e of readUnit(fail[0], ctx)) void e;
    }, SourceUnreadable);
  });

  it('throws SourceNotFound for a file deleted after planning', async () => {
    const dir = await folder({ 'gone.txt': PROSE });
    const [unit] = await planSource(SourceSpec.parse({ type: 'path', path: dir }), ctx);
    await rm(path.join(dir, 'gone.txt'));
    await assert.rejects(async () => {
      for await (const e of readUnit(unit, ctx)) void e;
    }, SourceNotFound);
  });
});

describe('JSON records', () => {
  it('maps fields of JSON lines, dotted paths included', async () => {
    const lines = [
      { doc: { key: 'k1', body: 'first text' }, when: '2021-02-03T04:05:06Z', lang: 'en', extra: 1 },
      { doc: { key: 7, body: 'second text' }, when: 1_600_000_000, lang: 'fr' },
    ];
    const { docs } = await collectFile('data.jsonl', lines.map((l) => JSON.stringify(l)).join('\n') + '\n', {
      fields: { id: 'doc.key', text: 'doc.body', created: 'when', metadata: ['lang'] },
    });
    assert.deepEqual(
      docs.map((d) => [d.id, d.text, d.created, d.metadata.lang, d.metadata.line]),
      [
        ['k1', 'first text', '2021-02-03T04:05:06.000Z', 'en', 1],
        ['7', 'second text', '2020-09-13T12:26:40.000Z', 'fr', 2],
      ],
    );
    assert.match(docs[0].source, /data\.jsonl#1$/);
    assert.equal(docs[0].metadata.extra, undefined, 'only the listed metadata fields are copied');
  });

  it("keeps a dolma-style record's own metadata object by default", async () => {
    const { docs } = await collectFile('d.jsonl', JSON.stringify({ id: 'a', text: 't', metadata: { url: 'u' } }));
    assert.equal(docs[0].metadata.url, 'u');
  });

  it('quarantines a line that does not parse, with file and line number', async () => {
    const body = ['{"text":"ok"}', '{"text": broken', '', '{"text":"also ok"}'].join('\n');
    const { docs, quarantined } = await collectFile('mixed.jsonl', body);
    assert.deepEqual(
      docs.map((d) => d.text),
      ['ok', 'also ok'],
    );
    assert.equal(quarantined.length, 1);
    assert.equal(quarantined[0].reason, 'json_parse');
    assert.match(quarantined[0].source, /mixed\.jsonl$/);
    assert.equal(quarantined[0].location, 'line 2');
    assert.match(quarantined[0].detail ?? '', /^line 2 is not valid JSON/);
    assert.equal(quarantined[0].sample, '{"text": broken');
  });

  it('quarantines a record without the text field, naming the line and the field', async () => {
    const { quarantined } = await collectFile('m.jsonl', '{"text":"a"}\n{"body":"b"}\n');
    assert.equal(quarantined[0].reason, 'missing_text');
    assert.equal(quarantined[0].location, 'line 2');
    assert.match(quarantined[0].detail ?? '', /line 2 has no 'text' field/);
  });

  it('quarantines non-string text and non-object lines', async () => {
    const { quarantined } = await collectFile('n.jsonl', '{"text":42}\n[1,2]\n');
    assert.deepEqual(
      quarantined.map((q) => [q.reason, q.location]),
      [
        ['text_not_string', 'line 1'],
        ['not_an_object', 'line 2'],
      ],
    );
  });

  it('applies maxDocumentBytes to a JSON record: skip, or truncate', async () => {
    const body = JSON.stringify({ text: 'y'.repeat(500) });
    const skipped = await collectFile('s.jsonl', body, { maxDocumentBytes: 100 });
    assert.equal(skipped.quarantined[0].reason, 'oversize');
    assert.equal(skipped.quarantined[0].location, 'line 1');
    const cut = await collectFile('t.jsonl', body, { maxDocumentBytes: 100, oversize: 'truncate' });
    assert.equal(cut.docs[0].text, 'y'.repeat(100));
    assert.equal(cut.docs[0].metadata.originalBytes, 500);
  });

  it('reads a .json array of records, and a single .json object', async () => {
    const array = await collectFile('a.json', JSON.stringify([{ text: 'one' }, { text: 2 }, { text: 'three' }]));
    assert.deepEqual(
      array.docs.map((d) => [d.text, d.metadata.item]),
      [
        ['one', 0],
        ['three', 2],
      ],
    );
    assert.equal(array.quarantined[0].location, 'item 1');
    assert.match(array.docs[1].source, /a\.json#\[2\]$/);
    const single = await collectFile('o.json', JSON.stringify({ id: 'x', text: 'alone' }));
    assert.deepEqual(
      single.docs.map((d) => [d.id, d.text]),
      [['x', 'alone']],
    );
  });

  it('uses the format given in the spec over the extension', async () => {
    const { docs } = await collectFile('export.log', '{"text":"from a log"}\n', { format: 'jsonl' });
    assert.equal(docs[0].text, 'from a log');
  });
});

const MULTIPART_EMAIL = [
  'From: "Ann Example" <ann@example.com>',
  'To: Bob <bob@example.com>, carl@example.com',
  'Subject: =?UTF-8?Q?Caf=C3=A9_report?=',
  'Date: Tue, 1 Jul 2003 10:52:37 +0200',
  'Message-ID: <report-1@example.com>',
  'MIME-Version: 1.0',
  'Content-Type: multipart/alternative; boundary="XYZ"',
  '',
  '--XYZ',
  'Content-Type: text/plain; charset=utf-8',
  'Content-Transfer-Encoding: quoted-printable',
  '',
  'The caf=C3=A9 numbers are in. Sales rose by a third=',
  ' this quarter.',
  '--XYZ',
  'Content-Type: text/html; charset=utf-8',
  'Content-Transfer-Encoding: base64',
  '',
  Buffer.from('<p>The <b>HTML</b> version.</p>').toString('base64'),
  '--XYZ--',
  '',
].join('\r\n');

describe('email', () => {
  it('reads an .eml: headers as metadata, the decoded text/plain part as text, Date and Message-ID', async () => {
    const { docs } = await collectFile('report.eml', MULTIPART_EMAIL);
    assert.equal(docs.length, 1);
    const [doc] = docs;
    assert.equal(doc.text, 'The café numbers are in. Sales rose by a third this quarter.');
    assert.equal(doc.id, 'report-1@example.com');
    assert.equal(doc.created, '2003-07-01T08:52:37.000Z');
    assert.deepEqual(
      { ...doc.metadata, path: undefined },
      {
        path: undefined,
        format: 'eml',
        from: 'Ann Example <ann@example.com>',
        to: ['Bob <bob@example.com>', 'carl@example.com'],
        subject: 'Café report',
        date: 'Tue, 1 Jul 2003 10:52:37 +0200',
        messageId: 'report-1@example.com',
      },
    );
  });

  it('reduces a base64 HTML body to text when there is no text/plain part', async () => {
    const html = '<html><body><h1>Launch</h1><p>We ship on <a href="https://x.example">Monday</a>.</p></body></html>';
    const eml = [
      'From: ops@example.com',
      'Subject: Launch',
      'Content-Type: text/html; charset=utf-8',
      'Content-Transfer-Encoding: base64',
      '',
      Buffer.from(html).toString('base64'),
      '',
    ].join('\r\n');
    const { docs } = await collectFile('launch.eml', eml);
    assert.match(docs[0].text, /LAUNCH|Launch/);
    assert.match(docs[0].text, /We ship on Monday\./);
    assert.doesNotMatch(docs[0].text, /<p>|https:/);
    assert.equal(docs[0].metadata.htmlConverted, true);
  });

  it('splits an .mbox into messages, unescaping >From lines', async () => {
    const mbox = [
      'From alice@example.com Mon Jan  1 00:00:00 2024',
      'From: Alice <alice@example.com>',
      'Subject: First',
      'Date: Mon, 1 Jan 2024 10:00:00 +0000',
      'Message-ID: <first@example.com>',
      '',
      'Hello Bob.',
      '>From the archive, a quoted line.',
      '',
      'From bob@example.com Tue Jan  2 00:00:00 2024',
      'From: Bob <bob@example.com>',
      'Subject: Second',
      '',
      'Hello Alice.',
      '',
    ].join('\n');
    const { docs } = await collectFile('inbox.mbox', mbox);
    assert.deepEqual(
      docs.map((d) => [d.metadata.subject, d.text, d.metadata.line]),
      [
        ['First', 'Hello Bob.\nFrom the archive, a quoted line.', 1],
        ['Second', 'Hello Alice.', 10],
      ],
    );
    assert.equal(docs[0].id, 'first@example.com');
    assert.match(docs[1].id, /^[0-9a-f]{32}$/, 'no Message-ID: derived from the location');
    assert.match(docs[1].source, /inbox\.mbox#10$/);
  });
});

describe('archives and compression', () => {
  it('streams the entries of a .tar, each in its own format', async () => {
    const tar = await tarOf([
      { header: { name: 'docs/', type: 'directory' } },
      { header: { name: 'docs/a.txt' }, body: 'alpha text' },
      { header: { name: 'docs/b.jsonl' }, body: '{"text":"beta"}\n{"text":"gamma"}\n' },
    ]);
    const { docs } = await collectFile('bundle.tar', tar);
    assert.deepEqual(
      docs.map((d) => [d.text, d.source.slice(d.source.indexOf('bundle.tar'))]),
      [
        ['alpha text', 'bundle.tar!docs/a.txt'],
        ['beta', 'bundle.tar!docs/b.jsonl#1'],
        ['gamma', 'bundle.tar!docs/b.jsonl#2'],
      ],
    );
    assert.equal(docs[0].created, NOW.toISOString(), 'the entry mtime');
  });

  it('reads .tar.gz and .tgz archives', async () => {
    const tar = await tarOf([{ header: { name: 'a.txt' }, body: 'zipped text' }]);
    for (const name of ['x.tar.gz', 'x.tgz']) {
      const { docs } = await collectFile(name, gzipSync(tar));
      assert.deepEqual(
        docs.map((d) => d.text),
        ['zipped text'],
      );
    }
  });

  it("rejects tar entries with '..' components or absolute paths, naming them, and reads the rest", async () => {
    const tar = await tarOf([
      { header: { name: '../escape.txt' }, body: 'bad' },
      { header: { name: '/etc/passwd.txt' }, body: 'bad' },
      { header: { name: 'ok/../../up.txt' }, body: 'bad' },
      { header: { name: 'fine.txt' }, body: 'good' },
    ]);
    const { docs, quarantined } = await collectFile('evil.tar', tar);
    assert.deepEqual(
      docs.map((d) => d.text),
      ['good'],
    );
    assert.deepEqual(
      quarantined.map((q) => [q.reason, q.location]),
      [
        ['unsafe_tar_entry', 'entry ../escape.txt'],
        ['unsafe_tar_entry', 'entry /etc/passwd.txt'],
        ['unsafe_tar_entry', 'entry ok/../../up.txt'],
      ],
    );
    assert.match(quarantined[0].detail ?? '', /"\.\.\/escape\.txt" rejected: path has a '\.\.' component/);
    assert.match(quarantined[1].detail ?? '', /absolute path/);
  });

  it('skips symbolic links, hard links and devices in a tar with their reason', async () => {
    const tar = await tarOf([
      { header: { name: 'link.txt', type: 'symlink', linkname: '/etc/shadow' } },
      { header: { name: 'hard.txt', type: 'link', linkname: 'fine.txt' } },
      { header: { name: 'dev', type: 'character-device', devmajor: 1, devminor: 3 } },
      { header: { name: 'fine.txt' }, body: 'good' },
    ]);
    const { docs, quarantined } = await collectFile('links.tar', tar);
    assert.deepEqual(
      docs.map((d) => d.text),
      ['good'],
    );
    assert.deepEqual(
      quarantined.map((q) => q.reason),
      ['unsupported_tar_entry', 'unsupported_tar_entry', 'unsupported_tar_entry'],
    );
    assert.match(quarantined[0].detail ?? '', /"link\.txt" is a symlink → \/etc\/shadow; only regular files/);
    assert.match(quarantined[2].detail ?? '', /character-device/);
  });

  it('does not open a tar inside a tar', async () => {
    const inner = await tarOf([{ header: { name: 'x.txt' }, body: 'x' }]);
    const { quarantined } = await collectFile(
      'outer.tar',
      await tarOf([{ header: { name: 'inner.tar' }, body: inner }]),
    );
    assert.equal(quarantined[0].reason, 'nested_archive');
  });

  it('quarantines a truncated tar as corrupt_archive after the entries it could read', async () => {
    const tar = await tarOf([
      { header: { name: 'a.txt' }, body: 'first' },
      { header: { name: 'b.txt' }, body: 'z'.repeat(5000) },
    ]);
    const { docs, quarantined } = await collectFile('cut.tar', tar.subarray(0, 2048));
    assert.deepEqual(
      docs.map((d) => d.text),
      ['first'],
    );
    assert.equal(quarantined.at(-1)?.reason, 'corrupt_archive');
  });

  it('unwraps .gz and .zst files of any format', async () => {
    const gz = await collectFile('notes.jsonl.gz', gzipSync('{"text":"gzipped line"}\n'));
    assert.deepEqual(
      gz.docs.map((d) => d.text),
      ['gzipped line'],
    );
    const zst = await collectFile('note.txt.zst', zstdFrame([{ raw: Buffer.from('zstd text') }]));
    assert.deepEqual(
      zst.docs.map((d) => d.text),
      ['zstd text'],
    );
  });

  it('reads a real zstd-compressed file (made by the zstd CLI)', async () => {
    const { docs } = await collect({ type: 'path', path: path.join(FIXTURES, 'notes.jsonl.zst') });
    assert.deepEqual(
      docs.map((d) => d.id),
      ['note-1', 'note-2', 'note-3'],
    );
    assert.match(docs[2].text, /sperm whale can dive/);
    assert.equal(docs[0].created, '2021-03-04T05:06:07.000Z');
  });

  it('detects gzip by its magic bytes when the name does not say', async () => {
    const { docs } = await collectFile('plain-name.jsonl', gzipSync('{"text":"surprise"}\n'));
    assert.deepEqual(
      docs.map((d) => d.text),
      ['surprise'],
    );
  });

  it('stops a gzip bomb at the expansion ratio instead of inflating it', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * MiB, 0x61)); // ~64 KiB that inflate to 64 MiB: ratio ~1000
    const started = Date.now();
    const { docs, quarantined } = await collectFile('bomb.txt.gz', bomb);
    assert.equal(docs.length, 0);
    assert.equal(quarantined.length, 1);
    assert.equal(quarantined[0].reason, 'expansion_ratio');
    const inflated = Number(/\((\d+) bytes out of/.exec(quarantined[0].detail ?? '')?.[1]);
    assert.ok(inflated < 16 * MiB, `stopped after ${inflated} bytes, well before 64 MiB`);
    assert.ok(Date.now() - started < 5000);
  });

  it('stops a zstd bomb at the expansion ratio', async () => {
    const blocks = Array.from({ length: 2000 }, () => ({ rle: 0x61, size: 128 * 1024 })); // 250 MiB from 8 KiB
    const { quarantined } = await collectFile('bomb.txt.zst', zstdFrame(blocks), { maxExpansionRatio: 50 });
    assert.equal(quarantined[0].reason, 'expansion_ratio');
    assert.match(quarantined[0].detail ?? '', /expanded past 50×/);
  });

  it('quarantines corrupt gzip data as corrupt_compression', async () => {
    const broken = gzipSync(PROSE);
    broken.fill(0x55, 12, 30);
    const { quarantined } = await collectFile('broken.txt.gz', broken);
    assert.equal(quarantined[0].reason, 'corrupt_compression');
  });
});

describe('reading units', () => {
  it('numbers events by ordinal and resumes from startAt with the same tail', async () => {
    const body = ['{"text":"a"}', 'oops', '{"text":"b"}', '{"text":"c"}'].join('\n');
    const dir = await folder({ 'r.jsonl': body });
    const [unit] = await planSource(SourceSpec.parse({ type: 'path', path: dir }), ctx);
    const all: CollectEvent[] = [];
    for await (const e of readUnit(unit, ctx)) all.push(e);
    assert.deepEqual(
      all.map((e) => e.ordinal),
      [0, 1, 2, 3],
    );
    const tail: CollectEvent[] = [];
    for await (const e of readUnit(unit, ctx, { startAt: 2 })) tail.push(e);
    assert.deepEqual(tail, all.slice(2));
  });

  it('collects the sample corpus: real Moby-Dick chapters with readable ids', async () => {
    const { docs } = await collect({ type: 'sample' });
    assert.equal(docs.length, 32, 'the default limit');
    const chapter1 = docs.find((d) => d.id === 'moby-dick/chapter-001');
    assert.ok(chapter1);
    assert.match(chapter1.text, /^CHAPTER 1\. Loomings\.\n\nCall me Ishmael\./);
    assert.equal(chapter1.source, 'sample:moby-dick#[3]');
    assert.equal(chapter1.metadata.author, 'Herman Melville');
    const corpus = sampleCorpus('moby-dick');
    assert.equal(corpus.documents.length, 139);
    const bytes = corpus.documents.reduce((n, d) => n + Buffer.byteLength(d.text), 0);
    assert.ok(bytes > 1_000_000, `${bytes} bytes`);
  });

  it('merges stats across units', () => {
    const a = new CollectStats();
    const b = new CollectStats();
    const doc: Document = { id: 'x', text: 'abc', source: 's', added: NOW.toISOString(), metadata: {} };
    a.add({ kind: 'document', doc, ordinal: 0 });
    b.add({ kind: 'quarantine', record: { source: 's', reason: 'binary' }, ordinal: 0 });
    b.add({ kind: 'quarantine', record: { source: 's', reason: 'binary' }, ordinal: 1 });
    a.skip('warc.request');
    b.skip('warc.request').skip('warc.metadata');
    assert.deepEqual(CollectStats.from(a.toJSON()).merge(b.toJSON()).toJSON(), {
      documents: 1,
      bytes: 3,
      quarantined: { binary: 2 },
      utf8Repaired: 0,
      truncated: 0,
      skipped: { 'warc.metadata': 1, 'warc.request': 2 },
    });
  });
});
