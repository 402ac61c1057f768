import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { createTrainer, fromSafetensors, MalformedSafetensors, toSafetensors, type NamedTensor } from '../lib/train';

const scratch = mkdtempSync(join(tmpdir(), 'flywheel-safetensors-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

const tensor = (name: string, shape: number[], f: (i: number) => number): NamedTensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, shape, data: Float32Array.from({ length: n }, (_, i) => f(i)) };
};

const sample: NamedTensor[] = [
  tensor('output.weight', [3, 4], (i) => i * 0.25 - 1),
  tensor('embedding.weight', [5, 2], (i) => Math.sin(i) * 1e-3),
  tensor('bias', [3], (i) => [Infinity, -0, 3.4028234663852886e38][i]),
  tensor('empty', [0, 7], () => 0),
];

const headerOf = (buf: Buffer) => {
  const n = Number(buf.readBigUInt64LE(0));
  return { n, text: buf.subarray(8, 8 + n).toString('utf8') };
};

const pythonReason = (() => {
  const probe = spawnSync('python3', ['-c', 'import safetensors, numpy'], { encoding: 'utf8' });
  if (probe.error) return `python3 is not available (${probe.error.message})`;
  return probe.status === 0
    ? undefined
    : `python3 lacks safetensors or numpy: ${probe.stderr.trim().split('\n').pop()}`;
})();
if (pythonReason) console.log(`[safetensors test] skipping the reference-reader checks: ${pythonReason}`);

