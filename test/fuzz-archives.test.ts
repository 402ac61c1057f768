import assert from 'node:assert/strict';
import fs from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { pack as tarPack, type Header } from 'tar-stream';
import { QUARANTINE_REASONS } from '../lib/collect';
import type { ParseOptions } from '../lib/collect/formats/input';
import { parseInput } from '../lib/collect/formats/parse-input';
import type { RawRecord } from '../lib/collect/records';

const MiB = 1024 * 1024;
const CASE_TIMEOUT_MS = 10_000;
const DEFAULTS: ParseOptions = {
  format: 'auto',
  fields: { id: 'id', text: 'text', created: 'created' },
  maxDocumentBytes: 10 * MiB,
  oversize: 'skip',
  maxExpansionRatio: 100,
};
/** The content of a file outside any archive that links inside archives point at; it must never be read. */
const SECRET = `flywheel-fuzz-secret-${process.pid}`;

let scratch: string;
let secretFile: string;
before(async () => {
  scratch = await mkdtemp(path.join(tmpdir(), 'flywheel-fuzz-archives-'));
  secretFile = path.join(scratch, 'secret.txt');
  await writeFile(secretFile, SECRET);
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/** Counts calls to every fs function that opens, creates or links files while `work` runs. */
async function withFsSpy<T>(work: () => Promise<T>): Promise<{ result: T; touched: string[] }> {
  const touched: string[] = [];
  const names = ['open', 'writeFile', 'appendFile', 'mkdir', 'symlink', 'link', 'rename', 'copyFile', 'cp'] as const;
  const restore: (() => void)[] = [];
  const wrap = (target: Record<string, unknown>, key: string, label: string) => {
    const original = target[key];
    if (typeof original !== 'function') return;
    target[key] = (...args: unknown[]) => {
      touched.push(`${label}(${String(args[0])})`);
      return (original as (...a: unknown[]) => unknown).apply(target, args);
    };
    restore.push(() => (target[key] = original));
  };
  const promises = fs.promises as unknown as Record<string, unknown>;
  const sync = fs as unknown as Record<string, unknown>;
  for (const name of names) {
    wrap(promises, name, `fs.promises.${name}`);
    wrap(sync, name, `fs.${name}`);
    wrap(sync, `${name}Sync`, `fs.${name}Sync`);
  }
  wrap(sync, 'createWriteStream', 'fs.createWriteStream');
  wrap(sync, 'createReadStream', 'fs.createReadStream');
  try {
    return { result: await work(), touched };
  } finally {
    for (const undo of restore) undo();
  }
}

async function* stream(chunks: Buffer[]): AsyncGenerator<Buffer> {
  for (const chunk of chunks) yield chunk;
}

function split(bytes: Buffer, cuts: number[]): Buffer[] {
  if (bytes.length === 0) return [];
  const at = [...new Set(cuts.map((c) => c % bytes.length))].filter((c) => c > 0).sort((a, b) => a - b);
  return [...at, bytes.length].map((cut, i, all) => bytes.subarray(i === 0 ? 0 : all[i - 1], cut));
}

/** Reads bytes as the file `name`; fails on any exception and on taking longer than the case timeout. */
async function parse(name: string, chunks: Buffer[], opts: Partial<ParseOptions> = {}): Promise<RawRecord[]> {
  const records: RawRecord[] = [];
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`reading ${name} hung`)), CASE_TIMEOUT_MS);
  });
  try {
    await Promise.race([
      (async () => {
        for await (const r of parseInput({ name, path: name, chunks: stream(chunks) }, { ...DEFAULTS, ...opts })) {
          records.push(r);
        }
      })(),
      hang,
    ]);
  } finally {
    clearTimeout(timer);
  }
  for (const record of records) {
    if (record.kind === 'quarantine') {
      assert.ok((QUARANTINE_REASONS as readonly string[]).includes(record.reason), record.reason);
      assert.ok(record.detail.length > 0);
    }
    assert.doesNotThrow(() => JSON.stringify(record));
  }
  return records;
}

