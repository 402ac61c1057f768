import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import { pack as tarPack } from 'tar-stream';
import {
  SourceSpec,
  derivedDocumentId,
  planSource,
  readUnit,
  splitUnits,
  type CollectContext,
  type CollectEvent,
  type SourceSpecInput,
} from '../lib/collect';
import { readParquet } from '../lib/collect/formats/parquet-rows';
import type { ParseOptions } from '../lib/collect/formats/input';
import { decodeJsonlGz, type Document } from '../lib/document';
import { collectBatch, planCollection } from '../lib/pipeline/collect-stage';
import { FsStore, S3Store, TieredStore, createS3Client, readManifest } from '../lib/storage';
import { writeReferenceFormats, type WrittenFormats } from './support/python-writers';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';

const NOW = new Date('2025-01-02T03:04:05.000Z');
const ctx: CollectContext = { now: () => NOW };

let root: string;
/** The files format-writers.py wrote (pyarrow, warcio), or why the tests that need them skip. */
let made: string;
let written: WrittenFormats | undefined;
let skipReason: string | undefined;

before(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'flywheel-formats-'));
  made = path.join(root, 'made');
  const result = writeReferenceFormats(made);
  written = result.written;
  skipReason = result.skip;
});
after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The files the reference writers made; the calling test skips (with the reason) when they could not run. */
function reference(t: { skip(message?: string): void }): WrittenFormats | undefined {
  if (written === undefined) t.skip(skipReason);
  return written;
}

async function collect(input: SourceSpecInput, context: CollectContext = ctx) {
  const events: CollectEvent[] = [];
  const skipped: string[] = [];
  for (const unit of await planSource(SourceSpec.parse(input), context)) {
    for await (const event of readUnit(unit, context, { onSkipped: (what) => skipped.push(what) })) events.push(event);
  }
  return {
    events,
    /** What was passed over as not documents, in order. */
    skipped,
    docs: events.flatMap((e) => (e.kind === 'document' ? [e.doc] : [])),
    quarantined: events.flatMap((e) => (e.kind === 'quarantine' ? [e.record] : [])),
  };
}

/** Each event as [source, text] for a document, [reason, location] for a quarantine record. */
function outline(events: CollectEvent[]): string[][] {
  return events.map((e) =>
    e.kind === 'document' ? [e.doc.source, e.doc.text] : [e.record.reason, e.record.location ?? ''],
  );
}

let cases = 0;
async function fileWith(name: string, body: string | Buffer, mtime?: Date): Promise<string> {
  const dir = path.join(root, `case-${++cases}`);
  await fs.promises.mkdir(dir, { recursive: true });
  const file = path.join(dir, name);
  await writeFile(file, body);
  if (mtime) await utimes(file, mtime, mtime);
  return file;
}

const ROWS = 8;
const rowText = (i: number) => `Row ${i} says hello from Parquet.`;

