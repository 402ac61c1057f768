import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import {
  compareKeys,
  evictLeastRecentlyUsed,
  FsStore,
  InvalidTierUri,
  isTierUri,
  ObjectNotFound,
  parseTierPrefix,
  parseTierUri,
  planEviction,
  readAll,
  S3Store,
  StorageError,
  storeFromLocation,
  tieredStoreFromConfig,
  TieredStore,
  tierUri,
  type ListEntry,
  type ObjectStore,
} from '../lib/storage';

const root = mkdtempSync(join(tmpdir(), 'flywheel-tiered-'));
after(() => rmSync(root, { recursive: true, force: true }));

let dirs = 0;
const freshDir = (name: string) => join(root, `${name}-${++dirs}`);

function freshTiers(): { tiered: TieredStore; hot: FsStore; warm: FsStore; cold: FsStore } {
  const hot = new FsStore(freshDir('hot'));
  const warm = new FsStore(freshDir('warm'));
  const cold = new FsStore(freshDir('cold'));
  return { tiered: new TieredStore({ hot, warm, cold }), hot, warm, cold };
}

describe('tier URIs', () => {
  it('parse into a tier and a key', () => {
    assert.deepEqual(parseTierUri('warm://datasets/x/y'), { tier: 'warm', key: 'datasets/x/y' });
    assert.deepEqual(parseTierUri('hot://a'), { tier: 'hot', key: 'a' });
    assert.deepEqual(parseTierUri('cold://checkpoints/run-1/step-000100/model.safetensors'), {
      tier: 'cold',
      key: 'checkpoints/run-1/step-000100/model.safetensors',
    });
    assert.equal(tierUri('warm', 'datasets/x'), 'warm://datasets/x');
    assert.ok(isTierUri('cold://x'));
    assert.ok(!isTierUri('s3://bucket/x'));
  });

  it('reject anything else with InvalidTierUri saying what is wrong', () => {
    const cases: [string, RegExp][] = [
      ['', /missing '<tier>:\/\/'/],
      ['datasets/x', /missing '<tier>:\/\/'/],
      ['warm:/datasets/x', /missing '<tier>:\/\/'/],
      ['tepid://x', /unknown tier 'tepid'/],
      ['s3://bucket/key', /unknown tier 's3'/],
      ['warm://', /empty/],
      ['warm://../etc/passwd', /'\.\.' segment/],
      ['warm:///abs', /absolute/],
      ['warm://a//b', /empty path segment/],
      ['warm://a/', /empty path segment/],
      ['hot://nul\0', /NUL/],
    ];
    for (const [uri, reason] of cases) {
      assert.throws(
        () => parseTierUri(uri),
        (err: unknown) => {
          assert.ok(err instanceof InvalidTierUri, `${JSON.stringify(uri)}: ${String(err)}`);
          assert.equal(err.uri, uri);
          assert.equal(err.retryable, false);
          assert.match(err.message, reason);
          assert.ok(err.message.includes(JSON.stringify(uri)), err.message);
          return true;
        },
      );
    }
  });

  it('parse as prefixes for listing, where a bare tier and a trailing slash are fine', () => {
    assert.deepEqual(parseTierPrefix('warm://'), { tier: 'warm', key: '' });
    assert.deepEqual(parseTierPrefix('warm://datasets/'), { tier: 'warm', key: 'datasets/' });
    assert.deepEqual(parseTierPrefix('hot://shard-0'), { tier: 'hot', key: 'shard-0' });
    assert.throws(() => parseTierPrefix('warm://../'), InvalidTierUri);
    assert.throws(() => parseTierPrefix('lukewarm://'), InvalidTierUri);
  });
});

