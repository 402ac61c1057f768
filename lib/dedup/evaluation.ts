import * as fs from 'node:fs';
import * as path from 'node:path';
import { shingles, type NormalizeOptions } from './normalize';

/**
 * Measuring dedup against ground truth: a labeled corpus of real paragraphs plus seeded near-duplicate variants,
 * the exact Jaccard similarity of every pair of documents that share a shingle, and the recall and precision of a
 * clustering. The accuracy test and the benchmark (against datasketch) both use it.
 */
export interface LabeledDoc {
  id: string;
  text: string;
  /** Index of the base document it derives from. */
  family: number;
  /** How it was made from the base: "base", "edit 2%", "case", "boilerplate", ... */
  variant: string;
}

/** A small seeded PRNG (mulberry32): the corpus is the same on every machine. */
export function seededRandom(seed: number): () => number {
  let s = seed | 0;
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Real prose at hand on any checkout: the READMEs of the installed packages, in a stable order. */
export function packageReadmes(nodeModules: string): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync(nodeModules).sort()) {
    if (name.startsWith('.')) continue;
    const dirs = name.startsWith('@')
      ? fs
          .readdirSync(path.join(nodeModules, name))
          .sort()
          .map((n) => path.join(nodeModules, name, n))
      : [path.join(nodeModules, name)];
    for (const dir of dirs) {
      const readme = ['README.md', 'readme.md', 'Readme.md']
        .map((f) => path.join(dir, f))
        .find((f) => fs.existsSync(f));
      if (readme) out.push(fs.readFileSync(readme, 'utf8'));
    }
  }
  return out;
}