describe('parquet', () => {
  for (const codec of ['snappy', 'gzip', 'zstd', 'brotli']) {
    it(`reads a ${codec} file row group by row group, columns mapped by fields, nulls quarantined`, async (t) => {
      if (!reference(t)) return;
      const file = path.join(made, `rows-${codec}.parquet`);
      const { events } = await collect({
        type: 'path',
        path: file,
        fields: { id: 'doc_id', created: 'written', metadata: ['meta.lang', 'meta.score'] },
      });
      const expected = Array.from({ length: ROWS }, (_, i) => {
        const rowGroup = Math.floor(i / 3);
        if (i === 5) {
          return {
            kind: 'quarantine',
            record: {
              source: file,
              reason: 'missing_text',
              location: 'row group 1, row 5',
              detail: "row 5 has no 'text' field; set fields.text to the field that holds the text",
              sample: undefined,
            },
          };
        }
        const source = `${file}#row=${i}`;
        return {
          kind: 'document',
          doc: {
            id: i === 2 ? derivedDocumentId(source) : `doc-${i}`,
            text: rowText(i),
            source,
            added: NOW.toISOString(),
            created: new Date(Date.UTC(2024, 0, 1 + i, 12)).toISOString(),
            metadata: {
              'meta.lang': 'en',
              'meta.score': i / 4,
              path: file,
              row: i,
              rowGroup,
              format: 'parquet',
            },
          },
        };
      });
      assert.deepEqual(
        events.map((e) => {
          if (e.kind === 'document') return { kind: e.kind, doc: e.doc };
          return { kind: e.kind, record: { ...e.record, sample: undefined } };
        }),
        expected,
      );
    });
  }

  it('reaches into a struct column with a dotted text path', async (t) => {
    if (!reference(t)) return;
    const { docs } = await collect({
      type: 'path',
      path: path.join(made, 'rows-brotli.parquet'),
      fields: { text: 'content.body' },
    });
    assert.deepEqual(
      docs.map((d) => d.text),
      Array.from({ length: ROWS }, (_, i) => `Nested body ${i}.`),
    );
  });

  it('derives ids from the row position when there is no id column, the same on every run', async (t) => {
    if (!reference(t)) return;
    const spec = { type: 'path', path: path.join(made, 'rows-snappy.parquet') } as const;
    const first = await collect(spec);
    const second = await collect(spec);
    assert.equal(first.docs.length, ROWS - 1);
    assert.deepEqual(
      first.docs.map((d) => d.id),
      first.docs.map((d) => derivedDocumentId(d.source)),
    );
    assert.deepEqual(
      second.docs.map((d) => d.id),
      first.docs.map((d) => d.id),
    );
    assert.equal(new Set(first.docs.map((d) => d.id)).size, first.docs.length);
  });

  it('quarantines a file without the text column once, naming the file, the column and the columns there are', async (t) => {
    if (!reference(t)) return;
    const file = path.join(made, 'rows-zstd.parquet');
    const { events } = await collect({ type: 'path', path: file, fields: { text: 'body' } });
    assert.equal(events.length, 1);
    assert.ok(events[0].kind === 'quarantine');
    assert.deepEqual(events[0].record, {
      source: file,
      reason: 'missing_text',
      detail:
        `${file} has no column 'body' for the text (fields.text); its columns are 'doc_id', 'text', 'written', ` +
        "'meta', 'content'. Set fields.text to the column that holds the text",
    });
  });

  it('quarantines a row group whose page does not decode, with its rows and bytes, and reads the others', async (t) => {
    const facts = reference(t);
    if (!facts) return;
    const file = path.join(made, 'corrupt-page.parquet');
    const { events, quarantined } = await collect({ type: 'path', path: file });
    assert.deepEqual(outline(events), [
      [`${file}#row=0`, rowText(0)],
      [`${file}#row=1`, rowText(1)],
      [`${file}#row=2`, rowText(2)],
      ['corrupt_parquet', 'row group 1'],
      [`${file}#row=6`, rowText(6)],
      [`${file}#row=7`, rowText(7)],
    ]);
    const { start, end } = facts.corruptPage;
    assert.match(
      quarantined[0].detail ?? '',
      new RegExp(`^row group 1 \\(rows 3-5, bytes ${start}-${end}\\) does not decode`),
    );
  });

  it('cuts a Parquet file larger than unitBytes into units of row groups that read as the whole file', async (t) => {
    if (!reference(t)) return;
    for (const name of ['rows-zstd.parquet', 'corrupt-page.parquet', 'corrupt-footer.parquet']) {
      const file = path.join(made, name);
      const units = await planSource(SourceSpec.parse({ type: 'path', path: file }), ctx);
      const wholeEvents: CollectEvent[] = [];
      for await (const event of readUnit(units[0], ctx)) wholeEvents.push(event);
      const size = units[0].bytes;
      for (const unitBytes of [1, Math.ceil(size / 3)]) {
        const split = await splitUnits(units, { unitBytes, ctx });
        if (name === 'corrupt-footer.parquet') {
          assert.deepEqual(split, units, 'a footer that does not parse leaves the file whole, to be reported on read');
          continue;
        }
        // ROWS = 8 in groups of 3: groups 0, 1, 2; unitBytes 1 gives each group a unit of its own.
        if (unitBytes === 1) {
          assert.deepEqual(
            split.map((u) => [u.rowGroups?.start, u.rowGroups?.end]),
            [
              [0, 1],
              [1, 2],
              [2, 3],
            ],
          );
        } else assert.ok(split.length >= 2 && split.length <= 3, `${split.length} units`);
        assert.equal(new Set(split.map((u) => u.id)).size, split.length);
        assert.ok(split.every((u) => u.uri === units[0].uri && u.rowGroups!.fileBytes === size));
        const events: CollectEvent[] = [];
        for (const unit of split) for await (const event of readUnit(unit, ctx)) events.push(event);
        // Same documents (ids, sources, text) and quarantine records, in the same order, as one read of the file.
        const strip = (e: CollectEvent) => ({ ...e, ordinal: 0 });
        assert.deepEqual(events.map(strip), wholeEvents.map(strip), `${name} at unitBytes ${unitBytes}`);
      }
    }
    // A file changed after planning is refused, not read against a stale plan.
    const copy = await fileWith('changing.parquet', await readFile(path.join(made, 'rows-zstd.parquet')));
    const [unit] = await planSource(SourceSpec.parse({ type: 'path', path: copy }), ctx);
    const [first] = await splitUnits([unit], { unitBytes: 1, ctx });
    await writeFile(copy, Buffer.concat([await readFile(copy), Buffer.alloc(16)]));
    await assert.rejects(async () => {
      for await (const event of readUnit(first, ctx)) void event;
    }, /changed since the collection plan cut it into row groups/);
  });

  it('quarantines a file whose footer does not parse, at the footer offset', async (t) => {
    if (!reference(t)) return;
    const file = path.join(made, 'corrupt-footer.parquet');
    const bytes = await readFile(file);
    const footer = bytes.length - 8 - bytes.readUInt32LE(bytes.length - 8);
    const { events, quarantined } = await collect({ type: 'path', path: file });
    assert.deepEqual(outline(events), [['corrupt_parquet', `offset ${footer}`]]);
    assert.match(quarantined[0].detail ?? '', /the Parquet footer does not parse/);
  });

  it('finds a Parquet file by its PAR1 magic when the name has no extension', async (t) => {
    if (!reference(t)) return;
    const file = path.join(made, 'no-extension');
    const { docs, quarantined } = await collect({ type: 'path', path: file });
    assert.equal(docs.length, ROWS - 1);
    assert.deepEqual(
      docs.map((d) => [d.source, d.metadata.rowGroup]),
      [0, 1, 2, 3, 4, 6, 7].map((i) => [`${file}#row=${i}`, Math.floor(i / 4)]),
    );
    assert.deepEqual(
      quarantined.map((q) => q.location),
      ['row group 1, row 5'],
    );
  });

  it('reads a local file through positional reads: the footer, then only the chunks of the columns mapped', async (t) => {
    if (!reference(t)) return;
    const bytes = await readFile(path.join(made, 'rows-snappy.parquet'));
    const reads: Array<[number, number]> = [];
    const input = {
      name: 'rows.parquet',
      path: 'rows.parquet',
      chunks: (async function* () {
        yield* [];
        throw new Error('the stream must stay unread when random access is offered');
      })(),
      randomAccess: {
        byteLength: bytes.length,
        read: async (start: number, end: number) => {
          reads.push([start, end]);
          return bytes.subarray(start, end);
        },
      },
    };
    const opts: ParseOptions = {
      format: 'parquet',
      fields: { id: 'id', text: 'text', created: 'created' },
      maxDocumentBytes: 1 << 20,
      oversize: 'skip',
      maxExpansionRatio: 100,
    };
    const records = [];
    for await (const record of readParquet(input, opts)) records.push(record);
    assert.equal(records.filter((r) => r.kind === 'document').length, ROWS - 1);
    // The footer read, then one read per row group: the 'text' column chunk, never the whole file.
    assert.equal(reads.length, 1 + 3);
    for (const [start, end] of reads.slice(1)) assert.ok(end - start < bytes.length / 4, `read ${start}-${end}`);
  });

  it('reads a gzipped Parquet file (no random access) from memory, with the same documents', async (t) => {
    if (!reference(t)) return;
    const plain = await collect({ type: 'path', path: path.join(made, 'rows-gzip.parquet') });
    const file = await fileWith('rows.parquet.gz', gzipSync(await readFile(path.join(made, 'rows-gzip.parquet'))));
    const zipped = await collect({ type: 'path', path: file });
    assert.deepEqual(
      zipped.docs.map((d) => [d.source.slice(file.length), d.text]),
      plain.docs.map((d) => [d.source.slice(path.join(made, 'rows-gzip.parquet').length), d.text]),
    );
  });
});