describe('TieredStore', () => {
  it('routes tier URIs to their stores', async () => {
    const { tiered, hot, warm } = freshTiers();
    const put = await tiered.put('warm://datasets/a.txt', 'in warm');
    assert.deepEqual(put, {
      uri: 'warm://datasets/a.txt',
      bytes: 7,
      sha256: createHash('sha256').update('in warm').digest('hex'),
    });
    assert.equal(await warm.exists('datasets/a.txt'), true);
    assert.equal(await hot.exists('datasets/a.txt'), false);
    assert.equal((await tiered.getBytes('warm://datasets/a.txt')).toString(), 'in warm');
    assert.equal(
      (await readAll(await tiered.get('warm://datasets/a.txt', { range: { start: 3 } }))).toString(),
      'warm',
    );
    const head = await tiered.head('warm://datasets/a.txt');
    assert.equal(head.uri, 'warm://datasets/a.txt');
    assert.equal(head.bytes, 7);
    assert.equal(await tiered.exists('hot://datasets/a.txt'), false);
    assert.equal(tiered.backendUri('warm://datasets/a.txt'), warm.uri('datasets/a.txt'));
    await tiered.delete('warm://datasets/a.txt');
    assert.equal(await tiered.exists('warm://datasets/a.txt'), false);
  });

  it('lists with tier URIs', async () => {
    const { tiered } = freshTiers();
    for (const name of ['b', 'a', 'c']) await tiered.put(`cold://archive/${name}`, name);
    await tiered.put('cold://other', 'x');
    const page = await tiered.list('cold://archive/', { limit: 2 });
    assert.deepEqual(
      page.entries.map((e) => e.uri),
      ['cold://archive/a', 'cold://archive/b'],
    );
    assert.ok(page.cursor !== undefined);
    const rest = await tiered.list('cold://archive/', { cursor: page.cursor });
    assert.deepEqual(
      rest.entries.map((e) => e.uri),
      ['cold://archive/c'],
    );
    const all: string[] = [];
    for await (const entry of tiered.listAll('cold://')) all.push(entry.uri);
    assert.deepEqual(all, ['cold://archive/a', 'cold://archive/b', 'cold://archive/c', 'cold://other']);
  });

  it('copies across tiers by streaming, and within a store with its own copy', async () => {
    const { tiered, warm } = freshTiers();
    const data = Buffer.from(Array.from({ length: 70_000 }, (_, i) => (i * 7) & 0xff));
    await tiered.put('hot://ckpt/step-1.bin', data);
    await tiered.copy('hot://ckpt/step-1.bin', 'warm://ckpt/step-1.bin');
    assert.deepEqual(await warm.getBytes('ckpt/step-1.bin'), data);
    assert.deepEqual(await tiered.getBytes('hot://ckpt/step-1.bin'), data, 'the source stays');

    // One store behind two tiers: the copy must be the store's own (server-side on S3), not a stream.
    const shared = new FsStore(freshDir('shared'));
    let copies = 0;
    const counting: ObjectStore = Object.assign(Object.create(shared) as ObjectStore, {
      copy: async (from: string, to: string) => {
        copies++;
        return shared.copy(from, to);
      },
    });
    const sameStore = new TieredStore({ hot: counting, warm: counting, cold: shared });
    await sameStore.put('hot://x', 'same store');
    await sameStore.copy('hot://x', 'warm://y');
    assert.equal(copies, 1);
    assert.equal((await sameStore.getBytes('warm://y')).toString(), 'same store');
  });

  it('reports a missing copy source as ObjectNotFound and writes nothing', async () => {
    const { tiered } = freshTiers();
    await assert.rejects(tiered.copy('hot://nope', 'cold://nope'), ObjectNotFound);
    assert.equal(await tiered.exists('cold://nope'), false);
  });

  it('rejects bad tier URIs on every operation', async () => {
    const { tiered } = freshTiers();
    await assert.rejects(tiered.put('lukewarm://x', 'y'), InvalidTierUri);
    await assert.rejects(() => tiered.getBytes('warm://../x'), InvalidTierUri);
    await assert.rejects(() => tiered.head('x'), InvalidTierUri);
    await assert.rejects(tiered.copy('hot://a', 'nowhere'), InvalidTierUri);
  });
});

describe('storeFromLocation', () => {
  it('makes an FsStore for a folder path, creating it', () => {
    const dir = join(freshDir('made'), 'deeper', 'still');
    const store = storeFromLocation(dir);
    assert.ok(store instanceof FsStore);
    assert.ok(existsSync(dir));
    assert.equal(store.name, pathToFileURL(dir).href);
  });

  it('accepts a file:// URL', () => {
    const dir = freshDir('url');
    const store = storeFromLocation(pathToFileURL(dir).href);
    assert.ok(store instanceof FsStore);
    assert.ok(existsSync(dir));
  });

  it('makes an S3Store for s3://bucket/prefix', () => {
    const s3 = { region: 'us-east-1', forcePathStyle: true, checksums: 'when_required' as const, maxAttempts: 1 };
    const store = storeFromLocation('s3://flywheel-data/warm/tier', s3);
    assert.ok(store instanceof S3Store);
    assert.equal(store.name, 's3://flywheel-data/warm/tier');
    assert.equal(store.uri('datasets/x'), 's3://flywheel-data/warm/tier/datasets/x');
    assert.equal(storeFromLocation('s3://flywheel-data', s3).name, 's3://flywheel-data');
  });

  it('refuses locations it cannot serve, saying what to use instead', () => {
    assert.throws(
      () =>
        storeFromLocation('s3://', {
          region: 'us-east-1',
          forcePathStyle: true,
          checksums: 'when_required',
          maxAttempts: 1,
        }),
      /s3:\/\/bucket/,
    );
    assert.throws(
      () => storeFromLocation('s3://bucket/x'),
      (err: unknown) => err instanceof StorageError && /S3 settings/.test(err.message),
    );
    assert.throws(
      () => storeFromLocation('gs://bucket/x'),
      /folder path, file:\/\/\/abs\/path or s3:\/\/bucket\/prefix/,
    );
  });

  it('builds the worker tiers from configuration', async () => {
    const base = freshDir('config');
    const tiered = tieredStoreFromConfig({
      tiers: { hot: join(base, 'hot'), warm: join(base, 'warm'), cold: join(base, 'cold') },
      s3: { region: 'us-east-1', forcePathStyle: false, checksums: 'when_supported', maxAttempts: 3 },
    });
    await tiered.put('cold://x', 'archived');
    assert.ok(existsSync(join(base, 'cold', 'x')));
  });
});

