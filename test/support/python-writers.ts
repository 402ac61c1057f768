import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** What format-writers.py reports about the files it wrote. */
export interface WrittenFormats {
  /** The 'text' column chunk of row group 1 overwritten in corrupt-page.parquet: its bytes [start, end). */
  corruptPage: { rowGroup: number; start: number; end: number };
  /** Where each record of crawl.warc.gz starts (its gzip member), and the file's length last. */
  warcGzOffsets: number[];
  /** The same for the uncompressed crawl.warc. */
  warcOffsets: number[];
  /** Where the record with a broken header starts in bad-header.warc. */
  badHeaderOffset: number;
}

/**
 * Writes the Parquet and WARC test inputs into `dir` with the reference writers (pyarrow, warcio), or returns why it
 * cannot: on a developer machine without them the tests that need them skip with the reason printed; CI
 * (`FLYWHEEL_REQUIRE_PYTHON_WRITERS=1`, set after installing them) fails instead.
 */
export function writeReferenceFormats(dir: string): { written?: WrittenFormats; skip?: string } {
  const probe = spawnSync('python3', ['-c', 'import pyarrow, warcio'], { encoding: 'utf8' });
  const missing = probe.error
    ? `python3 is not available (${probe.error.message})`
    : probe.status !== 0
      ? `python3 lacks pyarrow or warcio (pip install pyarrow warcio): ${probe.stderr.trim().split('\n').pop()}`
      : undefined;
  if (missing !== undefined) {
    if (process.env.FLYWHEEL_REQUIRE_PYTHON_WRITERS === '1') throw new Error(missing);
    console.error(`[flywheel test] Parquet and WARC tests skipped: ${missing}`);
    return { skip: missing };
  }
  const script = path.join(__dirname, 'format-writers.py');
  const run = spawnSync('python3', [script, dir], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`format-writers.py failed: ${run.stderr}`);
  return { written: JSON.parse(run.stdout) as WrittenFormats };
}
