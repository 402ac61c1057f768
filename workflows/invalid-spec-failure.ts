import { ApplicationFailure } from '@temporalio/workflow';
import type { z } from 'zod';
import { InvalidSpec, parseSpec } from '../lib/contracts/invalid-spec';

/** Validates a workflow's one argument; a bad spec fails the run at once, non-retryably, naming every bad field. */
export function validateSpec<S extends z.ZodType>(specName: string, schema: S, input: unknown): z.infer<S> {
  try {
    return parseSpec(specName, schema, input);
  } catch (err) {
    if (err instanceof InvalidSpec) {
      throw ApplicationFailure.create({
        message: err.message,
        type: 'InvalidSpec',
        nonRetryable: true,
        details: [err.problems],
      });
    }
    throw err;
  }
}
