import { Readable, pipeline } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress as ZstdDecompress } from 'fzstd';
import type { ByteChunks } from './bytes';
import { CollectError } from './errors';
import { InputDataError } from './records';

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
 * Decompresses `source`, abandoning it with an InputDataError('expansion_ratio') as soon as the output passes
 * `maxRatio` times the compressed bytes read so far: a bomb is stopped after a bounded amount of output, never
 * inflated in full. Malformed data ends it with 'corrupt_compression'.
 */
export function decompress(compression: Compression, source: ByteChunks, maxRatio: number, layer: symbol): ByteChunks {
  const meter = { compressed: 0, decompressed: 0 };
  const guard = (bytes: number): void => {
    meter.decompressed += bytes;
    if (meter.decompressed > maxRatio * Math.max(meter.compressed, 1)) {
      throw new InputDataError(
        layer,
        'expansion_ratio',
        `${compression} stream expanded past ${maxRatio}× its compressed size (${meter.decompressed} bytes out of ` +
          `${meter.compressed}); stopped reading. Raise maxExpansionRatio if this input is genuine.`,
      );
    }
  };
  async function* counted(): AsyncGenerator<Buffer> {
    for await (const chunk of source) {
      meter.compressed += chunk.length;
      yield chunk;
    }
  }
  return compression === 'gzip' ? gunzip(counted(), guard, layer) : unzstd(counted(), guard, layer);
}

async function* gunzip(source: ByteChunks, guard: (bytes: number) => void, layer: symbol): AsyncGenerator<Buffer> {
  const inflater = createGunzip();
  const input = Readable.from(source, { objectMode: false });
  // Errors surface through the inflater's iteration below; the callback only keeps them from going unhandled.
  pipeline(input, inflater, () => undefined);
  try {
    for await (const chunk of inflater as AsyncIterable<Buffer>) {
      guard(chunk.length);
      yield chunk;
    }
  } catch (err) {
    throw asDataError(err, layer, 'gzip');
  } finally {
    inflater.destroy();
    input.destroy();
  }
}

async function* unzstd(source: ByteChunks, guard: (bytes: number) => void, layer: symbol): AsyncGenerator<Buffer> {
  let out: Buffer[] = [];
  // fzstd calls back once per decoded block; the guard throws from inside push(), so a bomb never gets further.
  const decoder = new ZstdDecompress((data) => {
    guard(data.length);
    out.push(Buffer.from(data)); // a copy: the decoder reuses its window buffer
  });
  const take = (): Buffer[] => {
    const ready = out;
    out = [];
    return ready;
  };
  try {
    let sawInput = false;
    for await (const chunk of source) {
      if (chunk.length === 0) continue;
      sawInput = true;
      decoder.push(chunk);
      yield* take();
    }
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