/** Paragraphs of prose from markdown or plain text: code blocks, tables, headings and short lines left out. */
export function proseParagraphs(markdown: string, minWords = 25): string[] {
  const out: string[] = [];
  const withoutCode = markdown.replace(/```[\s\S]*?```/g, '\n\n');
  for (const block of withoutCode.split(/\n\s*\n/)) {
    const lines = block.split('\n').filter((l) => !/^\s*(#|\||<|!\[|\[!\[|```| {4})/.test(l));
    const text = lines.join(' ').replace(/\s+/g, ' ').trim();
    const words = text.split(' ');
    if (words.length < minWords) continue;
    const alphabetic = words.filter((w) => /^[A-Za-z][a-z'’-]*[,.;:!?]?$/.test(w)).length;
    if (alphabetic / words.length >= 0.7) out.push(text);
  }
  return out;
}

export interface CorpusOptions {
  /** Base documents to build (fewer if the paragraphs run out). */
  bases: number;
  seed: number;
  /** Word-edit rates of the edited variants. */
  editRates?: number[];
  minWords?: number;
  maxWords?: number;
}

const DEFAULT_EDIT_RATES = [0.01, 0.02, 0.03, 0.05, 0.1, 0.2];

/**
 * Base documents are runs of consecutive paragraphs (minWords..maxWords words); each gets variants: word edits
 * (substitute, delete, insert, swap) at each rate, case changes, boilerplate added before or after (a paragraph from
 * elsewhere in the corpus), and a combination. Boilerplate paragraphs are set aside and not used as bases.
 */
export function buildLabeledCorpus(paragraphs: string[], opts: CorpusOptions): LabeledDoc[] {
  const random = seededRandom(opts.seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)];
  const minWords = opts.minWords ?? 60;
  const maxWords = opts.maxWords ?? 400;
  const boilerplate = paragraphs.slice(0, 8);
  const vocabulary = [...new Set(paragraphs.join(' ').split(' '))];
  const bases: string[] = [];
  let current: string[] = [];
  for (const p of paragraphs.slice(boilerplate.length)) {
    current.push(...p.split(' '));
    if (current.length >= minWords) {
      bases.push(current.slice(0, maxWords).join(' '));
      current = [];
      if (bases.length === opts.bases) break;
    }
  }
  const edit = (words: string[], rate: number): string[] => {
    const out = [...words];
    const edits = Math.max(1, Math.round(words.length * rate));
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(random() * out.length);
      const op = random();
      if (op < 0.4) out[at] = pick(vocabulary);
      else if (op < 0.6 && out.length > 1) out.splice(at, 1);
      else if (op < 0.8) out.splice(at, 0, pick(vocabulary));
      else if (at + 1 < out.length) [out[at], out[at + 1]] = [out[at + 1], out[at]];
    }
    return out;
  };
  const changeCase = (words: string[]) =>
    words.map((w) => (random() < 0.3 ? w.toUpperCase() : random() < 0.3 ? w[0].toUpperCase() + w.slice(1) : w));
  const docs: LabeledDoc[] = [];
  bases.forEach((base, family) => {
    const words = base.split(' ');
    const add = (variant: string, text: string) =>
      docs.push({ id: `f${family}-${docs.length}`, text, family, variant });
    add('base', base);
    for (const rate of opts.editRates ?? DEFAULT_EDIT_RATES) add(`edit ${rate * 100}%`, edit(words, rate).join(' '));
    add('case', changeCase(words).join(' '));
    const extra = pick(boilerplate);
    add('boilerplate', random() < 0.5 ? `${extra} ${base}` : `${base} ${extra}`);
    add('case + edit 1%', changeCase(edit(words, 0.01)).join(' '));
  });
  // Shuffle so that variants do not always follow their base.
  for (let i = docs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [docs[i], docs[j]] = [docs[j], docs[i]];
  }
  return docs;
}

/** Exact Jaccard similarity of every pair of documents that share at least one shingle (others are 0). */
export function exactPairSimilarities(
  texts: readonly string[],
  ngram: number,
  opts: NormalizeOptions = {},
): Map<number, number> {
  const sets = texts.map((t) => shingles(t, ngram, opts));
  const postings = new Map<string, number[]>();
  sets.forEach((set, doc) => {
    for (const s of set) {
      const list = postings.get(s);
      if (list) list.push(doc);
      else postings.set(s, [doc]);
    }
  });
  const n = texts.length;
  const shared = new Map<number, number>();
  for (const docs of postings.values())
    for (let i = 0; i < docs.length; i++)
      for (let j = i + 1; j < docs.length; j++) {
        const key = docs[i] * n + docs[j];
        shared.set(key, (shared.get(key) ?? 0) + 1);
      }
  const out = new Map<number, number>();
  for (const [key, inter] of shared) {
    const a = Math.floor(key / n);
    const b = key % n;
    out.set(key, inter / (sets[a].size + sets[b].size - inter));
  }
  return out;
}

/** Key of the unordered pair (a, b) in `exactPairSimilarities`' map. */
export const pairKey = (a: number, b: number, n: number) => (a < b ? a * n + b : b * n + a);

export interface DedupAccuracy {
  /** Pairs with true Jaccard ≥ threshold. */
  similarPairs: number;
  /** Share of those that ended in the same cluster. */
  pairRecall: number;
  removed: number;
  /** Share of removed documents with true Jaccard ≥ minSupport with some member of their cluster. */
  removedPrecision: number;
  /** Share of same-cluster pairs with true Jaccard ≥ minSupport. */
  pairPrecision: number;
}

/**
 * Scores a clustering (cluster[d] = an id shared by a cluster's documents, e.g. its kept document) against the
 * exact similarities.
 */
export function scoreClusters(
  cluster: ArrayLike<number>,
  removed: ArrayLike<boolean>,
  similarities: Map<number, number>,
  threshold: number,
  minSupport: number,
): DedupAccuracy {
  const n = cluster.length;
  let similarPairs = 0;
  let found = 0;
  const supported = new Uint8Array(n);
  for (const [key, j] of similarities) {
    const a = Math.floor(key / n);
    const b = key % n;
    const same = cluster[a] === cluster[b];
    if (j >= threshold) {
      similarPairs++;
      if (same) found++;
    }
    if (same && j >= minSupport) supported[a] = supported[b] = 1;
  }
  const members = new Map<number, number[]>();
  for (let d = 0; d < n; d++) {
    const list = members.get(cluster[d]);
    if (list) list.push(d);
    else members.set(cluster[d], [d]);
  }
  let clusterPairs = 0;
  let goodPairs = 0;
  for (const list of members.values())
    for (let i = 0; i < list.length; i++)
      for (let k = i + 1; k < list.length; k++) {
        clusterPairs++;
        if ((similarities.get(pairKey(list[i], list[k], n)) ?? 0) >= minSupport) goodPairs++;
      }
  let removedCount = 0;
  let removedSupported = 0;
  for (let d = 0; d < n; d++) {
    if (!removed[d]) continue;
    removedCount++;
    if (supported[d]) removedSupported++;
  }
  return {
    similarPairs,
    pairRecall: similarPairs ? found / similarPairs : 1,
    removed: removedCount,
    removedPrecision: removedCount ? removedSupported / removedCount : 1,
    pairPrecision: clusterPairs ? goodPairs / clusterPairs : 1,
  };
}