// ---- tar --------------------------------------------------------------------------------------------------------

interface TarEntry {
  header: Partial<Header> & Pick<Header, 'name'>;
  body?: string;
}

function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const archive = tarPack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => {
    chunks.push(chunk as Buffer);
  });
  const done = new Promise<Buffer>((resolve) => archive.on('end', () => resolve(Buffer.concat(chunks))));
  for (const { header, body } of entries) archive.entry({ mtime: new Date(0), ...header }, body ?? '');
  archive.finalize();
  return done;
}

/** The independent rule for names that leave an archive: absolute, a drive, or a '..' component. */
function escapes(name: string): boolean {
  return /^[\\/]|^[A-Za-z]:/.test(name) || name.split(/[\\/]+/).includes('..');
}

const HOSTILE_NAMES = [
  '../../flywheel-escape.txt',
  '/etc/passwd',
  'a/../../b.txt',
  '..',
  './../x.jsonl',
  'C:\\Windows\\x.txt',
  '\\\\server\\share\\x.txt',
  'ok/..\\..\\x.txt',
  `${'../'.repeat(40)}etc/passwd`, // long: travels in a pax header, which overrides the ustar name
  `${'a/'.repeat(60)}deep.txt`,
  'ok.txt',
  'dir/ok.jsonl',
  'x.tar',
  'x.txt.gz',
  'x.eml',
  'x.mbox',
  'x.json',
  'é/ünïcode.md',
];

const entryName = fc.oneof(
  fc.constantFrom(...HOSTILE_NAMES),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 150 }).filter((s) => !s.includes('\0') && !s.endsWith('/')),
);

const tarEntry: fc.Arbitrary<TarEntry> = fc
  .record({
    name: entryName,
    type: fc.constantFrom(
      'file',
      'file',
      'file',
      'symlink',
      'link',
      'directory',
      'character-device',
      'block-device',
      'fifo',
      'contiguous-file',
    ),
    link: fc.constantFrom('SECRET', '../../etc/shadow', '/etc/passwd', 'ok.txt'),
    body: fc.string({ minLength: 1, maxLength: 80 }),
  })
  .map(({ name, type, link, body }) => {
    const linkname = link === 'SECRET' ? secretFile : link;
    if (type === 'file' || type === 'contiguous-file') return { header: { name, type }, body: `body ${body}` };
    if (type === 'directory') return { header: { name: `${name}/`, type } };
    if (type === 'symlink' || type === 'link') return { header: { name, type, linkname } };
    return { header: { name, type, devmajor: 1, devminor: 3 } };
  });

/** A 512-byte ustar header with fields given as raw text, its checksum computed, for what tar-stream will not write. */
function rawHeader(fields: { name: string; size: string; mtime: string; type: string; linkname?: string }): Buffer {
  const block = Buffer.alloc(512);
  block.write(fields.name, 0, 100, 'latin1');
  block.write('0000644\0', 100, 'latin1');
  block.write('0000000\0', 108, 'latin1');
  block.write('0000000\0', 116, 'latin1');
  block.write(fields.size, 124, 12, 'latin1');
  block.write(fields.mtime, 136, 12, 'latin1');
  block.write(fields.type, 156, 1, 'latin1');
  block.write(fields.linkname ?? '', 157, 100, 'latin1');
  block.write('ustar\x0000', 257, 'latin1');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return block;
}

const pad512 = (body: Buffer) => Buffer.concat([body, Buffer.alloc((512 - (body.length % 512)) % 512)]);

// ---- compression ------------------------------------------------------------------------------------------------

/** A zstd frame of raw and RLE blocks (RFC 8878) with a chosen window descriptor, so tests need no compressor. */
function zstdFrame(blocks: Array<{ raw: Buffer } | { rle: number; size: number }>, windowDescriptor = 0x38): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, windowDescriptor])];
  blocks.forEach((block, i) => {
    const last = i === blocks.length - 1 ? 1 : 0;
    const [type, size, body]: [number, number, Buffer] =
      'raw' in block ? [0, block.raw.length, block.raw] : [1, block.size, Buffer.from([block.rle])];
    const header = last | (type << 1) | (size << 3);
    parts.push(Buffer.from([header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff]), body);
  });
  return Buffer.concat(parts);
}

