import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  SourceMisconfigured,
  SourceNotFound,
  SourceSpec,
  planSource,
  readUnit,
  type CollectContext,
  type CollectEvent,
  type SourceSpecInput,
} from '../lib/collect';
import { S3Store, createS3Client } from '../lib/storage';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';

let server: TestS3Server;
let client: S3Client;
let bucket: string;
let ctx: CollectContext;

before(async () => {
  server = await startS3Server();
  client = createS3Client(s3ClientOptions(server));
  bucket = `flywheel-collect-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const store = new S3Store({ bucket, client });
  await store.ensureBucket();
  await store.put('corpus/a.txt', 'An object of plain text.');
  await store.put('corpus/b.jsonl.gz', gzipSync('{"id":"b1","text":"gzipped record"}\n'));
  await store.put('corpus/deep/c.md', '# A markdown object');
  await store.put('corpus/skip.bin', Buffer.from([0, 1, 2, 3]));
  await store.put('corpus2/other.txt', 'A sibling prefix that must not be listed.');
  ctx = { now: () => new Date('2025-01-02T03:04:05.000Z'), s3: client };
});
after(async () => {
  client?.destroy();
  await server?.stop();
});

async function collect(input: SourceSpecInput): Promise<CollectEvent[]> {
  const events: CollectEvent[] = [];
  for (const unit of await planSource(SourceSpec.parse(input), ctx)) {
    for await (const event of readUnit(unit, ctx)) events.push(event);
  }
  return events;
}

describe('s3 sources', () => {
  it('lists a prefix as a folder, sorted, with sizes, never a sibling prefix', async () => {
    const units = await planSource(SourceSpec.parse({ type: 's3', uri: `s3://${bucket}/corpus` }), ctx);
    assert.deepEqual(
      units.map((u) => [u.ref, u.uri]),
      [
        ['a.txt', `s3://${bucket}/corpus/a.txt`],
        ['b.jsonl.gz', `s3://${bucket}/corpus/b.jsonl.gz`],
        ['deep/c.md', `s3://${bucket}/corpus/deep/c.md`],
        ['skip.bin', `s3://${bucket}/corpus/skip.bin`],
      ],
    );
    assert.equal(units[0].bytes, 'An object of plain text.'.length);
  });

  it('filters keys with a glob and reads every format through the client', async () => {
    const events = await collect({ type: 's3', uri: `s3://${bucket}/corpus/`, glob: '**/*.{txt,jsonl.gz,md}' });
    assert.deepEqual(
      events.map((e) => (e.kind === 'document' ? [e.doc.source, e.doc.text] : e.record.reason)),
      [
        [`s3://${bucket}/corpus/a.txt`, 'An object of plain text.'],
        [`s3://${bucket}/corpus/b.jsonl.gz#1`, 'gzipped record'],
        [`s3://${bucket}/corpus/deep/c.md`, '# A markdown object'],
      ],
    );
  });

  it('reads a single object named by its full key', async () => {
    const events = await collect({ type: 's3', uri: `s3://${bucket}/corpus/a.txt` });
    assert.equal(events.length, 1);
    assert.ok(events[0].kind === 'document');
    assert.ok(events[0].doc.created, 'LastModified of the object');
  });

  it('says SourceNotFound for a bucket that does not exist', async () => {
    await assert.rejects(collect({ type: 's3', uri: `s3://${bucket}-missing/x` }), SourceNotFound);
  });

  it('needs an S3 client in the context', async () => {
    await assert.rejects(
      planSource(SourceSpec.parse({ type: 's3', uri: `s3://${bucket}/corpus` }), { now: () => new Date() }),
      SourceMisconfigured,
    );
  });
});
