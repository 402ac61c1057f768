export type TokenDtype = 'uint16' | 'uint32';

const DESCR: Record<TokenDtype, string> = { uint16: '<u2', uint32: '<u4' };

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('Flywheel writes NPY arrays from typed arrays and needs a little-endian machine');
}

/** The narrowest dtype that holds every token id of a vocabulary. */
export function tokenDtypeFor(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

/** Size of the NPY file encodeNpy writes for `n` values, without writing it. */
export function npyBytes(n: number, dtype: TokenDtype): number {
  const header = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': (${n},), }`;
  return Math.ceil((10 + header.length + 1) / 64) * 64 + n * (dtype === 'uint16' ? 2 : 4);
}

/**
 * A 1-D array as an NPY v1.0 file (numpy.load and webdataset's default decoder read it): magic, version, a
 * little-endian u16 header length, then a Python-literal header padded with spaces so data starts on a 64-byte
 * boundary.
 */
export function encodeNpy(values: Uint32Array | Uint16Array | readonly number[], dtype: TokenDtype): Buffer {
  const out = Buffer.alloc(npyBytes(values.length, dtype));
  writeNpy(out, 0, values, dtype);
  return out;
}

/**
 * Writes the NPY file encodeNpy returns into `target` at `offset` (npyBytes(n, dtype) bytes): no buffer of its own,
 * one typed-array copy of the data. NPY data is little-endian, as typed arrays are on every platform Node runs on
 * (checked above).
 */
export function writeNpy(
  target: Buffer,
  offset: number,
  values: Uint32Array | Uint16Array | readonly number[],
  dtype: TokenDtype,
): void {
  const n = values.length;
  const preamble = 10; // magic (6) + version (2) + header length (2)
  const total = npyBytes(n, dtype) - n * (dtype === 'uint16' ? 2 : 4);
  const header = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': (${n},), }`.padEnd(
    total - preamble - 1,
    ' ',
  );
  target.write('\x93NUMPY', offset, 'latin1');
  target[offset + 6] = 1;
  target[offset + 7] = 0;
  target.writeUInt16LE(header.length + 1, offset + 8);
  target.write(header, offset + preamble, 'latin1');
  target[offset + total - 1] = 0x0a; // '\n'
  const data = offset + total;
  const bytes = (view: Uint16Array | Uint32Array) => new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  if (dtype === 'uint16') {
    const wide = values instanceof Uint32Array ? values : Uint32Array.from(values);
    for (let i = 0; i < n; i++) {
      if (wide[i] > 0xffff)
        throw new RangeError(`token id ${wide[i]} does not fit uint16; use uint32 for this vocabulary`);
    }
    const narrow = values instanceof Uint16Array ? values : Uint16Array.from(wide);
    target.set(bytes(narrow), data);
  } else {
    const wide = values instanceof Uint32Array ? values : Uint32Array.from(values);
    target.set(bytes(wide), data);
  }
}

/** Reads back a 1-D little-endian uint16/uint32 NPY array (for tests and the trainer). */
export function decodeNpy(bytes: Buffer): { dtype: TokenDtype; values: Uint32Array } {
  if (bytes.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error('not an NPY file (bad magic)');
  const major = bytes[6];
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = bytes.toString('latin1', start, start + headerLength);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shape = /'shape':\s*\((\d+),?\)/.exec(header)?.[1];
  if (!descr || shape === undefined) throw new Error(`unsupported NPY header: ${header.trim()}`);
  const dtype: TokenDtype = descr === '<u2' ? 'uint16' : descr === '<u4' ? 'uint32' : (undefined as never);
  if (!dtype) throw new Error(`unsupported NPY dtype ${descr}`);
  const n = Number(shape);
  const data = start + headerLength;
  const values = new Uint32Array(n);
  for (let i = 0; i < n; i++)
    values[i] = dtype === 'uint16' ? bytes.readUInt16LE(data + 2 * i) : bytes.readUInt32LE(data + 4 * i);
  return { dtype, values };
}