const ARTICLE_TEXT =
  'Humpback whales sing long, complex songs that travel for kilometres through the water. Researchers have ' +
  'recorded these songs for decades, and each population seems to share a song that slowly changes over time.\n\n' +
  'Only the males sing, mostly during the breeding season. A single song can last twenty minutes, and a singer may ' +
  'repeat it for hours. Why they sing is still debated: to attract mates, to warn rivals, or both.\n\n' +
  'New recordings from the South Pacific suggest that songs spread from one population to another, eastward, like ' +
  'a fashion, within a couple of years.';
const LATIN1_TEXT = 'Le café naïf de la rue est ouvert tous les jours, même le dimanche. On y sert une crème brûlée.';
const CYRILLIC_TEXT = 'Привет, мир! Это страница в кодировке windows-1251.';
const ROBOTS_TEXT = 'User-agent: *\nDisallow: /private';

/** What crawl.warc(.gz) holds, record by record, given where each record starts. */
function crawlOutline(file: string, offsets: number[]): string[][] {
  return [
    [`${file}#offset=${offsets[1]}`, ARTICLE_TEXT],
    [`${file}#offset=${offsets[3]}`, ROBOTS_TEXT],
    ['unsupported_payload', `offset ${offsets[4]}`],
    [`${file}#offset=${offsets[5]}`, LATIN1_TEXT],
    [`${file}#offset=${offsets[6]}`, CYRILLIC_TEXT],
    ['charset', `offset ${offsets[7]}`],
    ['empty', `offset ${offsets[8]}`],
  ];
}

