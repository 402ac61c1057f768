import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { compile } from 'html-to-text';
import { decompressZstd } from 'hyparquet-compressors';
import { SourceSpec, planSource, readUnit, sampleCorpus, type CollectContext } from '../lib/collect';
import { htmlMainText } from '../lib/collect/formats/html-text';
import type { Benchmark, Measurement } from './harness';

const MB = 1e6;
/** Parquet rows (about 2 KB of prose each) and WARC pages: a few seconds a round on one core. */
const ROWS = 20_000;
const PAGES = 400;
const ctx: CollectContext = { now: () => new Date(0) };

/** Real prose: the sample corpus's paragraphs, grouped into documents of about 2 KB. */
function proseDocuments(count: number): string[] {
  const paragraphs = sampleCorpus('moby-dick')
    .documents.flatMap((d) => d.text.split(/\n\s*\n/))
    .map((p) => p.replace(/\s+/g, ' ').trim())
    .filter((p) => p.length > 80);
  const out: string[] = [];
  for (let i = 0; out.length < count; i++) {
    const parts: string[] = [];
    let length = 0;
    for (let j = i; length < 2000; j++) {
      const p = paragraphs[(j * 7919) % paragraphs.length];
      parts.push(p);
      length += p.length;
    }
    out.push(parts.join('\n\n'));
  }
  return out;
}

/** A page as sites serve them: head scripts and styles, a header with navigation, the article, a footer. */
function pageOf(i: number, text: string): string {
  const paragraphs = text
    .split('\n\n')
    .map((p) => `<p>${p.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</p>`)
    .join('\n');
  return `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Chapter ${i} | The Whaling Review</title>
<style>body{font:16px serif}.nav a{margin:0 1em}</style><script>window.dataLayer=[{page:${i}}];</script></head>
<body><header><a href="/">The Whaling Review</a><nav class="nav"><a href="/news">News</a><a href="/ships">Ships</a>
<a href="/about">About</a></nav></header><div class="layout"><aside class="sidebar"><h3>Most read</h3><ul>
<li><a href="/a">The white whale</a></li><li><a href="/b">Nantucket</a></li></ul></aside><main><article>
<h1>Chapter ${i}</h1>${paragraphs}</article></main></div><footer><p>© 2024 The Whaling Review · <a href="/privacy">
Privacy</a></p></footer><script>track(${i});</script></body></html>`;
}

interface Inputs {
  dir: string;
  /** [compressed, uncompressed] bytes of each zstd frame of text.zst, in order. */
  frames: Array<[number, number]>;
  pages: string[];
}

/** Writes the inputs with pyarrow and warcio, or says why it cannot. */
function writeInputs(): Inputs | { skipped: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'flywheel-bench-formats-'));
  process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  const texts = proseDocuments(ROWS);
  const pages = texts.slice(0, PAGES).map((text, i) => pageOf(i, text));
  fs.writeFileSync(path.join(dir, 'in.json'), JSON.stringify({ texts, pages }));
  const run = spawnSync('python3', [path.join(__dirname, 'formats_writer.py'), path.join(dir, 'in.json'), dir], {
    encoding: 'utf8',
  });
  if (run.error || run.status !== 0) {
    return { skipped: `python3 with pyarrow and warcio is needed: ${(run.error?.message ?? run.stderr).trim()}` };
  }
  const frames = JSON.parse(fs.readFileSync(path.join(dir, 'text.frames.json'), 'utf8')) as Inputs['frames'];
  return { dir, frames, pages };
}

/** Collects one file through planSource and readUnit, as the collect stage does; how much text and how long. */
async function collectFile(file: string): Promise<{ textBytes: number; seconds: number; documents: number }> {
  const start = process.hrtime.bigint();
  let textBytes = 0;
  let documents = 0;
  for (const unit of await planSource(SourceSpec.parse({ type: 'path', path: file }), ctx)) {
    for await (const event of readUnit(unit, ctx)) {
      if (event.kind !== 'document') throw new Error(`${file}: ${event.record.reason} ${event.record.detail}`);
      textBytes += Buffer.byteLength(event.doc.text);
      documents++;
    }
  }
  return { textBytes, documents, seconds: Number(process.hrtime.bigint() - start) / 1e9 };
}

