import type { z } from 'zod';
import { FlywheelError } from '../common';

export interface SpecProblem {
  /** Dotted path of the bad field, e.g. `sources.2.path`; `(spec)` for the object itself. */
  field: string;
  message: string;
}

/** A spec that fails its schema: names every bad field at once. Never retried. */
export class InvalidSpec extends FlywheelError {
  constructor(
    readonly specName: string,
    readonly problems: SpecProblem[],
  ) {
    super(
      'InvalidSpec',
      `Invalid ${specName} spec (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n` +
        problems.map((p) => `  ${p.field}: ${p.message}`).join('\n'),
      { retryable: false, details: problems },
    );
  }
}

/** Parses `input` with `schema`, or throws InvalidSpec listing every bad field. */
export function parseSpec<S extends z.ZodType>(specName: string, schema: S, input: unknown): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems: SpecProblem[] = [];
  collectProblems(result.error.issues, [], problems);
  throw new InvalidSpec(specName, problems);
}

function collectProblems(issues: readonly z.core.$ZodIssue[], prefix: string[], problems: SpecProblem[]): void {
  for (const issue of issues) {
    const at = [...prefix, ...issue.path.map(String)];
    if (issue.code === 'unrecognized_keys') {
      // One line per unknown field, named, so a typo is found at a glance.
      // An empty key is shown as "" so the message still points at it.
      for (const key of issue.keys)
        problems.push({ field: [...at, key === '' ? '""' : key].join('.'), message: 'unknown field' });
      continue;
    }
    if (issue.code === 'invalid_union') {
      // `false | {...}`: when the value has one option's shape, name that option's bad fields, not just the union.
      const shaped = issue.errors.filter(
        (branch) => !branch.some((i) => i.path.length === 0 && i.code !== 'unrecognized_keys'),
      );
      if (shaped.length === 1) {
        collectProblems(shaped[0], at, problems);
        continue;
      }
    }
    problems.push({ field: at.length ? at.join('.') : '(spec)', message: issue.message });
  }
}
