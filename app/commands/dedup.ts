import * as os from 'node:os';
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { DedupProgress, DedupStats } from '../../lib/dedup/dedup-jsonl';

interface DedupCommandOptions {
  input: string;
  out: string;
  threshold: number;
  ngram: number;
  numPerm: number;
  bands?: number;
  workers: number;
  exactField?: string;
  verify: 'exact' | 'estimate' | false;
  normalizeNumbers?: boolean;
  normalizeDiacritics?: boolean;
  index: string[];
  progress: boolean;
}

function wholeNumber(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number ≥ ${min}`);
    return n;
  };
}

function similarity(value: string): number {
  const n = Number(value);
  if (!(n > 0 && n < 1)) throw new InvalidArgumentError('expected a number strictly between 0 and 1, e.g. 0.8');
  return n;
}

/** Progress on stderr: a bar on a terminal, a plain line every few seconds otherwise (logs, CI). */
function progressReporter(enabled: boolean): { update(p: DedupProgress): void; stop(): void } {
  if (!enabled) return { update() {}, stop() {} };
  // Short runs stay quiet: progress starts after the first second.
  const begun = Date.now();
  const mb = (bytes: number) => (bytes / 1e6).toFixed(0);
  if (process.stderr.isTTY) {
    // Loaded only here: the bar library matters only on a terminal.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { SingleBar, Presets } = require('cli-progress') as typeof import('cli-progress');
    const bar = new SingleBar(
      {
        format: 'dedup {phase} [{bar}] {percentage}% | {doneMB}/{totalMB} MB | {docs} docs | eta {eta}s',
        stream: process.stderr,
      },
      Presets.shades_classic,
    );
    let started = false;
    return {
      update(p) {
        if (Date.now() - begun < 1000) return;
        const payload = { phase: p.phase.padEnd(7), doneMB: mb(p.bytesDone), totalMB: mb(p.bytesTotal), docs: p.docs };
        if (!started) bar.start(Math.max(p.bytesTotal, 1), p.bytesDone, payload);
        else bar.update(p.bytesDone, payload);
        started = true;
      },
      stop: () => bar.stop(),
    };
  }
  let last = 0;
  let phase = '';
  return {
    update(p) {
      const now = Date.now();
      if (now - begun < 1000) return;
      if (p.phase === phase && now - last < 5000) return;
      last = now;
      phase = p.phase;
      const pct = p.bytesTotal ? Math.round((100 * p.bytesDone) / p.bytesTotal) : 100;
      process.stderr.write(`dedup: ${p.phase} ${pct}% (${mb(p.bytesDone)}/${mb(p.bytesTotal)} MB, ${p.docs} docs)\n`);
    },
    stop() {},
  };
}

const collect = (value: string, previous: string[]) => [...previous, value];

function summary(stats: DedupStats, out: string): string {
  const against = stats.indexed
    ? `; ${stats.indexDuplicates} repeat one of the ${stats.indexed} indexed documents`
    : '';
  return (
    `${stats.docs} documents: kept ${stats.kept}, removed ${stats.removed} ` +
    `(${stats.exactDuplicates} exact, ${stats.nearDuplicates} near) in ${stats.clusters} clusters${against}; ` +
    `${stats.bands} bands × ${stats.rows} rows (S-curve midpoint ${stats.sCurveMidpoint}); ` +
    `${stats.seconds} s, ${stats.mbPerSecond} MB/s. Wrote ${out}/kept.jsonl, duplicates.jsonl, index.bin, stats.json`
  );
}

/** `flywheel dedup`: near-duplicate dedup of one JSON-lines file, in process on worker threads, no Temporal. */
export function registerDedupCommand(program: Command): void {
  program
    .command('dedup')
    .description('remove near-duplicate documents (MinHash LSH) from a JSON-lines file, in process on worker threads')
    .requiredOption('--input <file>', 'JSON lines, one {"id": ..., "text": ...} per line (other fields pass through)')
    .requiredOption(
      '--out <dir>',
      "writes kept.jsonl, duplicates.jsonl, index.bin (the kept documents' signatures) and stats.json here",
    )
    .option('--threshold <t>', 'Jaccard similarity from which documents are duplicates', similarity, 0.8)
    .option('--ngram <n>', 'words per shingle', wholeNumber(1), 5)
    .option('--num-perm <n>', 'MinHash permutations', wholeNumber(1), 128)
    .option(
      '--bands <b>',
      'fix the bands (must divide --num-perm) instead of deriving them from the threshold',
      wholeNumber(1),
    )
    .option(
      '--workers <n>',
      'worker threads that compute signatures',
      wholeNumber(1),
      Math.min(os.availableParallelism(), 8),
    )
    .option('--exact-field <name>', 'exact dedup compares this field (e.g. url) instead of the normalized text')
    .addOption(
      new Option(
        '--verify <how>',
        'check LSH candidate pairs by the exact Jaccard of their shingle sets (exact: no pair below --threshold is ' +
          "joined) or by the signatures' estimate (estimate: faster, reads the input once)",
      )
        .choices(['exact', 'estimate'])
        .default('exact'),
    )
    .option('--no-verify', 'keep every LSH candidate pair unchecked')
    .option('--normalize-numbers', 'treat every run of digits as 0')
    .option('--normalize-diacritics', 'fold accents and compatibility forms (NFKD, marks removed)')
    .option(
      '--index <dir>',
      'also dedup against the documents of an earlier run (its --out folder, or its index.bin): they are never ' +
        'removed, new documents that repeat them are (repeatable)',
      collect,
      [],
    )
    .option('--no-progress', 'no progress on stderr')
    .addHelpText(
      'after',
      '\nExamples:\n  npx flywheel dedup --input docs.jsonl --out dedup-out --threshold 0.8 --workers 4\n' +
        "  npx flywheel dedup --input new.jsonl --out dedup-new --index dedup-out   # against yesterday's run\n" +
        'Exit codes: 0 done, 1 failed, 2 bad options or input (the message names the line).',
    )
    .action(async (opts: DedupCommandOptions) => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { dedupJsonl } = require('../../lib/dedup/dedup-jsonl') as typeof import('../../lib/dedup/dedup-jsonl');
      const reporter = progressReporter(opts.progress);
      try {
        const stats = await dedupJsonl(opts.input, opts.out, {
          threshold: opts.threshold,
          ngram: opts.ngram,
          numPerm: opts.numPerm,
          bands: opts.bands,
          workers: opts.workers,
          exactField: opts.exactField,
          verify: opts.verify,
          normalizeNumbers: opts.normalizeNumbers ?? false,
          normalizeDiacritics: opts.normalizeDiacritics ?? false,
          index: opts.index,
          onProgress: (p) => reporter.update(p),
        });
        reporter.stop();
        console.log(summary(stats, opts.out));
      } catch (err) {
        reporter.stop();
        throw err;
      }
    });
}