describe('warc', () => {
  it('reads response records of a .warc.gz: HTML reduced to main text, text/plain as is, the rest skipped or quarantined', async (t) => {
    const facts = reference(t);
    if (!facts) return;
    const file = path.join(made, 'crawl.warc.gz');
    const { events, docs, quarantined, skipped } = await collect({ type: 'path', path: file });
    assert.deepEqual(outline(events), crawlOutline(file, facts.warcGzOffsets));
    // Passed over, and counted: the warcinfo and request records, and a redirect.
    assert.deepEqual(skipped, ['warc.warcinfo', 'warc.request', 'warc.response_3xx']);
    const offset = facts.warcGzOffsets[1];
    assert.deepEqual(docs[0], {
      id: derivedDocumentId(`${file}#offset=${offset}`),
      text: ARTICLE_TEXT,
      source: `${file}#offset=${offset}`,
      added: NOW.toISOString(),
      created: '2024-03-01T10:00:00.000Z',
      metadata: {
        title: 'Whale Songs | Ocean Weekly',
        url: 'https://example.com/whales',
        date: '2024-03-01T10:00:00Z',
        contentType: 'text/html; charset=utf-8',
        warcRecordId: '<urn:uuid:00000000-0000-0000-0000-000000000001>',
        path: file,
        offset,
        format: 'warc',
        charset: 'utf-8',
        extractor: 'readability',
      },
    });
    assert.deepEqual(
      docs.map((d) => [d.metadata.url, d.metadata.title, d.metadata.charset, d.metadata.contentType]),
      [
        ['https://example.com/whales', 'Whale Songs | Ocean Weekly', 'utf-8', 'text/html; charset=utf-8'],
        ['https://example.com/robots.txt', undefined, 'utf-8', 'text/plain'],
        ['https://example.fr/cafe', 'Café crème', 'windows-1252', 'text/html; charset=ISO-8859-1'],
        ['https://example.ru/privet', 'Привет', 'windows-1251', 'text/html'],
      ],
    );
    assert.deepEqual(
      quarantined.map((q) => [q.reason, q.detail]),
      [
        [
          'unsupported_payload',
          'https://example.com/report.pdf is application/pdf; only HTML and text/plain responses are read',
        ],
        [
          'charset',
          'charset "x-klingon" (from the Content-Type header) is not one a TextDecoder knows; the page cannot be decoded',
        ],
        ['empty', 'no text left once scripts, styles, navigation, header and footer are removed'],
      ],
    );
  });

  it('reads an uncompressed .warc the same, at its own offsets', async (t) => {
    const facts = reference(t);
    if (!facts) return;
    const file = path.join(made, 'crawl.warc');
    const { events } = await collect({ type: 'path', path: file });
    assert.deepEqual(outline(events), crawlOutline(file, facts.warcOffsets));
  });

  it('quarantines the record a cut file ends in, at the offset of its gzip member', async (t) => {
    const facts = reference(t);
    if (!facts) return;
    const file = path.join(made, 'truncated.warc.gz');
    const { events, quarantined } = await collect({ type: 'path', path: file });
    const offsets = facts.warcGzOffsets;
    assert.deepEqual(outline(events), [
      ...crawlOutline(file, offsets).slice(0, 3),
      ['truncated', `offset ${offsets[5]}`],
    ]);
    assert.equal(
      quarantined[1].detail,
      `the gzip member at byte ${offsets[5]} ends with the file, before its WARC record does`,
    );
  });

  it('skips a gzip member cut short in the middle of the file and reads the records after it', async (t) => {
    const facts = reference(t);
    if (!facts) return;
    const file = path.join(made, 'member-cut.warc.gz');
    const offsets = facts.warcGzOffsets;
    const lost = offsets[4] - (offsets[3] + Math.floor((offsets[4] - offsets[3]) / 2));
    const shifted = offsets.map((o, i) => (i >= 4 ? o - lost : o));
    const { events } = await collect({ type: 'path', path: file });
    assert.deepEqual(outline(events), [
      [`${file}#offset=${offsets[1]}`, ARTICLE_TEXT],
      ['corrupt_compression', `offset ${offsets[3]}`],
      ...crawlOutline(file, shifted).slice(2),
    ]);
  });

  it('quarantines a record whose WARC header does not parse and goes on with the next record', async (t) => {
    const facts = reference(t);
    if (!facts) return;
    const file = path.join(made, 'bad-header.warc');
    const { events, quarantined } = await collect({ type: 'path', path: file });
    const bad = facts.badHeaderOffset;
    assert.deepEqual(outline(events), [
      [`${file}#offset=${facts.warcOffsets[1]}`, ARTICLE_TEXT],
      ['warc_header', `offset ${bad}`],
      [`${file}#offset=${bad + 89}`, ROBOTS_TEXT],
    ]);
    assert.equal(
      quarantined[0].detail,
      'the WARC header does not parse: its Content-Length is "many", not a byte count',
    );
  });

  it('resumes a unit from an ordinal with the same events as an uninterrupted read', async (t) => {
    if (!reference(t)) return;
    const [unit] = await planSource(
      SourceSpec.parse({ type: 'path', path: path.join(made, 'member-cut.warc.gz') }),
      ctx,
    );
    const all: CollectEvent[] = [];
    for await (const event of readUnit(unit, ctx)) all.push(event);
    const tail: CollectEvent[] = [];
    for await (const event of readUnit(unit, ctx, { startAt: 3 })) tail.push(event);
    assert.deepEqual(tail, all.slice(3));
    assert.deepEqual(
      all.map((e) => e.ordinal),
      all.map((_, i) => i),
    );
  });
});