const at = (iso: string) => new Date(iso);
const entry = (key: string, bytes: number, modified: string): ListEntry => ({ key, bytes, modified: at(modified) });

describe('planEviction (hot tier LRU policy)', () => {
  const entries = [
    entry('newest', 100, '2024-01-05T00:00:00Z'),
    entry('oldest', 300, '2024-01-01T00:00:00Z'),
    entry('middle', 200, '2024-01-03T00:00:00Z'),
  ];

  it('evicts nothing when everything fits', () => {
    assert.deepEqual(planEviction(entries, 600), { evict: [], bytesBefore: 600, bytesAfter: 600 });
    assert.deepEqual(planEviction([], 0), { evict: [], bytesBefore: 0, bytesAfter: 0 });
  });

  it('evicts least recently modified first, only until the rest fits', () => {
    const plan = planEviction(entries, 350);
    assert.deepEqual(
      plan.evict.map((e) => e.key),
      ['oldest'],
    );
    assert.equal(plan.bytesAfter, 300);
    assert.deepEqual(
      planEviction(entries, 299).evict.map((e) => e.key),
      ['oldest', 'middle'],
    );
  });

  it('evicts everything for a zero budget', () => {
    assert.deepEqual(
      planEviction(entries, 0).evict.map((e) => e.key),
      ['oldest', 'middle', 'newest'],
    );
  });

  it('breaks ties by key, so the plan is deterministic', () => {
    const tied = [entry('b', 10, '2024-01-01T00:00:00Z'), entry('a', 10, '2024-01-01T00:00:00Z')];
    assert.deepEqual(
      planEviction(tied, 10).evict.map((e) => e.key),
      ['a'],
    );
  });

  it('does not reorder its input and rejects a negative budget', () => {
    const copy = [...entries];
    planEviction(entries, 0);
    assert.deepEqual(entries, copy);
    assert.throws(() => planEviction(entries, -1), RangeError);
  });
});

describe('evictLeastRecentlyUsed', () => {
  it('deletes the oldest objects of a store until it fits', async () => {
    const dir = freshDir('lru');
    const store = new FsStore(dir);
    const ages: [string, string][] = [
      ['shards/a', '2024-01-01T00:00:00Z'],
      ['shards/b', '2024-01-02T00:00:00Z'],
      ['shards/c', '2024-01-03T00:00:00Z'],
    ];
    for (const [key, time] of ages) {
      await store.put(key, Buffer.alloc(1000, 1));
      utimesSync(join(dir, key), at(time), at(time));
    }
    const plan = await evictLeastRecentlyUsed(store, 2000);
    assert.deepEqual(
      plan.evict.map((e) => e.key),
      ['shards/a'],
    );
    assert.deepEqual(
      (await store.list('')).entries.map((e) => e.key),
      ['shards/b', 'shards/c'],
    );
  });
});

describe('compareKeys', () => {
  it('orders like UTF-8 bytes, which is how S3 lists', () => {
    const keys = ['a/b', 'a-c', 'a', 'ab', '\u{1F600}', '\uFFFD', 'é', 'Z', ''];
    const byBytes = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
    assert.deepEqual([...keys].sort(compareKeys), byBytes);
    assert.equal(compareKeys('same', 'same'), 0);
  });
});

describe('the bounded hot tier (FLYWHEEL_HOT_MAX_BYTES)', () => {
  it('evicts least recently used objects past the bound, never the one just written', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flywheel-bounded-'));
    const store = tieredStoreFromConfig({
      tiers: { hot: join(dir, 'hot'), warm: join(dir, 'warm'), cold: join(dir, 'cold') },
      s3: { region: 'us-east-1', forcePathStyle: true, checksums: 'when_required', maxAttempts: 1 },
      hotMaxBytes: 2500,
    });
    const kb = Buffer.alloc(1000, 1);
    await store.put('hot://a', kb);
    await new Promise((r) => setTimeout(r, 15));
    await store.put('hot://b', kb);
    await new Promise((r) => setTimeout(r, 15));
    await store.getBytes('hot://a'); // a is now more recently used than b
    await new Promise((r) => setTimeout(r, 15));
    await store.put('hot://c', kb);
    assert.deepEqual(
      [await store.exists('hot://a'), await store.exists('hot://b'), await store.exists('hot://c')],
      [true, false, true],
    );
    await store.put('hot://big', Buffer.alloc(3000, 2));
    assert.equal(await store.exists('hot://big'), true, 'an object larger than the bound is kept until the next write');
    assert.equal(await store.exists('hot://a'), false);
    assert.equal(await store.exists('hot://c'), false);
    await store.put('warm://untouched', Buffer.alloc(5000));
    assert.equal(await store.exists('warm://untouched'), true, 'only the hot tier is bounded');
    rmSync(dir, { recursive: true, force: true });
  });
});
