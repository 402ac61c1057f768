import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Document } from '../lib/document';
import { sampleCorpus } from '../lib/collect';
import { FlywheelError } from '../lib/common/errors';
import { filterDocument } from '../lib/quality';
import { FilterPool } from '../lib/quality/filter-pool';

/** Moby-Dick's sections and their paragraphs: documents kept and dropped by every family, language included. */
const docs: Document[] = sampleCorpus('moby-dick').documents.flatMap((d) =>
  [d.text, ...d.text.split('\n\n')].map((text, i) => ({
    id: `${d.id}/${i}`,
    text,
    source: 'test',
    added: '2025-01-02T03:04:05.000Z',
    metadata: { origin: 'fixture' },
  })),
);

describe('the quality filters on a pool of threads', () => {
  const pool = new FilterPool({ threads: 2 });
  after(() => pool.close());

  it("gives each document filterDocument's verdict, in order, whichever thread judged it", async () => {
    const batches: Document[][] = [];
    for (let i = 0; i < docs.length; i += 97) batches.push(docs.slice(i, i + 97));
    const threaded = (await Promise.all(batches.map((b) => pool.filter(b, {})))).flat();
    const here = [];
    for (const d of docs) here.push(await filterDocument(d, {}));
    assert.deepEqual(threaded, here);
    assert.ok(here.some((r) => r.kept) && here.some((r) => !r.kept));
  });

  it('keeps a failure a FlywheelError of the same type across threads (a bad spec is InvalidSpec, not retried)', async () => {
    const failure = await pool.filter(docs.slice(0, 3), { minChars: -1 } as never).then(
      () => undefined,
      (err: unknown) => err,
    );
    assert.ok(failure instanceof FlywheelError, String(failure));
    assert.equal(failure.type, 'InvalidSpec');
    assert.equal(failure.retryable, false);
  });

  it('filters on the calling thread with threads: 0', async () => {
    const here = new FilterPool({ threads: 0 });
    assert.equal(here.threads, 0);
    assert.deepEqual(await here.filter(docs.slice(0, 5), {}), await pool.filter(docs.slice(0, 5), {}));
  });
});
