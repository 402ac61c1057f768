import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { dedupJsonl, MinHasher, shingles } from '../lib/dedup';
import {
  buildLabeledCorpus,
  exactPairSimilarities,
  packageReadmes,
  proseParagraphs,
  scoreClusters,
  seededRandom,
  type LabeledDoc,
} from '../lib/dedup/evaluation';
import type { Benchmark } from './harness';

const MB = 1e6;
const ROOT = path.join(__dirname, '..');
const VENV = path.join(os.tmpdir(), 'flywheel-bench-datasketch-venv');

/**
 * A large corpus for speed: documents drawn word by word from the real tokens of the installed READMEs (their
 * punctuation, case and non-ASCII share as found), 80–400 words each, with 15% near-duplicate variants (2% of words
 * edited) of earlier documents.
 */
function speedCorpus(docs: number, seed: number): string[] {
  const tokens = packageReadmes(path.join(ROOT, 'node_modules'))
    .flatMap((m) => proseParagraphs(m, 10))
    .join(' ')
    .split(' ');
  const random = seededRandom(seed);
  const out: string[] = [];
  for (let i = 0; i < docs; i++) {
    if (i > 100 && random() < 0.15) {
      const words = out[Math.floor(random() * i)].split(' ');
      for (let e = 0; e < words.length * 0.02; e++)
        words[Math.floor(random() * words.length)] = tokens[Math.floor(random() * tokens.length)];
      out.push(words.join(' '));
      continue;
    }
    const length = 80 + Math.floor(random() * 320);
    const words: string[] = [];
    for (let w = 0; w < length; w++) words.push(tokens[Math.floor(random() * tokens.length)]);
    out.push(words.join(' '));
  }
  return out;
}

function writeJsonl(file: string, texts: readonly string[]): number {
  fs.writeFileSync(file, texts.map((text, i) => JSON.stringify({ id: `doc-${i}`, text })).join('\n') + '\n');
  return fs.statSync(file).size;
}

/** Installs datasketch into a throwaway virtual environment (reused across runs); the reason when it cannot. */
function ensureDatasketch(): { python: string } | { skipped: string } {
  const python = path.join(VENV, 'bin', 'python');
  try {
    if (!fs.existsSync(python)) execFileSync('python3', ['-m', 'venv', VENV], { stdio: 'pipe' });
    execFileSync(python, ['-c', 'import datasketch'], { stdio: 'pipe' });
    return { python };
  } catch {
    try {
      execFileSync(path.join(VENV, 'bin', 'pip'), ['install', '--quiet', 'datasketch'], {
        stdio: 'pipe',
        timeout: 300_000,
      });
      execFileSync(python, ['-c', 'import datasketch'], { stdio: 'pipe' });
      return { python };
    } catch (err) {
      return { skipped: `datasketch could not be installed (${(err as Error).message.split('\n')[0]})` };
    }
  }
}

