import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client, S3Store } from '../lib/storage';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';

/**
 * The AWS SDK's default request checksums against the test server: CRC32 headers on buffered uploads and
 * aws-chunked bodies with trailing checksums on streamed ones. A server that stored the chunk framing as data
 * (s3rver does) fails the byte comparisons here.
 */
describe('S3 request checksums with the SDK defaults', () => {
  let server: TestS3Server;
  let store: S3Store;
  const bucket = `flywheel-checksums-${Date.now()}`;

  before(async () => {
    server = await startS3Server();
    const client = createS3Client(s3ClientOptions(server));
    store = new S3Store({ bucket, client });
    await store.ensureBucket();
  });
  after(() => server.stop());

  it('a streamed PutObject (aws-chunked, trailing checksum) stores exactly the bytes sent', async (t) => {
    if (server.checksums !== 'when_supported') return t.skip(`${server.kind} needs checksums when_required`);
    const parts = [Buffer.from('hello '), Buffer.alloc(200_000, 7), Buffer.from(' world')];
    const body = Buffer.concat(parts);
    const command = new PutObjectCommand({
      Bucket: bucket,
      Key: 'chunked.bin',
      Body: Readable.from(parts),
      ContentLength: body.length,
    });
    let headers: Record<string, string> = {};
    command.middlewareStack.add(
      (next) => async (args) => {
        headers = (args.request as { headers: Record<string, string> }).headers;
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low' },
    );
    await store.client.send(command);
    assert.equal(headers['x-amz-trailer'], 'x-amz-checksum-crc32', 'the SDK sent a trailing CRC32');
    assert.match(headers['content-encoding'] ?? '', /aws-chunked/);
    const got = await store.client.send(new GetObjectCommand({ Bucket: bucket, Key: 'chunked.bin' }));
    const bytes = Buffer.from(await got.Body!.transformToByteArray());
    assert.equal(bytes.length, body.length);
    assert.ok(bytes.equals(body));
  });

  it('buffered and multipart uploads through the store round-trip with the default checksums', async () => {
    const small = Buffer.from('a small buffered object');
    const putSmall = await store.put('buffered.txt', small);
    assert.equal(putSmall.sha256, createHash('sha256').update(small).digest('hex'));
    assert.ok((await store.getBytes('buffered.txt')).equals(small));

    const big = Buffer.alloc(17 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
    const putBig = await store.put(
      'multipart.bin',
      Readable.from([big.subarray(0, 9_000_000), big.subarray(9_000_000)]),
    );
    assert.equal(putBig.sha256, createHash('sha256').update(big).digest('hex'));
    const head = await store.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'multipart.bin' }));
    // s3rver gives multipart objects a whole-object ETag, so only a real server shows the part count.
    if (server.kind === 's3proxy') assert.match(head.ETag ?? '', /-\d+"?$/, 'stored as a multipart object');
    assert.ok((await store.getBytes('multipart.bin')).equals(big));
  });
});