const PAGE = `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>How to Brew Tea</title>
  <link rel="stylesheet" href="/site.css">
  <style>.menu { display: flex; }</style>
  <script src="/analytics.js"></script>
  <script>dataLayer.push({ event: 'view' });</script>
</head>
<body>
  <header class="site-header">
    <a class="logo" href="/">Leaf &amp; Kettle</a>
    <nav class="menu"><a href="/shop">Shop</a><a href="/guides">Guides</a><a href="/contact">Contact</a></nav>
  </header>
  <div class="layout">
    <aside class="sidebar"><h3>Popular</h3><ul><li><a href="/green">Green tea</a></li><li><a href="/oolong">Oolong</a></li></ul></aside>
    <main>
      <article>
        <h1>How to Brew Tea</h1>
        <p>Good tea starts with fresh water. Bring it to the right temperature for the leaf: near boiling for black
        tea, cooler for green tea, which turns bitter in water that is too hot.</p>
        <p>Use about one teaspoon of leaves per cup. Let black tea steep for three to five minutes and green tea for
        two to three, then remove the leaves so the cup does not grow harsh.</p>
        <h2>Storing leaves</h2>
        <p>Keep leaves in an airtight tin, away from light, heat and strong smells. Stored well, most teas keep their
        flavour for a year.</p>
      </article>
    </main>
  </div>
  <footer class="site-footer"><p>© 2024 Leaf &amp; Kettle · <a href="/privacy">Privacy</a> · <a href="/terms">Terms</a></p></footer>
  <script>window.chat && window.chat.start();</script>
</body>
</html>
`;
const PAGE_TEXT =
  'Good tea starts with fresh water. Bring it to the right temperature for the leaf: near boiling for black tea, ' +
  'cooler for green tea, which turns bitter in water that is too hot.\n\n' +
  'Use about one teaspoon of leaves per cup. Let black tea steep for three to five minutes and green tea for two ' +
  'to three, then remove the leaves so the cup does not grow harsh.\n\n' +
  'Storing leaves\n\n' +
  'Keep leaves in an airtight tin, away from light, heat and strong smells. Stored well, most teas keep their ' +
  'flavour for a year.';