function python(script: string, ...args: string[]): string {
  const run = spawnSync('python3', ['-c', script, ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  assert.equal(run.status, 0, run.stderr);
  return run.stdout;
}

describe('safetensors', () => {
  it('round-trips tensors and metadata, returning tensors sorted by name', () => {
    const { tensors, metadata } = fromSafetensors(toSafetensors(sample, { format: 'pt', note: 'ünïcode ✓' }));
    assert.deepEqual(metadata, { format: 'pt', note: 'ünïcode ✓' });
    const expected = [...sample].sort((a, b) => (a.name < b.name ? -1 : 1));
    assert.deepEqual(
      tensors.map((t) => t.name),
      expected.map((t) => t.name),
    );
    for (const [i, t] of tensors.entries()) {
      assert.deepEqual(t.shape, expected[i].shape);
      assert.deepEqual(Array.from(t.data), Array.from(expected[i].data));
    }
  });

  it('writes the header as the reference writer does: u64 length, metadata first, names sorted, space padding', () => {
    const buf = toSafetensors(sample, { format: 'pt' });
    const { n, text } = headerOf(buf);
    assert.equal(n % 8, 0);
    assert.match(
      text,
      /^\{"__metadata__":\{"format":"pt"\},"bias":\{"dtype":"F32","shape":\[3\],"data_offsets":\[0,12\]\}/,
    );
    assert.equal(text.trimEnd(), JSON.stringify(JSON.parse(text)));
    assert.match(text, /^[^ ]* {0,7}$/);
    const header = JSON.parse(text) as Record<string, { data_offsets: [number, number] }>;
    assert.deepEqual(Object.keys(header), ['__metadata__', 'bias', 'embedding.weight', 'empty', 'output.weight']);
    assert.deepEqual(header['output.weight'].data_offsets, [52, 100]);
    assert.equal(buf.length, 8 + n + 100);
  });

  it("round-trips a trainer's weights", () => {
    const tokens = Uint32Array.from({ length: 400 }, (_, i) => [5, 9, 13, 9][i % 4]);
    const trainer = createTrainer(
      { model: { contextTokens: 2, embeddingDim: 4, hiddenDim: 6 }, sequenceTokens: 8, batch: { trainBatchSize: 2 } },
      tokens,
    );
    const back = fromSafetensors(toSafetensors(trainer.tensors())).tensors;
    const byName = new Map(back.map((t) => [t.name, t]));
    for (const t of trainer.tensors()) {
      assert.deepEqual(byName.get(t.name)?.shape, t.shape);
      assert.deepEqual(byName.get(t.name)?.data, t.data);
    }
  });

  it('refuses what it cannot write faithfully', () => {
    assert.throws(() => toSafetensors([tensor('a', [2, 2], () => 1)].map((t) => ({ ...t, shape: [3] }))), /needs 3/);
    assert.throws(() => toSafetensors([tensor('a', [1], () => 1), tensor('a', [1], () => 2)]), /two tensors/);
    assert.throws(() => toSafetensors([tensor('__metadata__', [1], () => 1)]), /cannot be called/);
  });

  it('rejects malformed files with MalformedSafetensors', () => {
    const good = toSafetensors(sample);
    const withHeader = (text: string, data = Buffer.alloc(0)) => {
      const json = Buffer.from(text);
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      return Buffer.concat([len, json, data]);
    };
    const cases: [string, Buffer, RegExp][] = [
      ['too short', good.subarray(0, 5), /shorter than its length/],
      ['truncated data', good.subarray(0, good.length - 4), /cover|ends at/],
      ['huge header length', Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]), /over 100000000/],
      ['not JSON', withHeader('{nope'), /not JSON/],
      ['F16', withHeader('{"a":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}', Buffer.alloc(2)), /only F32/],
      ['gap', withHeader('{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', Buffer.alloc(8)), /expected 0/],
      ['shape/bytes', withHeader('{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', Buffer.alloc(4)), /needs 8/],
      ['metadata value', withHeader('{"__metadata__":{"k":1}}'), /not a string/],
    ];
    for (const [what, buf, message] of cases)
      assert.throws(
        () => fromSafetensors(buf),
        (err: unknown) => err instanceof MalformedSafetensors && message.test(err.message),
        what,
      );
  });

  it('is read by the reference safetensors library with the same values and metadata', { skip: pythonReason }, () => {
    const file = join(scratch, 'sample.safetensors');
    writeFileSync(file, toSafetensors(sample, { format: 'pt', model: 'tiny' }));
    const out = python(
      `import json, sys
from safetensors import safe_open
from safetensors.numpy import load_file
t = load_file(sys.argv[1])
with safe_open(sys.argv[1], framework="numpy") as f:
    meta = f.metadata()
print(json.dumps({"meta": meta, "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape),
    "values": [repr(float(x)) for x in v.ravel()]} for k, v in t.items()}}))`,
      file,
    );
    const loaded = JSON.parse(out) as {
      meta: Record<string, string>;
      tensors: Record<string, { dtype: string; shape: number[]; values: string[] }>;
    };
    assert.deepEqual(loaded.meta, { format: 'pt', model: 'tiny' });
    assert.deepEqual(Object.keys(loaded.tensors).sort(), sample.map((t) => t.name).sort());
    for (const t of sample) {
      const got = loaded.tensors[t.name];
      assert.equal(got.dtype, 'float32');
      assert.deepEqual(got.shape, t.shape);
      const values = got.values.map((v) => (v === 'inf' ? Infinity : v === '-inf' ? -Infinity : Number(v)));
      assert.deepEqual(values, Array.from(t.data), t.name);
    }
  });

  it('writes the same bytes as the reference writer', { skip: pythonReason }, () => {
    const source = join(scratch, 'values.json');
    const file = join(scratch, 'reference.safetensors');
    const raw = (t: NamedTensor) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64');
    writeFileSync(source, JSON.stringify(sample.map((t) => ({ ...t, data: raw(t) }))));
    python(
      `import base64, json, sys
import numpy as np
from safetensors.numpy import save_file
spec = json.load(open(sys.argv[1]))
save_file({t["name"]: np.frombuffer(base64.b64decode(t["data"]), dtype="<f4").reshape(t["shape"]) for t in spec},
    sys.argv[2], metadata={"format": "pt"})`,
      source,
      file,
    );
    assert.ok(readFileSync(file).equals(toSafetensors(sample, { format: 'pt' })));
    const { tensors } = fromSafetensors(readFileSync(file));
    assert.deepEqual(
      tensors.map((t) => t.name),
      ['bias', 'embedding.weight', 'empty', 'output.weight'],
    );
  });
});