function timed(work: () => number): Measurement {
  const start = process.hrtime.bigint();
  const amount = work();
  return { value: amount / (Number(process.hrtime.bigint() - start) / 1e9) };
}

/**
 * `npm run bench formats`: Parquet and WARC reading against raw decompression of the same bytes, and HTML main
 * text (Readability) against html-to-text alone, pages per second.
 */
export function formatsBenchmarks(): Benchmark[] {
  let inputs: Inputs | { skipped: string } | undefined;
  const setup = async () => {
    inputs ??= writeInputs();
    if ('skipped' in inputs) process.stderr.write(`formats bench skipped: ${inputs.skipped}\n`);
  };
  const ready = (): Inputs | undefined => (inputs && !('skipped' in inputs) ? inputs : undefined);
  const labelOf = (label: string) => (inputs && 'skipped' in inputs ? `SKIPPED: ${inputs.skipped}` : label);
  return [
    {
      name: 'formats: Parquet (zstd, 2 KB rows) read into documents vs zstd decompression of its text, MB/s of text',
      unit: 'MB/s',
      rounds: 3,
      setup,
      candidate: {
        get label() {
          return labelOf('readUnit on a .parquet file');
        },
        run: async () => {
          const at = ready();
          if (!at) return { value: NaN };
          const { textBytes, seconds, documents } = await collectFile(path.join(at.dir, 'corpus.parquet'));
          if (documents !== ROWS) throw new Error(`${documents} documents of ${ROWS}`);
          return { value: textBytes / MB / seconds };
        },
      },
      baseline: {
        label: 'hyparquet-compressors zstd, 1 MiB frames',
        run: async () => {
          const at = ready();
          if (!at) return { value: NaN };
          const bytes = fs.readFileSync(path.join(at.dir, 'text.zst'));
          return timed(() => {
            let offset = 0;
            let out = 0;
            // As hyparquet's own ZSTD codec calls it: without an output buffer, which fzstd fills three times slower.
            for (const [compressed] of at.frames) {
              out += decompressZstd(bytes.subarray(offset, offset + compressed)).length;
              offset += compressed;
            }
            return out / MB;
          });
        },
      },
    },
    {
      name: `formats: WARC (.warc.gz, ${PAGES} HTML pages) read into documents vs gunzip of the same file, MB/s of file`,
      unit: 'MB/s',
      rounds: 3,
      setup,
      candidate: {
        get label() {
          return labelOf('readUnit on a .warc.gz (Readability per page)');
        },
        run: async () => {
          const at = ready();
          if (!at) return { value: NaN };
          const file = path.join(at.dir, 'crawl.warc.gz');
          const { seconds, documents } = await collectFile(file);
          if (documents !== PAGES) throw new Error(`${documents} documents of ${PAGES}`);
          return { value: fs.statSync(file).size / MB / seconds };
        },
      },
      baseline: {
        label: 'zlib gunzip',
        run: async () => {
          const at = ready();
          if (!at) return { value: NaN };
          const bytes = fs.readFileSync(path.join(at.dir, 'crawl.warc.gz'));
          return timed(() => (gunzipSync(bytes).length, bytes.length / MB));
        },
      },
    },
    {
      name: 'formats: HTML main text (Readability on linkedom) vs html-to-text of the whole page, pages/s',
      unit: 'pages/s',
      rounds: 3,
      setup,
      candidate: {
        label: 'htmlMainText',
        run: async () => {
          const pages = ready()?.pages ?? proseDocuments(PAGES).map((text, i) => pageOf(i, text));
          return timed(() => {
            for (const page of pages) htmlMainText(page);
            return pages.length;
          });
        },
      },
      baseline: {
        label: 'html-to-text, options compiled once',
        run: async () => {
          const htmlToText = compile({ wordwrap: false });
          const pages = ready()?.pages ?? proseDocuments(PAGES).map((text, i) => pageOf(i, text));
          return timed(() => {
            for (const page of pages) htmlToText(page);
            return pages.length;
          });
        },
      },
    },
  ];
}