describe('html', () => {
  it('keeps the main text of a page, paragraphs apart, without navigation, header, footer, scripts or styles', async () => {
    const modified = new Date('2024-05-06T07:08:09.000Z');
    const file = await fileWith('brew.html', PAGE, modified);
    const { events } = await collect({ type: 'path', path: file });
    assert.deepEqual(events, [
      {
        kind: 'document',
        ordinal: 0,
        doc: {
          id: derivedDocumentId(file),
          text: PAGE_TEXT,
          source: file,
          added: NOW.toISOString(),
          created: modified.toISOString(),
          metadata: {
            title: 'How to Brew Tea',
            path: file,
            bytes: Buffer.byteLength(PAGE),
            format: 'html',
            charset: 'utf-8',
            extractor: 'readability',
          },
        },
      },
    ]);
  });

  it('falls back to the body text, block elements as line breaks, when Readability finds no article', async () => {
    const page =
      '<html><head><title>Opening hours</title><script>x()</script></head><body><nav><a href="/">Home</a></nav>' +
      '<h1>Opening hours</h1><footer>Footer text</footer></body></html>';
    const file = await fileWith('hours.htm', page);
    const { docs } = await collect({ type: 'path', path: file });
    assert.deepEqual(
      docs.map((d) => [d.text, d.metadata.title, d.metadata.extractor]),
      [['Opening hours', 'Opening hours', 'fallback']],
    );
  });

  it('quarantines a page with no text left as empty', async () => {
    const page =
      '<html><head><title>Loading</title><script>boot()</script></head><body><nav>Menu</nav>' +
      '<div id="app"></div><footer>© 2024</footer></body></html>';
    const file = await fileWith('app.html', page);
    const { events } = await collect({ type: 'path', path: file });
    assert.deepEqual(outline(events), [['empty', '']]);
  });

  it('decodes by <meta charset>, and quarantines a charset no decoder knows', async () => {
    // windows-1251 bytes of "Привет, мир!": П=0xCF р=0xF0 и=0xE8 в=0xE2 е=0xE5 т=0xF2 м=0xEC
    const hello = Buffer.from([0xcf, 0xf0, 0xe8, 0xe2, 0xe5, 0xf2, 0x2c, 0x20, 0xec, 0xe8, 0xf0, 0x21]);
    const page = Buffer.concat([
      Buffer.from('<html><head><meta charset="windows-1251"><title>t</title></head><body><p>'),
      hello,
      Buffer.from('</p></body></html>'),
    ]);
    const good = await collect({ type: 'path', path: await fileWith('ru.html', page) });
    assert.deepEqual(
      good.docs.map((d) => [d.text, d.metadata.charset]),
      [['Привет, мир!', 'windows-1251']],
    );
    const bad = await collect({
      type: 'path',
      path: await fileWith(
        'tlh.html',
        '<html><head><meta charset="x-klingon"></head><body><p>Qapla!</p></body></html>',
      ),
    });
    assert.deepEqual(
      bad.quarantined.map((q) => [q.reason, q.detail]),
      [
        [
          'charset',
          'charset "x-klingon" (from the <meta charset>) is not one a TextDecoder knows; the page cannot be decoded',
        ],
      ],
    );
  });

  it('reads pages inside a tar archive, each entry one document', async () => {
    const archive = tarPack();
    const chunks: Buffer[] = [];
    archive.on('data', (chunk) => chunks.push(chunk as Buffer));
    const done = new Promise<Buffer>((resolve) => archive.on('end', () => resolve(Buffer.concat(chunks))));
    archive.entry({ name: 'site/brew.html', mtime: NOW }, PAGE);
    archive.entry({ name: 'site/notes.txt', mtime: NOW }, 'Plain notes.');
    archive.finalize();
    const file = await fileWith('site.tar', await done);
    const { docs } = await collect({ type: 'path', path: file });
    assert.deepEqual(
      docs.map((d) => [d.source, d.text, d.metadata.path]),
      [
        [`${file}!site/brew.html`, PAGE_TEXT, `${file}!site/brew.html`],
        [`${file}!site/notes.txt`, 'Plain notes.', `${file}!site/notes.txt`],
      ],
    );
  });

  it('quarantines HTML nested too deeply to walk instead of failing the unit', async () => {
    const depth = 20_000;
    const file = await fileWith(
      'deep.html',
      `<html><body>${'<div>'.repeat(depth)}deep${'</div>'.repeat(depth)}</body></html>`,
    );
    const { events } = await collect({ type: 'path', path: file });
    assert.equal(events.length, 1);
    assert.ok(events[0].kind === 'quarantine');
    assert.equal(events[0].record.reason, 'html_parse');
  });
});

