import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it, type TestContext } from 'node:test';
import { HeadObjectCommand } from '@aws-sdk/client-s3';
import {
  AccessDenied,
  BackgroundSha256,
  ChecksumMismatch,
  commitManifest,
  createS3Client,
  FsStore,
  InvalidObjectKey,
  mapS3Error,
  ObjectNotFound,
  openVerified,
  PermanentStorageError,
  readAll,
  readManifest,
  S3Store,
  StorageError,
  StoreUnreachable,
  TieredStore,
  TransientStorageError,
  verifyManifest,
  type ObjectStore,
} from '../lib/storage';
import { s3ClientOptions, startS3Server, type TestS3Server } from './support/s3-server';

const MiB = 1024 * 1024;

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Deterministic, non-repeating bytes (xorshift32), so a misplaced part or zero-filled gap cannot hash equal. */
function pseudoRandomBytes(length: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let x = seed >>> 0 || 1;
  for (let at = 0; at < length; at += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    if (at + 4 <= length) out.writeUInt32LE(x, at);
    else for (let i = at; i < length; i++) out[i] = (x >>> ((i - at) * 8)) & 0xff;
  }
  return out;
}

/** Streams `data` in odd-sized chunks so part boundaries never line up with write boundaries. */
function chunked(data: Buffer, chunk = 100_003): Readable {
  return Readable.from(
    (function* () {
      for (let at = 0; at < data.length; at += chunk) yield data.subarray(at, at + chunk);
    })(),
    { objectMode: false },
  );
}

async function rejectsWith<E extends Error>(
  promise: Promise<unknown>,
  type: new (...args: never[]) => E,
  check?: (err: E) => void,
): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(
      err instanceof type,
      `expected ${type.name}, got ${err instanceof Error ? `${err.name}: ${err.message}` : err}`,
    );
    check?.(err);
    return err;
  }
  assert.fail(`expected ${type.name}, but it resolved`);
}

const BAD_KEYS = ['', '../escape', 'a/../../b', '/absolute', 'a//b', 'trailing/', 'a/./b', 'nul\0byte', 'back\\slash'];

/** Known defects of a test server, each with the reason a contract check is skipped on it. */
interface ServerQuirks {
  pagination?: string;
  keyOrder?: string;
  copySourcePlus?: string;
  signatures?: string;
  multipartEtag?: string;
}

const S3RVER_QUIRKS: ServerQuirks = {
  pagination: 's3rver 3.7 encrypts continuation tokens with DES, which OpenSSL 3 in Node 17+ refuses (HTTP 500)',
  keyOrder: "s3rver lists folder by folder, not in byte order ('a/b' before 'a-c')",
  copySourcePlus: 's3rver decodes x-amz-copy-source with decodeURI, which leaves %2B encoded',
  signatures: 's3rver checks only that the access key id exists, not SigV4 signatures',
  multipartEtag: 's3rver gives multipart objects a whole-object MD5 ETag, so a multipart upload cannot be told apart',
};

/** Skips the running test when the backend has `quirk`; returns true if it did. */
function skipFor(t: TestContext, quirks: ServerQuirks, quirk: keyof ServerQuirks): boolean {
  const reason = quirks[quirk];
  if (reason !== undefined) t.skip(reason);
  return reason !== undefined;
}

