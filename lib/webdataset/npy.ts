export type TokenDtype = 'uint16' | 'uint32';

const DESCR: Record<TokenDtype, string> = { uint16: '<u2', uint32: '<u4' };

/** The narrowest dtype that holds every token id of a vocabulary. */
export function tokenDtypeFor(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

/**
 * A 1-D array as an NPY v1.0 file (numpy.load and webdataset's default decoder read it): magic, version, a
 * little-endian u16 header length, then a Python-literal header padded with spaces so data starts on a 64-byte
 * boundary.
 */
export function encodeNpy(values: Uint32Array | Uint16Array | readonly number[], dtype: TokenDtype): Buffer {
  const n = values.length;
  let header = `{'descr': '${DESCR[dtype]}', 'fortran_order': False, 'shape': (${n},), }`;
  const preamble = 10; // magic (6) + version (2) + header length (2)
  const total = Math.ceil((preamble + header.length + 1) / 64) * 64;
  header = header.padEnd(total - preamble - 1, ' ') + '\n';
  const itemSize = dtype === 'uint16' ? 2 : 4;
  const out = Buffer.alloc(total + n * itemSize);
  out.write('\x93NUMPY', 0, 'latin1');
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, preamble, 'latin1');
  if (dtype === 'uint16') {
    for (let i = 0; i < n; i++) {
      const v = values[i];
      if (v > 0xffff) throw new RangeError(`token id ${v} does not fit uint16; use uint32 for this vocabulary`);
      out.writeUInt16LE(v, total + i * 2);
    }
  } else {
    for (let i = 0; i < n; i++) out.writeUInt32LE(values[i], total + i * 4);
  }
  return out;
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
