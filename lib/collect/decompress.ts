import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import type { ByteChunks } from './bytes';
import { CollectError } from './errors';
import { InputDataError } from './records';
import { ZstdFrameScanner } from './zstd-frames';

export type Compression = 'gzip' | 'zstd';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** The compression a file name announces, and the name without it (`a.tgz` → `a.tar`). */
export function compressionFromName(name: string): { compression: Compression; inner: string } | undefined {
  const lower = name.toLowerCase();
  if (lower.endsWith('.tgz')) return { compression: 'gzip', inner: `${name.slice(0, -4)}.tar` };
  if (lower.endsWith('.gz')) return { compression: 'gzip', inner: name.slice(0, -3) };
  if (lower.endsWith('.zst')) return { compression: 'zstd', inner: name.slice(0, -4) };
  if (lower.endsWith('.zstd')) return { compression: 'zstd', inner: name.slice(0, -5) };
  return undefined;
}

/** The compression the first bytes show, whatever the name says. */
export function compressionFromMagic(head: Buffer): Compression | undefined {
  const starts = (magic: number[]) => magic.every((byte, i) => head[i] === byte);
  if (starts(GZIP_MAGIC)) return 'gzip';
  if (starts(ZSTD_MAGIC)) return 'zstd';
  return undefined;
}

/**
 * How far decompression may expand one unit, shared by every decompressor in it: nested wrappers (`.gz.gz`) and the
 * compressed entries of a compressed archive. Each one alone could stay under the ratio while together they multiply
 * it, so the bound is on all decompressed bytes against the unit's own bytes read so far.
 */
export class ExpansionBudget {
  private read = 0;
  private inflated = 0;

  constructor(readonly maxRatio: number) {}

  /** Counts the unit's own (outermost) bytes as they are read. */
  async *meter(source: ByteChunks): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      this.read += chunk.length;
      yield chunk;
    }
  }

  /** Counts `bytes` of decompressed output; throws InputDataError('expansion_ratio') once past the ratio. */
  spend(bytes: number, compression: Compression, layer: symbol): void {
    this.inflated += bytes;
    if (this.inflated > this.maxRatio * Math.max(this.read, 1)) {
      throw new InputDataError(
        layer,
        'expansion_ratio',
        `${compression} stream expanded past ${this.maxRatio}× its compressed size (${this.inflated} bytes out of ` +
          `${this.read}); stopped reading. Raise maxExpansionRatio if this input is genuine.`,
      );
    }
  }
}

/**
 * Decompresses `source`, abandoning it with an InputDataError('expansion_ratio') as soon as the unit's output passes
 * its budget: a bomb is stopped after a bounded amount of output, never inflated in full. Malformed data ends it with
 * 'corrupt_compression'; a zstd window past the limit, or too costly to decode, with 'zstd_window'.
 */
export function decompress(
  compression: Compression,
  source: ByteChunks,
  budget: ExpansionBudget,
  layer: symbol,
): ByteChunks {
  const spend = (bytes: number): void => budget.spend(bytes, compression, layer);
  return compression === 'gzip' ? gunzip(source, spend, layer) : unzstd(source, spend, layer);
}

async function* gunzip(source: ByteChunks, spend: (bytes: number) => void, layer: symbol): AsyncGenerator<Buffer> {
  const inflater = createGunzip();
  const input = Readable.from(source, { objectMode: false });
  // Errors surface through the inflater's iteration below; the callback only keeps them from going unhandled.
  pipeline(input, inflater, () => undefined);
  try {
    for await (const chunk of inflater as AsyncIterable<Buffer>) {
      spend(chunk.length);
      yield chunk;
    }
  } catch (err) {
    throw asDataError(err, layer, 'gzip');
  } finally {
    inflater.destroy();
    input.destroy();
  }
}

/** fzstd shifts its whole window once per block; past this much shifting per output byte, a stream is refused. */
const ZSTD_WORK_PER_OUTPUT_BYTE = 1024;
/** Shifting allowed before any output counts (a few blocks of the largest window). */
const ZSTD_WORK_ALLOWANCE = 1024 * 1024 * 1024;
/** The most shifting handed to the decoder in one call, so the limit is checked every ~20 ms of work. */
const ZSTD_WORK_PER_PUSH = 256 * 1024 * 1024;

async function* unzstd(source: ByteChunks, spend: (bytes: number) => void, layer: symbol): AsyncGenerator<Buffer> {
  let out: Buffer[] = [];
  let produced = 0;
  let work = 0;
  // fzstd calls back once per decoded block; spend() throws from inside push(), so a bomb never gets further.
  const decoder = new ZstdDecompress((data) => {
    spend(data.length);
    produced += data.length;
    out.push(Buffer.from(data)); // a copy: the decoder reuses its window buffer
  });
  const frames = new ZstdFrameScanner(layer);
  const take = (): Buffer[] => {
    const ready = out;
    out = [];
    return ready;
  };
  const push = (piece: Uint8Array): void => {
    decoder.push(piece);
    if (work > ZSTD_WORK_PER_OUTPUT_BYTE * produced + ZSTD_WORK_ALLOWANCE) {
      throw new InputDataError(
        layer,
        'zstd_window',
        `zstd stream of blocks too small for their window: ${work} bytes of window shifted for ${produced} bytes ` +
          'of output; stopped reading. Recompress it with a smaller window (without --long or --ultra).',
      );
    }
  };
  try {
    let sawInput = false;
    for await (const chunk of source) {
      if (chunk.length === 0) continue;
      sawInput = true;
      let start = 0;
      let pending = 0;
      for (const block of frames.scan(chunk)) {
        work += block.window;
        pending += block.window;
        if (pending < ZSTD_WORK_PER_PUSH) continue;
        push(chunk.subarray(start, block.end));
        yield* take();
        start = block.end;
        pending = 0;
      }
      if (start < chunk.length) push(chunk.subarray(start));
      yield* take();
    }
    frames.finish();
    if (sawInput) decoder.push(new Uint8Array(0), true);
    yield* take();
  } catch (err) {
    throw asDataError(err, layer, 'zstd');
  }
}

function asDataError(err: unknown, layer: symbol, what: string): unknown {
  if (err instanceof InputDataError || err instanceof CollectError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new InputDataError(layer, 'corrupt_compression', `corrupt ${what} data: ${message}`);
}
