import type { Document } from '../document';
import { FlywheelError } from '../common/errors';
import { filterDocument, type FilterResult } from './filter-document';
import type { QualitySpecInput } from './spec';

export interface FilterTask {
  docs: Document[];
  spec: QualitySpecInput;
}

/** A thread's answer: every document's verdict in order, or the failure with what a FlywheelError carries. */
export type FilterTaskReply =
  { results: FilterResult[] } | { failure: { type?: string; message: string; retryable?: boolean; details?: unknown } };

// One spec object per thread: filterDocument parses a spec once per object, and every batch arrives as a new copy.
let lastSpec: { json: string; spec: QualitySpecInput } | undefined;

/** Runs inside a pool thread; the language model loads once per thread, on its first batch. */
export default async function filterTask(task: FilterTask): Promise<FilterTaskReply> {
  try {
    const json = JSON.stringify(task.spec);
    if (lastSpec?.json !== json) lastSpec = { json, spec: task.spec };
    const results: FilterResult[] = [];
    for (const doc of task.docs) results.push(await filterDocument(doc, lastSpec.spec));
    return { results };
  } catch (err) {
    // Errors lose their class crossing threads; the type and retryability are sent as data and rebuilt.
    const e = err as Error;
    if (err instanceof FlywheelError) {
      return { failure: { type: err.type, message: err.message, retryable: err.retryable, details: err.details } };
    }
    return { failure: { message: e?.message ?? String(err) } };
  }
}