describe('hostile Parquet and WARC input', () => {
  for (const name of ['rows-snappy.parquet', 'rows-brotli.parquet', 'crawl.warc.gz', 'crawl.warc']) {
    it(`${name} with random bytes overwritten ends in documents and quarantine records, never a throw`, async (t) => {
      if (!reference(t)) return;
      const original = await readFile(path.join(made, name));
      const file = await fileWith(name, original);
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.tuple(fc.nat({ max: original.length - 1 }), fc.integer({ min: 0, max: 255 })), {
            minLength: 1,
            maxLength: 8,
          }),
          async (edits) => {
            const bytes = Buffer.from(original);
            for (const [at, value] of edits) bytes[at] = value;
            await writeFile(file, bytes);
            const { events } = await collect({ type: 'path', path: file });
            assert.deepEqual(
              events.map((e) => e.ordinal),
              events.map((_, i) => i),
            );
          },
        ),
        { numRuns: 60, includeErrorInReport: true },
      );
    });
  }
});

describe('formats through the pipeline and S3', () => {
  it('collects Parquet, WARC and HTML files of one folder into stage partitions, quarantined records counted', async (t) => {
    if (!reference(t)) return;
    const input = path.join(root, 'pipeline-input');
    await fs.promises.mkdir(input);
    await fs.promises.copyFile(path.join(made, 'rows-zstd.parquet'), path.join(input, 'rows.parquet'));
    await fs.promises.copyFile(path.join(made, 'crawl.warc.gz'), path.join(input, 'crawl.warc.gz'));
    await writeFile(path.join(input, 'brew.html'), PAGE);
    const dir = await mkdtemp(path.join(root, 'store-'));
    const fsStore = new FsStore(dir);
    const store = new TieredStore({ hot: fsStore, warm: fsStore, cold: fsStore });
    const folder = 'warm://pipelines/formats/v1/abc/collect';
    const plan = await planCollection({
      store,
      folder,
      sources: [SourceSpec.parse({ type: 'path', path: input })],
      unitsPerBatch: 8,
    });
    assert.equal(plan.units, 3);
    const out = await collectBatch({
      store,
      folder: `${folder}/batch-000000`,
      plan: plan.plan,
      batch: 0,
      limits: { maxDocuments: 100, maxBytes: 64 * 1024 * 1024 },
    });
    const kept: Document[] = [];
    for (const part of (await readManifest(store, out.partitions)).objects) {
      for await (const doc of decodeJsonlGz<Document>(await store.get(part.uri))) kept.push(doc);
    }
    assert.deepEqual(
      kept.map((d) => d.metadata.format),
      ['html', 'warc', 'warc', 'warc', 'warc', ...Array<string>(ROWS - 1).fill('parquet')],
    );
    assert.equal(out.stats.kept, 4 + 1 + ROWS - 1);
    assert.deepEqual(out.stats.dropped, {
      'collect.charset': 1,
      'collect.empty': 1,
      'collect.missing_text': 1,
      'collect.unsupported_payload': 1,
    });
    assert.equal(out.stats.input, out.stats.kept + 4, 'what was passed over is not input');
    assert.deepEqual(out.stats.skipped, { 'warc.warcinfo': 1, 'warc.request': 1, 'warc.response_3xx': 1 });
  });

  it('reads a URL by its Content-Type: an HTML page without extension, a Parquet file held in memory', async (t) => {
    if (!reference(t)) return;
    const parquet = await readFile(path.join(made, 'rows-snappy.parquet'));
    const server = createServer((req, res) => {
      if (req.url === '/guides/brew') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(PAGE);
      } else if (req.url === '/export') {
        res.writeHead(200, { 'content-type': 'application/vnd.apache.parquet' }).end(parquet);
      } else res.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    // Loopback is reached only when listed by name.
    const local: CollectContext = { ...ctx, allowedHosts: ['127.0.0.1'] };
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const page = await collect({ type: 'url', url: `${base}/guides/brew` }, local);
      assert.deepEqual(
        page.docs.map((d) => [d.source, d.text, d.metadata.title, d.metadata.path]),
        [[`${base}/guides/brew`, PAGE_TEXT, 'How to Brew Tea', `${base}/guides/brew`]],
      );
      const rows = await collect({ type: 'url', url: `${base}/export` }, local);
      assert.deepEqual(
        rows.docs.map((d) => [d.source, d.text]),
        [0, 1, 2, 3, 4, 6, 7].map((i) => [`${base}/export#row=${i}`, rowText(i)]),
      );
    } finally {
      server.close();
    }
  });

  describe('s3', () => {
    let server: TestS3Server;
    let client: S3Client;
    let bucket: string;
    let s3ctx: CollectContext;
    /** The Range header of each GetObject the client sends, by key. */
    const ranges: Array<[string, string | undefined]> = [];

    before(async () => {
      if (written === undefined) return;
      server = await startS3Server();
      client = createS3Client(s3ClientOptions(server));
      client.middlewareStack.add(
        (next, context) => async (args) => {
          const input = args.input as { Key?: string; Range?: string };
          if (context.commandName === 'GetObjectCommand') ranges.push([input.Key ?? '', input.Range]);
          return next(args);
        },
        { step: 'initialize', name: 'recordRanges' },
      );
      bucket = `flywheel-formats-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
      const store = new S3Store({ bucket, client });
      await store.ensureBucket();
      await store.put('data/rows.parquet', await readFile(path.join(made, 'rows-snappy.parquet')));
      await store.put('data/crawl.warc.gz', await readFile(path.join(made, 'crawl.warc.gz')));
      s3ctx = { now: () => NOW, s3: client };
    });
    after(async () => {
      client?.destroy();
      await server?.stop();
    });

    it('reads a Parquet object through ranged GETs and a WARC object as a stream, as from a file', async (t) => {
      const facts = reference(t);
      if (!facts) return;
      const { events } = await collect({ type: 's3', uri: `s3://${bucket}/data/` }, s3ctx);
      const parquet = `s3://${bucket}/data/rows.parquet`;
      const warc = `s3://${bucket}/data/crawl.warc.gz`;
      assert.deepEqual(outline(events), [
        ...crawlOutline(warc, facts.warcGzOffsets),
        ...[0, 1, 2, 3, 4].map((i) => [`${parquet}#row=${i}`, rowText(i)]),
        ['missing_text', 'row group 1, row 5'],
        ...[6, 7].map((i) => [`${parquet}#row=${i}`, rowText(i)]),
      ]);
      // The Parquet object: its opening GET (left unread), the footer, then one ranged GET per row group.
      const parquetRanges = ranges.filter(([key]) => key === 'data/rows.parquet').map(([, range]) => range);
      assert.equal(parquetRanges.length, 1 + 1 + 3);
      assert.equal(parquetRanges[0], undefined);
      assert.ok(parquetRanges.slice(1).every((range) => range !== undefined && /^bytes=\d+-\d+$/.test(range)));
    });
  });
});
