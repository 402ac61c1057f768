import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { canonicalJson, specDigest } from '../lib/contracts/digest';
import { InvalidSpec, parseSpec } from '../lib/contracts/invalid-spec';
import { PipelineSpec } from '../lib/contracts/pipeline';
import { StorageCheckSpec } from '../lib/contracts/storage-check';
import { runCli } from './support/cli';

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

  it('the CLI checks a spec before it connects: a bad spec exits 2 listing every bad field, with no server up', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bad-spec-'));
    try {
      const bad = path.join(dir, 'bad.json');
      fs.writeFileSync(
        bad,
        JSON.stringify({ dataset: 'x', sources: [{ type: 'path' }], shards: { targetBytes: -1 }, bogus: 1 }),
      );
      const trainBad = path.join(dir, 'train.json');
      fs.writeFileSync(trainBad, JSON.stringify({ steps: 'many' }));
      // Nothing listens on port 1: a spec that passed would fail to connect (exit 3), not exit 2.
      const env = { TEMPORAL_ADDRESS: '127.0.0.1:1' };
      const pipeline = await runCli(['pipeline', 'run', '--spec', bad], env);
      assert.equal(pipeline.status, 2, pipeline.stderr);
      assert.match(pipeline.stderr, /Invalid dataPipeline spec \(3 problems\)/);
      assert.match(pipeline.stderr, /sources\.0\.path/);
      assert.match(pipeline.stderr, /shards\.targetBytes/);
      assert.match(pipeline.stderr, /bogus: unknown field/);
      const train = await runCli(['train', 'run', '--spec', trainBad], env);
      assert.equal(train.status, 2, train.stderr);
      assert.match(train.stderr, /Invalid trainingRun spec/);
      const flywheel = await runCli(['flywheel', 'run', '--spec', trainBad], env);
      assert.equal(flywheel.status, 2, flywheel.stderr);
      assert.match(flywheel.stderr, /Invalid flywheelRun spec/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
