import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalJson, specDigest } from '../lib/contracts/digest';
import { InvalidSpec, parseSpec } from '../lib/contracts/invalid-spec';
import { PipelineSpec } from '../lib/contracts/pipeline';
import { StorageCheckSpec } from '../lib/contracts/storage-check';

describe('specs', () => {
  it('fill defaults for an empty object (the UI form can send {})', () => {
    assert.deepEqual(parseSpec('storageCheck', StorageCheckSpec, {}), {
      name: 'storage-check',
      tier: 'warm',
      objects: 8,
      objectBytes: 1024 * 1024,
      seed: 42,
    });
  });

  it('list every bad field, unknown fields by name', () => {
    assert.throws(
      () => parseSpec('storageCheck', StorageCheckSpec, { objects: 'many', tier: 'lukewarm', colour: 'red', seeed: 1 }),
      (e: unknown) => {
        assert.ok(e instanceof InvalidSpec);
        assert.deepEqual(e.problems.map((p) => p.field).sort(), ['colour', 'objects', 'seeed', 'tier']);
        assert.match(e.message, /Invalid storageCheck spec \(4 problems\)/);
        assert.match(e.message, /colour: unknown field/);
        return true;
      },
    );
  });

  it('a null where an object with cross-field rules belongs is a problem at that field, not a crash', () => {
    for (const near of [null, 7, 'yes', []]) {
      assert.throws(
        () => parseSpec('dataPipeline', PipelineSpec, { dataset: 'x', sources: [{ type: 'sample' }], dedup: { near } }),
        (e: unknown) => e instanceof InvalidSpec && e.problems.map((p) => p.field).join() === 'dedup.near',
      );
    }
  });

  it('a spec that is not an object is one problem at (spec)', () => {
    assert.throws(
      () => parseSpec('storageCheck', StorageCheckSpec, 'objects=3'),
      (e: unknown) => e instanceof InvalidSpec && e.problems.length === 1 && e.problems[0].field === '(spec)',
    );
  });

  it('digest is independent of key order and changes with any value', () => {
    assert.equal(canonicalJson({ b: 1, a: [2, { d: 1, c: 2 }] }), '{"a":[2,{"c":2,"d":1}],"b":1}');
    assert.equal(specDigest({ a: 1, b: 2 }), specDigest({ b: 2, a: 1 }));
    assert.notEqual(specDigest({ a: 1, b: 2 }), specDigest({ a: 1, b: 3 }));
    assert.match(specDigest({}), /^[0-9a-f]{16}$/);
  });
});