/** Window descriptor bytes: exponent in the high 5 bits (window = 2^(10+e)), eighths in the low 3. */
const WINDOW_1_875_GIB = 0xa7;
const WINDOW_128_MIB = 0x88;
const WINDOW_144_MIB = 0x89;

/** Text that compresses ~1000×; zeros would be stopped sooner, as binary, before the expansion limit is tested. */
const repeated = (bytes: number) => Buffer.alloc(bytes, 0x61);

let member: Buffer | undefined;
/** One gzip member inflating 16 MiB from ~16 KiB; members concatenate into a gzip stream of any size. */
function gzipMember16MiB(): Buffer {
  member ??= gzipSync(repeated(16 * MiB));
  return member;
}

// ---- tests ------------------------------------------------------------------------------------------------------

describe('tar archives under hostile entries', () => {
  it('every entry leaving the archive, every link and device is quarantined by name; nothing is written or followed', async () => {
    await fc.assert(
      fc.asyncProperty(
        // Distinct names, so each record can be traced to its entry.
        fc.uniqueArray(tarEntry, { minLength: 1, maxLength: 8, selector: (e) => e.header.name.replace(/\/$/, '') }),
        fc.boolean(),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (entries, gzipped, cuts) => {
          const tar = await tarOf(entries);
          const bytes = gzipped ? gzipSync(tar) : tar;
          const { result: records, touched } = await withFsSpy(() =>
            parse(gzipped ? 'fuzz.tar.gz' : 'fuzz.tar', split(bytes, cuts)),
          );
          assert.deepEqual(touched, [], 'reading an archive opens, writes and links nothing');
          assert.ok(!JSON.stringify(records).includes(SECRET), 'no link is followed to what it points at');

          let at = 0;
          for (const { header } of entries) {
            if (header.type === 'directory') continue;
            const mine: RawRecord[] = [];
            while (at < records.length && records[at].entry === header.name) mine.push(records[at++]);
            assert.ok(mine.length > 0, `entry ${JSON.stringify(header.name)} gave no record`);
            const reasons = mine.map((r) => (r.kind === 'quarantine' ? r.reason : 'document'));
            if (escapes(header.name)) assert.deepEqual(reasons, ['unsafe_tar_entry']);
            else if (header.type !== 'file' && header.type !== 'contiguous-file') {
              assert.deepEqual(reasons, ['unsupported_tar_entry']);
            }
          }
          assert.equal(at, records.length, 'every record belongs to an entry, in order');
        },
      ),
      { numRuns: 150, includeErrorInReport: true },
    );
  });

  it('a damaged archive (bytes flipped, cut or appended) ends in typed records, never an exception or a hang', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(tarEntry, { minLength: 1, maxLength: 4 }),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 12 }),
        fc.option(fc.nat()),
        fc.uint8Array({ maxLength: 600 }),
        async (entries, flips, cut, tail) => {
          const tar = Buffer.from(await tarOf(entries));
          for (const [at, byte] of flips) tar[at % tar.length] = byte;
          const damaged = Buffer.concat([cut === null ? tar : tar.subarray(0, cut % tar.length), tail]);
          const records = await parse('damaged.tar', [damaged]);
          assert.ok(!JSON.stringify(records).includes(SECRET));
        },
      ),
      { numRuns: 200, includeErrorInReport: true },
    );
  });

  it('survives crafted headers: invalid dates and sizes, GNU long names and pax paths that escape', async () => {
    const body = pad512(Buffer.from('hello'));
    const end = Buffer.alloc(1024);
    const octal = (n: number) => `${n.toString(8).padStart(11, '0')}\0`;
    const file = (name: string, mtime = octal(0), size = octal(5)) => rawHeader({ name, size, mtime, type: '0' });
    const paxRecord = (key: string, value: string) => {
      const text = ` ${key}=${value}\n`;
      let length = text.length;
      while (`${length}${text}`.length !== length) length = `${length}${text}`.length;
      return `${length}${text}`;
    };
    const gnuName = Buffer.from('../../gnu-escape.txt\0');
    const paxPath = Buffer.from(paxRecord('path', '../../pax-escape.txt'));
    const paxSize = Buffer.from(paxRecord('size', 'abc'));
    const cases: { archive: Buffer; expect?: string[] }[] = [
      { archive: Buffer.concat([file('bad-date.txt', 'zzzzzzzzzzz\0'), body, end]), expect: ['hello'] },
      { archive: Buffer.concat([file('bad-size.txt', octal(0), '9zz\0'), body, end]) },
      {
        archive: Buffer.concat([
          rawHeader({ name: '././@LongLink', size: octal(gnuName.length), mtime: octal(0), type: 'L' }),
          pad512(gnuName),
          file('innocent.txt'),
          body,
          end,
        ]),
        expect: ['unsafe_tar_entry'],
      },
      {
        archive: Buffer.concat([
          rawHeader({ name: 'PaxHeader', size: octal(paxPath.length), mtime: octal(0), type: 'x' }),
          pad512(paxPath),
          file('innocent.txt'),
          body,
          end,
        ]),
        expect: ['unsafe_tar_entry'],
      },
      {
        archive: Buffer.concat([
          rawHeader({ name: 'PaxHeader', size: octal(paxSize.length), mtime: octal(0), type: 'x' }),
          pad512(paxSize),
          file('pax-size.txt'),
          body,
          end,
        ]),
      },
    ];
    for (const { archive, expect } of cases) {
      const records = await parse('crafted.tar', [archive]);
      assert.ok(records.length > 0, 'a crafted archive is not dropped silently');
      if (expect) {
        assert.deepEqual(
          records.map((r) => (r.kind === 'document' ? r.text : r.kind === 'quarantine' ? r.reason : r.what)),
          expect,
        );
      }
      if (records[0].kind === 'document') assert.equal(records[0].created, undefined, 'an invalid date is left out');
    }
  });
});

