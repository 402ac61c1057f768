import { z } from 'zod';

/**
 * One document, as every stage sees it (dolma's schema): collection unifies every source format into this,
 * and filters, dedup and tokenization read and write only this.
 */
export const Document = z.object({
  /** Stable and unique within a dataset: derived from the source location when the source gives none. */
  id: z.string().min(1),
  text: z.string(),
  /** Where it came from: a file path, s3:// URI, URL or `sample:<name>`, plus `#line` / `!entry` locators. */
  source: z.string().min(1),
  /** When Flywheel collected it (ISO 8601). */
  added: z.string(),
  /** When the source says it was written (ISO 8601), if it says. */
  created: z.string().optional(),
  metadata: z.record(z.string(), z.unknown()),
});
export type Document = z.infer<typeof Document>;

/** A record that could not become a document, kept with its reason so nothing is lost silently. */
export const QuarantineRecord = z.object({
  source: z.string(),
  /** Where inside the source: line number, tar entry, MIME part, byte offset. */
  location: z.string().optional(),
  reason: z.string(),
  /** What was wrong, for a person: the parse error, the limit exceeded, ... */
  detail: z.string().optional(),
  /** The first bytes of the offending record (text, maybe repaired), to find it again. */
  sample: z.string().optional(),
});
export type QuarantineRecord = z.infer<typeof QuarantineRecord>;

/** A document a filter or dedup stage removed, with the rule that removed it. */
export interface RejectedDocument {
  doc: Document;
  stage: string;
  rule: string;
  detail?: string;
}
