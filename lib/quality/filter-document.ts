import type { Document } from '../document';
import { parseSpec } from '../contracts/invalid-spec';
import { c4Filter, type C4Edits } from './c4';
import { gopherQuality } from './gopher-quality';
import { gopherRepetition, type RepetitionThresholds } from './gopher-repetition';
import { QualitySpec, nGramThresholds, type QualitySpecInput } from './spec';
import { wordTokens } from './text-units';

export type FilterResult = { kept: true; doc: Document; c4?: C4Edits } | { kept: false; rule: string; detail: string };

interface CompiledSpec {
  spec: QualitySpec;
  repetition?: RepetitionThresholds;
  stopWords?: ReadonlySet<string>;
}

// Keyed by the spec object: a stage filters thousands of documents with one spec and parses it once.
const compiled = new WeakMap<object, CompiledSpec>();

function compile(input: QualitySpecInput): CompiledSpec {
  let entry = compiled.get(input);
  if (entry !== undefined) return entry;
  const spec = parseSpec('quality', QualitySpec, input);
  entry = { spec };
  if (spec.gopherRepetition !== false) {
    entry.repetition = {
      spec: spec.gopherRepetition,
      topNGrams: nGramThresholds(spec.gopherRepetition.topNGramCharFrac, 'top'),
      dupNGrams: nGramThresholds(spec.gopherRepetition.dupNGramCharFrac, 'dup'),
    };
  }
  if (spec.gopherQuality !== false) entry.stopWords = new Set(spec.gopherQuality.stopWords);
  compiled.set(input, entry);
  return entry;
}

/**
 * Judges one document: length bounds, then Gopher repetition, Gopher quality and C4, stopping at the first rule it
 * breaks. A kept document comes back with C4's line edits applied (a new object when the text changed). Accepts a
 * parsed spec or raw input (`{}` = datatrove's defaults); a bad spec throws InvalidSpec.
 */
export function filterDocument(doc: Document, spec: QualitySpecInput = {}): FilterResult {
  const { spec: s, repetition, stopWords } = compile(spec);
  const chars = doc.text.length;
  if (chars < s.minChars) {
    return { kept: false, rule: 'length.min_chars', detail: `${chars} characters, fewer than ${s.minChars}` };
  }
  if (s.maxChars !== null && chars > s.maxChars) {
    return { kept: false, rule: 'length.max_chars', detail: `${chars} characters, more than ${s.maxChars}` };
  }
  // Both Gopher families read the same tokens; cut them once.
  const tokens = repetition !== undefined || s.gopherQuality !== false ? wordTokens(doc.text) : [];
  if (repetition !== undefined) {
    const violation = gopherRepetition(doc.text, repetition, tokens);
    if (violation) return { kept: false, ...violation };
  }
  if (s.gopherQuality !== false) {
    const violation = gopherQuality(doc.text, s.gopherQuality, stopWords!, tokens);
    if (violation) return { kept: false, ...violation };
  }
  if (s.c4 !== false) {
    const result = c4Filter(doc.text, s.c4);
    if ('violation' in result) return { kept: false, ...result.violation };
    const edited = result.text === doc.text ? doc : { ...doc, text: result.text };
    return { kept: true, doc: edited, c4: result.edits };
  }
  return { kept: true, doc };
}