describe('compression bombs', () => {
  it('a gzip bomb in any wrapping is stopped at the expansion ratio with a quarantine record, quickly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 64 }),
        fc.constantFrom('gz', 'gz by magic', 'tar.gz entry', 'gz entry in tar', 'gz.gz'),
        fc.constantFrom(10, 100, 500),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (members, wrapping, maxExpansionRatio, cuts) => {
          const bomb = Buffer.concat(Array.from({ length: members }, gzipMember16MiB)); // members × 16 MiB
          let name = 'bomb.txt.gz';
          let bytes: Buffer = bomb;
          if (wrapping === 'gz by magic') name = 'bomb';
          if (wrapping === 'gz.gz') [name, bytes] = ['bomb.txt.gz.gz', gzipSync(bomb)];
          if (wrapping === 'tar.gz entry') [name, bytes] = ['bomb.tar.gz', await tarGzOfText()];
          if (wrapping === 'gz entry in tar') {
            [name, bytes] = ['bomb.tar', await tarOfBuffer('bomb.txt.gz', bomb)];
          }
          const started = Date.now();
          const records = await parse(name, split(bytes, cuts), { maxExpansionRatio });
          assert.ok(
            records.some((r) => r.kind === 'quarantine' && r.reason === 'expansion_ratio'),
            `no expansion_ratio record: ${JSON.stringify(records.map((r) => (r.kind === 'quarantine' ? r.reason : 'doc')))}`,
          );
          assert.ok(!records.some((r) => r.kind === 'document' && r.text.length > 0));
          assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
        },
      ),
      { numRuns: 25, includeErrorInReport: true },
    );
  });

  it('bounds the expansion of nested wrappers together, not each wrapper alone', async () => {
    // Each layer stays under 2000×, the two together expand ~300 000×.
    const doubly = gzipSync(gzipSync(repeated(64 * MiB)));
    const records = await parse('double.txt.gz.gz', [doubly], { maxExpansionRatio: 2000 });
    assert.deepEqual(
      records.map((r) => (r.kind === 'quarantine' ? r.reason : 'document')),
      ['expansion_ratio'],
    );
  });

  it('refuses a zstd frame declaring a huge window before allocating it', async () => {
    for (const frame of [
      zstdFrame([{ raw: Buffer.from('a') }, { raw: Buffer.from('b') }], WINDOW_1_875_GIB),
      zstdFrame([{ raw: Buffer.from('a') }], WINDOW_144_MIB),
      // single segment: the window is the content size, here 0x70000000 bytes
      Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0xa0, 0x00, 0x00, 0x00, 0x70, 0x09, 0x00, 0x00, 0x61]),
      // a second frame after a good one
      Buffer.concat([
        zstdFrame([{ raw: Buffer.from('ok') }]),
        zstdFrame([{ raw: Buffer.from('a') }], WINDOW_1_875_GIB),
      ]),
    ]) {
      const started = Date.now();
      const records = await parse('window.txt.zst', [frame]);
      assert.deepEqual(
        records.map((r) => (r.kind === 'quarantine' ? r.reason : 'document')),
        ['zstd_window'],
      );
      assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    }
  });

  it('stops a zstd stream of tiny blocks under a large window, whose decoding would take minutes', async () => {
    const blocks = Array.from({ length: 20_000 }, () => ({ raw: Buffer.from('a') }));
    const started = Date.now();
    const records = await parse('slow.txt.zst', [zstdFrame(blocks, WINDOW_128_MIB)]);
    assert.deepEqual(
      records.map((r) => (r.kind === 'quarantine' ? r.reason : 'document')),
      ['zstd_window'],
    );
    assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
  });

  it('reads a zstd frame with the largest allowed window', async () => {
    const records = await parse('big-window.txt.zst', [
      zstdFrame([{ raw: Buffer.from('large ') }, { raw: Buffer.from('window') }], WINDOW_128_MIB),
    ]);
    assert.deepEqual(
      records.map((r) => (r.kind === 'document' ? r.text : r.kind === 'quarantine' ? r.reason : r.what)),
      ['large window'],
    );
  });

  it('random zstd frames, block headers and truncations end in typed records, never an exception or a hang', async () => {
    const block = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((raw) => ({ raw: Buffer.from(raw) })),
      fc.record({ rle: fc.integer({ min: 0, max: 255 }), size: fc.integer({ min: 0, max: 200_000 }) }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(block, { maxLength: 12 }),
        fc.integer({ min: 0, max: 255 }),
        fc.option(fc.nat()),
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (blocks, descriptor, cut, flips, cuts) => {
          const frame = Buffer.from(blocks.length === 0 ? zstdFrame([{ raw: Buffer.alloc(0) }]) : zstdFrame(blocks));
          frame[4] = descriptor; // frame descriptor: content size, single segment, checksum and dictionary flags
          for (const [at, byte] of flips) frame[at % frame.length] = byte;
          const bytes = cut === null ? frame : frame.subarray(0, cut % (frame.length + 1));
          const started = Date.now();
          await parse('fuzz.txt.zst', split(bytes, cuts));
          assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
        },
      ),
      { numRuns: 300, includeErrorInReport: true },
    );
  });
});

let textTarGz: Promise<Buffer> | undefined;
/** A .tar.gz whose one entry is 64 MiB of text: the bomb inflates inside the archive's own gzip layer. */
function tarGzOfText(): Promise<Buffer> {
  textTarGz ??= tarOfBuffer('text.txt', repeated(64 * MiB)).then((tar) => gzipSync(tar));
  return textTarGz;
}

/** A tar of one entry with binary content (tar-stream takes a Buffer body too). */
function tarOfBuffer(name: string, body: Buffer): Promise<Buffer> {
  const archive = tarPack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk: unknown) => {
    chunks.push(chunk as Buffer);
  });
  const done = new Promise<Buffer>((resolve) => archive.on('end', () => resolve(Buffer.concat(chunks))));
  archive.entry({ name, mtime: new Date(0) }, body);
  archive.finalize();
  return done;
}