export function dedupBenchmarks(): Benchmark[] {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-dedup-'));
  // Also when only some of these benchmarks run (the last one's teardown removes it otherwise).
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  let texts: string[] = [];
  let textBytes = 0;
  let input = '';
  let inputBytes = 0;
  const prepareSpeedCorpus = async () => {
    if (input) return;
    texts = speedCorpus(100_000, 11);
    textBytes = texts.reduce((n, t) => n + Buffer.byteLength(t), 0);
    input = path.join(dir, 'speed.jsonl');
    inputBytes = writeJsonl(input, texts);
  };
  let round = 0;
  const command = (workers: number, verify: 'exact' | 'estimate' = 'exact') => ({
    label: `flywheel dedup --workers ${workers} --verify ${verify}`,
    async run() {
      const stats = await dedupJsonl(input, path.join(dir, `out-${workers}-${round++ % 2}`), { workers, verify });
      return { value: inputBytes / MB / stats.seconds };
    },
  });

  // The datasketch comparison: speed on 20k documents of the speed corpus, recall on the labeled corpus.
  let sample = '';
  let sampleBytes = 0;
  let datasketch: { python: string } | { skipped: string } = { skipped: 'not set up' };
  const accuracy = { ours: NaN, theirs: NaN, params: '', sameShingles: '' };
  const runDatasketch = (file: string, shingleFile?: string) => {
    if ('skipped' in datasketch) throw new Error(datasketch.skipped);
    const args = [
      path.join(__dirname, 'dedup_datasketch.py'),
      file,
      '0.8',
      '128',
      ...(shingleFile ? [shingleFile] : []),
    ];
    const out = execFileSync(datasketch.python, args, {
      env: { ...process.env, OMP_NUM_THREADS: '1', OPENBLAS_NUM_THREADS: '1' },
      maxBuffer: 1 << 28,
    });
    return JSON.parse(out.toString()) as {
      seconds: number;
      cluster: number[];
      bands: number;
      rows: number;
      sameShingles?: number;
    };
  };
  const measureRecall = async () => {
    const paragraphs = [...new Set(packageReadmes(path.join(ROOT, 'node_modules')).flatMap((m) => proseParagraphs(m)))];
    const labeled: LabeledDoc[] = buildLabeledCorpus(paragraphs, { bases: 400, seed: 7 });
    const file = path.join(dir, 'labeled.jsonl');
    fs.writeFileSync(file, labeled.map((d) => JSON.stringify({ id: d.id, text: d.text })).join('\n') + '\n');
    const shingleFile = path.join(dir, 'labeled-shingles.jsonl');
    fs.writeFileSync(
      shingleFile,
      labeled.map((d) => JSON.stringify({ shingles: [...shingles(d.text, 5)] })).join('\n') + '\n',
    );
    const truth = exactPairSimilarities(
      labeled.map((d) => d.text),
      5,
    );
    const out = path.join(dir, 'labeled-out');
    await dedupJsonl(file, out, { workers: 0, threshold: 0.8, numPerm: 128, ngram: 5 });
    const at = new Map(labeled.map((d, i) => [d.id, i]));
    const cluster = Uint32Array.from(labeled, (_, i) => i);
    const removed = labeled.map(() => false);
    for (const line of fs.readFileSync(path.join(out, 'duplicates.jsonl'), 'utf8').split('\n')) {
      if (!line) continue;
      const r = JSON.parse(line) as { id: string; duplicate_of: string };
      cluster[at.get(r.id) as number] = at.get(r.duplicate_of) as number;
      removed[at.get(r.id) as number] = true;
    }
    const ours = scoreClusters(cluster, removed, truth, 0.8, 0.7);
    accuracy.ours = ours.pairRecall;
    process.stderr.write(`flywheel on the labeled corpus: ${JSON.stringify(ours)}\n`);
    if ('skipped' in datasketch) return;
    const theirs = runDatasketch(file, shingleFile);
    const score = scoreClusters(
      theirs.cluster,
      theirs.cluster.map((c, i) => c !== i),
      truth,
      0.8,
      0.7,
    );
    process.stderr.write(`datasketch on the labeled corpus: ${JSON.stringify(score)}\n`);
    accuracy.theirs = score.pairRecall;
    accuracy.params = `${theirs.bands}×${theirs.rows}`;
    accuracy.sameShingles = `${theirs.sameShingles}/${labeled.length}`;
  };

  const memory = { docs100k: NaN, docs50k: NaN, projectedGiB: NaN };

  return [
    {
      // Absolute: the issue asks for ≥ 25 MB/s of text per core. Baseline is that fixed figure, so ratio ≥ 1 = met.
      name: 'dedup signatures per core (normalize + 5-gram shingles + 128 permutations, one thread)',
      unit: 'MB/s',
      target: 1,
      setup: prepareSpeedCorpus,
      candidate: {
        label: 'MinHasher.sign',
        async run() {
          const hasher = new MinHasher({ numPerm: 128, ngram: 5 });
          const out = new Uint32Array(128);
          const started = performance.now();
          for (const t of texts) hasher.sign(t, out, 0);
          return { value: textBytes / MB / ((performance.now() - started) / 1000) };
        },
      },
      baseline: { label: 'issue target 25 MB/s/core', run: async () => ({ value: 25 }) },
    },
    {
      name: 'dedup command, 100k documents: 2 worker threads vs 1',
      unit: 'MB/s',
      target: 1.7,
      rounds: 3,
      setup: prepareSpeedCorpus,
      candidate: command(2),
      baseline: command(1),
    },
    {
      // What exact verification costs: a second read of the candidates' texts, their shingle sets, merge comparisons.
      name: 'dedup command, 100k documents, 2 threads: exact verification vs verification by estimate',
      unit: 'MB/s',
      target: 0.7,
      rounds: 3,
      setup: prepareSpeedCorpus,
      candidate: command(2, 'exact'),
      baseline: command(2, 'estimate'),
    },
    {
      name: 'dedup vs datasketch 2.0 per core: same 20k documents, shingles, num_perm 128, threshold 0.8',
      unit: 'MB/s',
      target: 20,
      rounds: 3,
      async setup() {
        await prepareSpeedCorpus();
        sample = path.join(dir, 'sample-20k.jsonl');
        sampleBytes = writeJsonl(sample, texts.slice(0, 20_000));
        datasketch = ensureDatasketch();
        await measureRecall();
      },
      candidate: {
        get label() {
          return `flywheel, 1 thread; recall ${accuracy.ours.toFixed(3)}`;
        },
        async run() {
          const stats = await dedupJsonl(sample, path.join(dir, 'sample-out'), { workers: 0 });
          return { value: sampleBytes / MB / stats.seconds };
        },
      },
      baseline: {
        get label() {
          return 'skipped' in datasketch
            ? `SKIPPED: ${datasketch.skipped}`
            : `datasketch ${accuracy.params}; recall ${accuracy.theirs.toFixed(3)}; same shingles ${accuracy.sameShingles}`;
        },
        async run() {
          if ('skipped' in datasketch) return { value: NaN };
          return { value: sampleBytes / MB / runDatasketch(sample).seconds };
        },
      },
    },
    {
      // Peak RSS of the command (a child process, 2 workers) at 50k and 100k documents, extrapolated linearly to 10M.
      name: 'dedup memory at 10M documents: 24 GiB ÷ projected peak RSS',
      unit: 'GiB',
      target: 1,
      rounds: 1,
      setup: prepareSpeedCorpus,
      candidate: { label: 'memory bound', run: async () => ({ value: 24 }) },
      baseline: {
        get label() {
          return `projected peak (100k docs: ${memory.docs100k} MB, 50k: ${memory.docs50k} MB)`;
        },
        async run() {
          const peak = (file: string) => {
            const out = path.join(dir, 'mem-out');
            execFileSync(
              process.execPath,
              [
                path.join(ROOT, 'bin', 'flywheel.js'),
                'dedup',
                '--input',
                file,
                '--out',
                out,
                '--workers',
                '2',
                '--no-progress',
              ],
              { stdio: 'pipe' },
            );
            return (JSON.parse(fs.readFileSync(path.join(out, 'stats.json'), 'utf8')) as { peakRssMB: number })
              .peakRssMB;
          };
          const half = path.join(dir, 'speed-50k.jsonl');
          writeJsonl(half, texts.slice(0, 50_000));
          memory.docs50k = peak(half);
          memory.docs100k = peak(input);
          const perDoc = (memory.docs100k - memory.docs50k) / 50_000;
          memory.projectedGiB = (memory.docs100k + perDoc * (10_000_000 - 100_000)) / 1024;
          return { value: memory.projectedGiB };
        },
      },
      async teardown() {
        fs.rmSync(dir, { recursive: true, force: true });
      },
    },
  ];
}