/** The behaviour every ObjectStore backend must share; run once per backend. */
function objectStoreContract(label: string, open: () => Promise<{ store: ObjectStore; quirks: ServerQuirks }>): void {
  describe(`ObjectStore contract: ${label}`, () => {
    let store: ObjectStore;
    let quirks: ServerQuirks;
    before(async () => {
      ({ store, quirks } = await open());
    });

    it('round-trips a Buffer and returns its sha256 and size', async () => {
      const data = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const put = await store.put('roundtrip/buffer.bin', data);
      assert.deepEqual(put, { key: 'roundtrip/buffer.bin', bytes: 256, sha256: sha256(data) });
      assert.deepEqual(await store.getBytes('roundtrip/buffer.bin'), data);
    });

    it('round-trips a string as UTF-8', async () => {
      const text = 'héllo wörld ✓ — 日本語\n';
      const put = await store.put('roundtrip/text.txt', text, { contentType: 'text/plain' });
      assert.equal(put.bytes, Buffer.byteLength(text));
      assert.equal(put.sha256, sha256(text));
      assert.equal((await store.getBytes('roundtrip/text.txt')).toString('utf8'), text);
    });

    it('round-trips a Readable and an async iterable, hashing while streaming', async () => {
      const data = pseudoRandomBytes(300_000, 7);
      const put = await store.put('roundtrip/stream.bin', chunked(data, 4096));
      assert.deepEqual(put, { key: 'roundtrip/stream.bin', bytes: data.length, sha256: sha256(data) });
      assert.deepEqual(await store.getBytes('roundtrip/stream.bin'), data);

      async function* parts(): AsyncGenerator<Uint8Array> {
        yield new Uint8Array([1, 2, 3]);
        yield new Uint8Array([4, 5]);
      }
      const fromIterable = await store.put('roundtrip/iterable.bin', parts());
      assert.equal(fromIterable.sha256, sha256(Buffer.from([1, 2, 3, 4, 5])));
      assert.deepEqual(await store.getBytes('roundtrip/iterable.bin'), Buffer.from([1, 2, 3, 4, 5]));
    });

    it('round-trips an empty object', async () => {
      const put = await store.put('roundtrip/empty', Buffer.alloc(0));
      assert.deepEqual(put, { key: 'roundtrip/empty', bytes: 0, sha256: sha256('') });
      assert.equal((await store.getBytes('roundtrip/empty')).length, 0);
      assert.equal((await store.head('roundtrip/empty')).bytes, 0);
    });

    it('overwrites an existing key', async () => {
      await store.put('roundtrip/overwrite', 'first version');
      await store.put('roundtrip/overwrite', 'second');
      assert.equal((await store.getBytes('roundtrip/overwrite')).toString(), 'second');
    });

    it('streams from get, whole and by inclusive byte range', async () => {
      const data = pseudoRandomBytes(10_000, 3);
      await store.put('get/ranged.bin', data);
      assert.deepEqual(await readAll(await store.get('get/ranged.bin')), data);
      assert.deepEqual(
        await readAll(await store.get('get/ranged.bin', { range: { start: 100, end: 199 } })),
        data.subarray(100, 200),
      );
      assert.deepEqual(
        await readAll(await store.get('get/ranged.bin', { range: { start: 9_990 } })),
        data.subarray(9_990),
      );
    });

    it('heads an object: size, modification time and, when stored, sha256', async () => {
      const before = Date.now();
      const put = await store.put('head/object.txt', 'twelve bytes');
      const info = await store.head('head/object.txt');
      assert.equal(info.key, 'head/object.txt');
      assert.equal(info.bytes, 12);
      assert.ok(info.modified instanceof Date);
      assert.ok(
        Math.abs(info.modified.getTime() - before) < 60_000,
        `modified ${info.modified.toISOString()} is not recent`,
      );
      if (info.sha256 !== undefined) assert.equal(info.sha256, put.sha256);
    });

    it('lists keys in lexicographic order, paginated by a cursor', async (t) => {
      if (skipFor(t, quirks, 'pagination')) return;
      const keys = Array.from({ length: 25 }, (_, i) => `paged/key-${String(i).padStart(2, '0')}`);
      for (const key of [...keys].reverse()) await store.put(key, key);
      await store.put('pagedX/outside', 'not under the prefix');
      const pages: string[][] = [];
      let cursor: string | undefined;
      do {
        const page = await store.list('paged/', { cursor, limit: 10 });
        pages.push(page.entries.map((e) => e.key));
        for (const e of page.entries) assert.equal(e.bytes, Buffer.byteLength(e.key));
        cursor = page.cursor;
      } while (cursor !== undefined && pages.length < 10);
      assert.deepEqual(
        pages.map((p) => p.length),
        [10, 10, 5],
      );
      assert.deepEqual(pages.flat(), keys);
    });

    it('orders by bytes, not by path depth, and matches partial last segments', async (t) => {
      if (skipFor(t, quirks, 'keyOrder')) return;
      const keys = ['order/B', 'order/_x', 'order/a-c', 'order/a/b', 'order/a0', 'order/é'];
      for (const key of [...keys].reverse()) await store.put(key, 'x');
      assert.deepEqual(
        (await store.list('order/')).entries.map((e) => e.key),
        keys,
      );
      assert.deepEqual(
        (await store.list('order/a')).entries.map((e) => e.key),
        ['order/a-c', 'order/a/b', 'order/a0'],
      );
      assert.deepEqual((await store.list('order/nothing-here')).entries, []);
      assert.deepEqual((await store.list('no-such-folder/')).entries, []);
    });

    it('listAll walks every page', async () => {
      for (let i = 0; i < 25; i++) await store.put(`paged/key-${String(i).padStart(2, '0')}`, 'x');
      const seen: string[] = [];
      for await (const entry of store.listAll('paged/')) seen.push(entry.key);
      assert.equal(seen.length, 25);
      assert.equal(seen[0], 'paged/key-00');
      assert.equal(seen[24], 'paged/key-24');
    });

    it('exists reports presence', async () => {
      await store.put('exists/yes', 'y');
      assert.equal(await store.exists('exists/yes'), true);
      assert.equal(await store.exists('exists/no'), false);
    });

    it('deletes idempotently', async () => {
      await store.put('delete/me', 'bye');
      await store.delete('delete/me');
      assert.equal(await store.exists('delete/me'), false);
      await store.delete('delete/me');
      await store.delete('delete/never-existed');
      assert.deepEqual((await store.list('delete/')).entries, []);
    });

    it('copies an object, leaving the source in place', async () => {
      const data = pseudoRandomBytes(5_000, 11);
      await store.put('copy/source file (1).bin', data);
      await store.copy('copy/source file (1).bin', 'copy/nested/target.bin');
      assert.deepEqual(await store.getBytes('copy/nested/target.bin'), data);
      assert.deepEqual(await store.getBytes('copy/source file (1).bin'), data);
      await store.copy('copy/source file (1).bin', 'copy/source file (1).bin');
      assert.deepEqual(await store.getBytes('copy/source file (1).bin'), data);
    });

    it('copies keys with URL-reserved characters', async (t) => {
      if (skipFor(t, quirks, 'copySourcePlus')) return;
      const key = 'copy/odd+name&x=1?#%.bin';
      await store.put(key, 'reserved');
      await store.copy(key, 'copy/odd-copy.bin');
      assert.equal((await store.getBytes('copy/odd-copy.bin')).toString(), 'reserved');
    });

    it('reports a missing key as ObjectNotFound naming its URI', async () => {
      const uri = store.uri('missing/object');
      const check = (err: ObjectNotFound) => {
        assert.equal(err.uri, uri);
        assert.equal(err.retryable, false);
        assert.equal(err.code, 'ObjectNotFound');
        assert.ok(err.message.includes(uri), err.message);
      };
      await rejectsWith(store.get('missing/object'), ObjectNotFound, check);
      await rejectsWith(store.getBytes('missing/object'), ObjectNotFound, check);
      await rejectsWith(store.head('missing/object'), ObjectNotFound, check);
      await rejectsWith(store.copy('missing/object', 'copy/from-missing'), ObjectNotFound, check);
      assert.equal(await store.exists('copy/from-missing'), false);
    });

    it('rejects unsafe keys before touching the backend', async () => {
      for (const key of BAD_KEYS) {
        const named = (err: InvalidObjectKey) => assert.ok(err.message.includes(JSON.stringify(key)), err.message);
        await rejectsWith(store.put(key, 'x'), InvalidObjectKey, named);
        await rejectsWith(store.get(key), InvalidObjectKey);
        await rejectsWith(store.head(key), InvalidObjectKey);
        await rejectsWith(store.delete(key), InvalidObjectKey);
        await rejectsWith(store.copy('roundtrip/text.txt', key), InvalidObjectKey);
      }
      await rejectsWith(store.list('../'), InvalidObjectKey);
      await rejectsWith(store.list('/abs'), InvalidObjectKey);
    });

    it('leaves nothing visible when the body stream fails', async () => {
      let sent = 0;
      const failing = new Readable({
        read() {
          if (sent >= 3) {
            this.destroy(new Error('source went away'));
            return;
          }
          sent++;
          this.push(pseudoRandomBytes(64 * 1024, sent));
        },
      });
      // The caller's own stream failed: its error comes back unchanged, not disguised as a storage error.
      await assert.rejects(store.put('failed/upload.bin', failing), (err: unknown) => {
        assert.ok(err instanceof Error && !(err instanceof StorageError), String(err));
        assert.equal(err.message, 'source went away');
        return true;
      });
      assert.equal(await store.exists('failed/upload.bin'), false);
      assert.deepEqual((await store.list('failed/')).entries, []);
    });

    it('round-trips a 20 MiB streamed multipart object with the right sha256', async () => {
      const data = pseudoRandomBytes(20 * MiB, 20);
      const put = await store.put('large/20mib.bin', chunked(data));
      assert.equal(put.bytes, data.length);
      assert.equal(put.sha256, sha256(data));
      assert.equal((await store.head('large/20mib.bin')).bytes, data.length);
      const back = await readAll(await store.get('large/20mib.bin'));
      assert.equal(back.length, data.length);
      assert.ok(back.equals(data), 'read-back bytes differ from what was written');
      const tail = await readAll(
        await store.get('large/20mib.bin', { range: { start: 8 * MiB - 5, end: 8 * MiB + 4 } }),
      );
      assert.deepEqual(tail, data.subarray(8 * MiB - 5, 8 * MiB + 5), 'bytes across the first part boundary');
    });

    it('detects an object changed after its manifest was committed', async () => {
      const tiered = new TieredStore({ hot: store, warm: store, cold: store });
      const original = pseudoRandomBytes(4_096, 99);
      const put = await tiered.put('warm://verify/data.bin', original);
      const ref = await commitManifest(tiered, 'warm://verify/manifest.json', {
        kind: 'test',
        name: 'tamper',
        objects: [put],
      });
      assert.deepEqual(await verifyManifest(tiered, await readManifest(tiered, ref)), { objects: 1, bytes: 4_096 });

      const tampered = Buffer.from(original);
      tampered[2_000] ^= 0xff; // same size, different bytes: only the hash can tell
      await store.put('verify/data.bin', tampered);

      const manifest = await readManifest(tiered, ref);
      const mismatch = (err: ChecksumMismatch) => {
        assert.equal(err.uri, 'warm://verify/data.bin');
        assert.equal(err.expectedSha256, sha256(original));
        assert.equal(err.actualSha256, sha256(tampered));
        assert.equal(err.retryable, false);
        assert.ok(err.message.includes('warm://verify/data.bin'), err.message);
      };
      await rejectsWith(verifyManifest(tiered, manifest), ChecksumMismatch, mismatch);
      await rejectsWith(readAll(await openVerified(tiered, manifest.objects[0])), ChecksumMismatch, mismatch);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------

const fsRoot = mkdtempSync(join(tmpdir(), 'flywheel-fs-store-'));
after(() => rmSync(fsRoot, { recursive: true, force: true }));

objectStoreContract('FsStore', async () => ({ store: new FsStore(join(fsRoot, 'contract')), quirks: {} }));

describe('BackgroundSha256', () => {
  it('digests what was given, in order, with many hashes interleaved on one thread', async () => {
    const inputs = [0, 1, 2, 3].map((seed) => pseudoRandomBytes(3 * MiB + seed * 1001, seed + 1));
    const hashes = inputs.map(() => new BackgroundSha256());
    // Interleave 64 KiB pieces of all four, so message order per hash is what is tested.
    for (let at = 0; at < 4 * MiB; at += 64 * 1024) {
      inputs.forEach((input, i) => {
        if (at < input.length) hashes[i].update(input.subarray(at, at + 64 * 1024));
      });
    }
    const digests = await Promise.all(hashes.map((h) => h.digest()));
    assert.deepEqual(digests, inputs.map(sha256));
  });

  it("hashes only a view's bytes, and the caller may reuse its buffer at once", async () => {
    const big = pseudoRandomBytes(2 * MiB, 9);
    const view = big.subarray(1000, 1000 + MiB);
    const expected = sha256(Buffer.from(view));
    const hash = new BackgroundSha256();
    hash.update(view);
    big.fill(0); // after update: the hash must already hold its own copy
    assert.equal(await hash.digest(), expected);
  });

  it('digests an empty input, and waits until queued chunks are hashed', async () => {
    assert.equal(await new BackgroundSha256().digest(), sha256(''));
    const hash = new BackgroundSha256();
    for (let i = 0; i < 8; i++) hash.update(pseudoRandomBytes(MiB, i + 20));
    await hash.caughtUp(0);
    hash.abandon();
  });
});

describe('FsStore specifics', () => {
  it('is named by its file:// URL', () => {
    const store = new FsStore(join(fsRoot, 'named'));
    assert.equal(store.name, `file://${join(fsRoot, 'named')}`);
    assert.equal(store.uri('a/b'), `file://${join(fsRoot, 'named')}/a/b`);
  });

  it('writes through a temp file that list() never shows, and leaves none behind', async () => {
    const store = new FsStore(join(fsRoot, 'atomic'));
    await store.put('dir/object.bin', randomBytes(1000));
    writeFileSync(join(fsRoot, 'atomic', 'dir', '.object.bin.123.flywheel-tmp'), 'a crashed write');
    assert.deepEqual(
      (await store.list('')).entries.map((e) => e.key),
      ['dir/object.bin'],
    );
    assert.deepEqual(readdirSync(join(fsRoot, 'atomic', 'dir')).sort(), ['.object.bin.123.flywheel-tmp', 'object.bin']);
  });

  it('closes the body stream of a write it refuses before reading it', async () => {
    writeFileSync(join(fsRoot, 'not-a-folder'), 'a file where the store would make its folders');
    const store = new FsStore(join(fsRoot, 'not-a-folder', 'store'));
    const body = Readable.from([Buffer.from('never read')]);
    await rejectsWith(store.put('a/b.bin', body), StorageError);
    assert.equal(body.destroyed, true);
  });

  it('refuses a key that is a folder of other objects on disk', async () => {
    const store = new FsStore(join(fsRoot, 'conflict'));
    await store.put('a/b', 'file');
    await rejectsWith(store.put('a/b/c', 'under a file'), PermanentStorageError, (err) =>
      assert.match(err.message, /both an object and a folder/),
    );
    await rejectsWith(store.get('a'), ObjectNotFound);
  });

  it(
    'maps a permission error to AccessDenied',
    { skip: process.getuid?.() === 0 ? 'root ignores file permissions' : false },
    async () => {
      const { chmodSync } = await import('node:fs');
      const store = new FsStore(join(fsRoot, 'denied'));
      await store.put('secret', 'x');
      chmodSync(join(fsRoot, 'denied', 'secret'), 0o000);
      await rejectsWith(store.getBytes('secret'), AccessDenied);
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------

let s3: Promise<TestS3Server> | undefined;
const s3Server = () => (s3 ??= startS3Server());
after(async () => {
  if (s3) await (await s3).stop();
});
const runId = `${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

async function freshBucket(server: TestS3Server, name: string): Promise<S3Store> {
  const store = new S3Store({
    bucket: `flywheel-${name}-${runId}`,
    prefix: 'run/contract',
    client: createS3Client(s3ClientOptions(server)),
  });
  await store.ensureBucket();
  return store;
}

const quirksOf = (server: TestS3Server): ServerQuirks => (server.kind === 's3rver' ? S3RVER_QUIRKS : {});

objectStoreContract('S3Store', async () => {
  const server = await s3Server();
  return { store: await freshBucket(server, 'contract'), quirks: quirksOf(server) };
});

describe('S3Store specifics', () => {
  it('ensureBucket is idempotent', async () => {
    const store = await freshBucket(await s3Server(), 'ensure');
    await store.ensureBucket();
    await store.put('x', 'y');
    await store.ensureBucket();
    assert.equal((await store.getBytes('x')).toString(), 'y');
  });

  it('keeps the sha256 in object metadata for bodies known up front', async () => {
    const store = await freshBucket(await s3Server(), 'meta');
    const put = await store.put('hashed', 'known up front');
    assert.equal((await store.head('hashed')).sha256, put.sha256);
    await store.copy('hashed', 'copied');
    assert.equal((await store.head('copied')).sha256, put.sha256, 'copy keeps the metadata');
  });

  it('uploads streams larger than one part as multipart; buffers in memory go up in one request', async (t) => {
    const server = await s3Server();
    if (skipFor(t, quirksOf(server), 'multipartEtag')) return;
    const store = await freshBucket(server, 'multipart');
    const data = pseudoRandomBytes(17 * MiB, 17);
    const streamed = await store.put('streamed', chunked(data));
    const buffered = await store.put('buffered', data);
    const etag = async (key: string) =>
      (await store.client.send(new HeadObjectCommand({ Bucket: store.bucket, Key: `${store.prefix}/${key}` }))).ETag ??
      '';
    assert.match(await etag('streamed'), /-3"?$/, 'a 3-part upload has an ETag ending in -3');
    assert.doesNotMatch(await etag('buffered'), /-\d+"?$/, 'a buffer under SINGLE_PUT_MAX_BYTES is one PutObject');
    assert.equal(streamed.sha256, buffered.sha256);
    assert.equal((await store.head('buffered')).sha256, buffered.sha256, 'known up front, so kept as metadata');
    assert.equal((await store.head('streamed')).sha256, undefined, 'a stream is hashed only as it is sent');
  });

  it('confines a store to its prefix', async () => {
    const server = await s3Server();
    const client = createS3Client(s3ClientOptions(server));
    const bucket = `flywheel-prefix-${runId}`;
    const left = new S3Store({ bucket, prefix: 'left', client });
    const right = new S3Store({ bucket, prefix: 'right/', client });
    await left.ensureBucket();
    await left.put('only-left', 'l');
    await right.put('only-right', 'r');
    assert.equal(right.name, `s3://${bucket}/right`);
    assert.deepEqual(
      (await left.list('')).entries.map((e) => e.key),
      ['only-left'],
    );
    assert.equal(await right.exists('only-left'), false);
  });

  async function storeWithCredentials(accessKeyId: string, secretAccessKey: string): Promise<S3Store> {
    const server = await s3Server();
    const good = await freshBucket(server, 'creds');
    await good.put('object', 'data');
    const client = createS3Client(
      s3ClientOptions(server, { credentials: { accessKeyId, secretAccessKey }, maxAttempts: 1 }),
    );
    return new S3Store({ bucket: good.bucket, prefix: good.prefix, client });
  }

  async function assertAccessDenied(bad: S3Store): Promise<void> {
    const named = (err: AccessDenied) => {
      assert.equal(err.retryable, false);
      assert.ok(err.message.includes(bad.uri('object')), err.message);
    };
    await rejectsWith(bad.getBytes('object'), AccessDenied, named);
    await rejectsWith(bad.head('object'), AccessDenied, named);
    await rejectsWith(bad.put('object', 'overwrite'), AccessDenied, named);
    await rejectsWith(bad.list(''), AccessDenied);
  }

  it('maps an unknown access key to AccessDenied', async () => {
    await assertAccessDenied(await storeWithCredentials('no-such-key', 'no-such-secret'));
  });

  it('maps a wrong secret (bad signature) to AccessDenied', async (t) => {
    const server = await s3Server();
    if (skipFor(t, quirksOf(server), 'signatures')) return;
    await assertAccessDenied(await storeWithCredentials(server.accessKeyId, 'not-the-secret'));
  });

  it('maps a closed port to a retryable StoreUnreachable', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const address = probe.address();
        probe.close(() => resolve(typeof address === 'object' && address ? address.port : 1));
      });
    });
    const server = await s3Server();
    const client = createS3Client(s3ClientOptions(server, { endpoint: `http://127.0.0.1:${port}`, maxAttempts: 1 }));
    const store = new S3Store({ bucket: 'unreachable', client });
    const started = Date.now();
    const err = await rejectsWith(store.head('x'), StoreUnreachable);
    assert.equal(err.retryable, true);
    assert.equal(err.endpoint, `http://127.0.0.1:${port}`);
    assert.ok(err.message.includes(`127.0.0.1:${port}`), err.message);
    await rejectsWith(store.put('x', 'y'), StoreUnreachable);
    assert.ok(Date.now() - started < 5_000, 'fails fast with maxAttempts 1');
  });

  it('maps throttling and server errors to retryable errors, the rest by status', () => {
    const sdkError = (name: string, status: number) =>
      Object.assign(new Error(`${name} happened`), { name, $metadata: { httpStatusCode: status } });
    const uri = 's3://b/k';
    assert.ok(mapS3Error(sdkError('SlowDown', 503), uri, 'e') instanceof TransientStorageError);
    assert.ok(mapS3Error(sdkError('InternalError', 500), uri, 'e') instanceof TransientStorageError);
    assert.ok(mapS3Error(sdkError('Whatever', 502), uri, 'e') instanceof TransientStorageError);
    assert.ok(mapS3Error(sdkError('NoSuchKey', 404), uri, 'e') instanceof ObjectNotFound);
    assert.ok(mapS3Error(sdkError('SignatureDoesNotMatch', 403), uri, 'e') instanceof AccessDenied);
    assert.ok(mapS3Error(sdkError('NotImplemented', 501), uri, 'e') instanceof PermanentStorageError);
    const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const unreachable = mapS3Error(refused, uri, 'http://host:1');
    assert.ok(unreachable instanceof StoreUnreachable && unreachable.retryable);
    const transient = mapS3Error(sdkError('SlowDown', 503), uri, 'e');
    assert.ok(transient.retryable && transient.message.includes(uri));
  });
});
