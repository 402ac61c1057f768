import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import type { z } from 'zod';
import { SourceSpec } from '../lib/collect/source-spec';
import { QualitySpec } from '../lib/quality/spec';
import { specDigest } from '../lib/contracts/digest';
import { InvalidSpec, parseSpec } from '../lib/contracts/invalid-spec';
import { PipelineSpec } from '../lib/contracts/pipeline';
import { StorageCheckSpec } from '../lib/contracts/storage-check';
import { TrainingSpec } from '../lib/contracts/training';

/** Every spec a workflow, the client or the UI form parses, with a complete valid input to mutate. */
const SPECS: { name: string; schema: z.ZodType; valid: Record<string, unknown> }[] = [
  {
    name: 'dataPipeline',
    schema: PipelineSpec,
    valid: {
      dataset: 'demo',
      sources: [
        { type: 'sample', limit: 4 },
        { type: 'path', path: 'data', glob: '**/*.jsonl', fields: { text: 'body', metadata: ['a.b'] } },
        { type: 's3', uri: 's3://bucket/prefix', format: 'jsonl' },
        { type: 'url', url: 'https://example.org/a.jsonl.gz', retries: 1 },
      ],
      dedup: { exact: true, near: { threshold: 0.7, numPerm: 64, bands: 16 } },
      shards: { targetBytes: 1 << 20, validationFraction: 0.1 },
    },
  },
  {
    name: 'trainingRun',
    schema: TrainingSpec,
    valid: {
      run: 'demo',
      dataset: 'warm://datasets/demo/v1/manifest.json',
      init: { model: 'base' },
      earlyStopping: { patience: 2 },
      retention: { keepLast: 3, milestoneEvery: 10 },
    },
  },
  { name: 'storageCheck', schema: StorageCheckSpec, valid: { objects: 2, tier: 'hot' } },
  { name: 'source', schema: SourceSpec, valid: { type: 'path', path: 'data', glob: '*.txt' } },
  { name: 'quality', schema: QualitySpec, valid: {} },
];

/** The dotted paths of every field of a parsed spec: where mutations land. */
function fieldPaths(value: unknown, prefix: string[] = []): string[][] {
  if (typeof value !== 'object' || value === null) return [prefix];
  const children = Object.entries(value).flatMap(([key, child]) => fieldPaths(child, [...prefix, key]));
  return prefix.length === 0 ? children : [prefix, ...children];
}

/** Writes `value` at `path` in a copy of `base`, making objects on the way (also where arrays or scalars were). */
function setPath(base: unknown, path: string[], value: unknown): unknown {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  const copy = (
    Array.isArray(base) ? [...(base as unknown[])] : typeof base === 'object' && base !== null ? { ...base } : {}
  ) as Record<string, unknown>;
  Object.defineProperty(copy, head, {
    value: setPath(copy[head], rest, value),
    enumerable: true,
    writable: true,
    configurable: true,
  });
  return copy;
}

const nested = (depth: number, leaf: unknown): unknown => {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { a: value };
  return value;
};

/** Values a form, a script or an attacker could put in a field: JSON and beyond (what a JS client can send). */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(
    NaN,
    Infinity,
    -Infinity,
    -0,
    2 ** 53 + 1,
    1e308,
    -1,
    0.5,
    '',
    ' ',
    '\u0000',
    '../../etc/passwd',
    '/etc/passwd',
    's3://other-bucket/x',
    'http://169.254.169.254/latest/meta-data',
    'file:///etc/passwd',
    'x'.repeat(100_000),
    '__proto__',
    null,
    true,
    [],
    {},
    undefined,
  ),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer({ min: 1, max: 20_000 }).map((depth) => nested(depth, 1)),
  fc.dictionary(fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'x'), fc.jsonValue(), {
    maxKeys: 3,
  }),
);

const mutation = (paths: string[][]) =>
  fc.record({
    path: fc.oneof(
      fc.constantFrom(...paths),
      fc
        .tuple(fc.constantFrom(...paths), fc.constantFrom('__proto__', 'constructor', 'extra', '0'))
        .map(([p, k]) => [...p, k]),
    ),
    value: hostileValue,
  });

