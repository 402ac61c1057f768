import type { Document } from '../document';
import { parseSpec } from '../contracts/invalid-spec';
import { c4Filter, type C4Edits } from './c4';
import { finewebQuality } from './fineweb';
import { gopherQuality } from './gopher-quality';
import { gopherRepetition, type RepetitionThresholds } from './gopher-repetition';
import { identifyLanguage, languageModel } from './language';
import { QualitySpec, nGramThresholds, type QualitySpecInput } from './spec';
import { words as wordsIn } from './text-units';

export type FilterResult = { kept: true; doc: Document; c4?: C4Edits } | { kept: false; rule: string; detail: string };

interface CompiledSpec {
  spec: QualitySpec;
  languages?: ReadonlySet<string>;
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
  if (spec.language !== false) entry.languages = new Set(spec.language.languages);
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
 * Judges one document in FineWeb's order: length bounds, language, Gopher repetition, Gopher quality, C4, then
 * FineWeb's own rules on C4's output, stopping at the first rule it breaks. A kept document comes back with C4's line
 * edits applied and `metadata.language` / `metadata.languageScore` set (a new object when anything changed). Accepts
 * a parsed spec or raw input (`{}` = datatrove's defaults); a bad spec throws InvalidSpec. Async because the language
 * model loads on first use (once per thread); every later call only computes.
 */
export async function filterDocument(doc: Document, spec: QualitySpecInput = {}): Promise<FilterResult> {
  const { spec: s, languages, repetition, stopWords } = compile(spec);
  const chars = doc.text.length;
  if (chars < s.minChars) {
    return { kept: false, rule: 'length.min_chars', detail: `${chars} characters, fewer than ${s.minChars}` };
  }
  if (s.maxChars !== null && chars > s.maxChars) {
    return { kept: false, rule: 'length.max_chars', detail: `${chars} characters, more than ${s.maxChars}` };
  }
  let kept = doc;
  if (s.language !== false) {
    const result = identifyLanguage(await languageModel(), doc.text, s.language, languages!);
    if ('violation' in result) return { kept: false, ...result.violation };
    const { language, score } = result.guess;
    kept = { ...doc, metadata: { ...doc.metadata, language, languageScore: score } };
  }
  // Both Gopher families read the same tokens; cut them once.
  const words = repetition !== undefined || s.gopherQuality !== false ? wordsIn(doc.text) : undefined;
  if (repetition !== undefined) {
    const violation = gopherRepetition(doc.text, repetition, words);
    if (violation) return { kept: false, ...violation };
  }
  if (s.gopherQuality !== false) {
    const violation = gopherQuality(doc.text, s.gopherQuality, stopWords!, words);
    if (violation) return { kept: false, ...violation };
  }
  let c4: C4Edits | undefined;
  let c4Words: number | undefined;
  if (s.c4 !== false) {
    const result = c4Filter(doc.text, s.c4);
    if ('violation' in result) return { kept: false, ...result.violation };
    if (result.text !== doc.text) kept = { ...kept, text: result.text };
    c4 = result.edits;
    c4Words = result.words; // FineWeb's words of C4's output: C4 counted them with its sentences
  }
  if (s.fineweb !== false) {
    const violation = finewebQuality(kept.text, s.fineweb, c4Words);
    if (violation) return { kept: false, ...violation };
  }
  return c4 === undefined ? { kept: true, doc: kept } : { kept: true, doc: kept, c4 };
}