/** Parses like a workflow does; anything thrown but InvalidSpec fails the property. */
function parseOrProblems(name: string, schema: z.ZodType, input: unknown): { spec?: unknown; error?: InvalidSpec } {
  try {
    return { spec: parseSpec(name, schema, input) };
  } catch (err) {
    assert.ok(err instanceof InvalidSpec, `${name}: threw ${(err as Error)?.constructor?.name}: ${String(err)}`);
    return { error: err };
  }
}

function assertListsFields(error: InvalidSpec): void {
  assert.ok(error.problems.length > 0, 'an InvalidSpec names at least one problem');
  for (const problem of error.problems) {
    assert.equal(typeof problem.field, 'string');
    // An unknown key that is itself empty ("": 1) is named by its empty name.
    assert.ok(problem.field.length > 0 || problem.message === 'unknown field', 'every problem names its field');
    assert.equal(typeof problem.message, 'string');
    assert.ok(problem.message.length > 0);
  }
  assert.doesNotThrow(() => JSON.stringify(error.problems), 'the problems travel as failure details');
}

/** A parsed spec travels as JSON (client → Temporal → workflow) and is parsed again: it must come out the same. */
function assertStableOverTheWire(name: string, schema: z.ZodType, spec: unknown): void {
  const wire = JSON.parse(JSON.stringify(spec)) as unknown;
  const again = parseOrProblems(name, schema, wire);
  assert.equal(again.error, undefined, `a parsed ${name} spec must parse again after JSON: ${again.error?.message}`);
  assert.deepEqual(again.spec, wire);
  assert.equal(specDigest(again.spec), specDigest(spec));
}

describe('spec parsers under hostile input', () => {
  for (const { name, schema, valid } of SPECS) {
    const paths = fieldPaths(parseSpec(name, schema, valid));

    it(`${name}: any JSON value gives a spec or an InvalidSpec listing fields`, () => {
      fc.assert(
        fc.property(fc.jsonValue({ maxDepth: 4 }), (input) => {
          const { spec, error } = parseOrProblems(name, schema, input);
          if (error) assertListsFields(error);
          else assertStableOverTheWire(name, schema, spec);
        }),
        { numRuns: 300, includeErrorInReport: true },
      );
    });

    it(`${name}: a valid spec with hostile fields gives a spec or an InvalidSpec listing fields`, () => {
      fc.assert(
        fc.property(fc.array(mutation(paths), { minLength: 1, maxLength: 4 }), (mutations) => {
          let input: unknown = valid;
          for (const { path, value } of mutations) input = setPath(input, path, value);
          const { spec, error } = parseOrProblems(name, schema, input);
          if (error) assertListsFields(error);
          else assertStableOverTheWire(name, schema, spec);
        }),
        { numRuns: 300, includeErrorInReport: true },
      );
    });
  }

  it('accepts no credentials in a source: unknown fields such as secretAccessKey are refused by name', () => {
    for (const field of ['credentials', 'accessKeyId', 'secretAccessKey', 'endpoint', 'headers', 'apiKey']) {
      const { error } = parseOrProblems('source', SourceSpec, { type: 's3', uri: 's3://bucket/x', [field]: 'x' });
      assert.ok(error, `${field} must be refused`);
      assert.deepEqual(
        error.problems.map((p) => p.field),
        [field],
      );
    }
  });

  it("refuses globs that leave the source's folder", () => {
    for (const glob of ['../*', '../../**/*', '/etc/*', 'a/../../b', '..', 'C:/x', '\\\\server\\share']) {
      const { error } = parseOrProblems('source', SourceSpec, { type: 'path', path: 'data', glob });
      assert.ok(error, `glob ${glob} must be refused`);
      assert.deepEqual(
        error.problems.map((p) => p.field),
        ['glob'],
      );
    }
    for (const glob of ['**/*.txt', 'a..b/*.md', '*.{json,jsonl}', 'x/**']) {
      assert.equal(parseOrProblems('source', SourceSpec, { type: 'path', path: 'data', glob }).error, undefined);
    }
  });
});
