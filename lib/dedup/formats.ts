import type { BandRun } from './band-join';
import type { PartitionSignatures } from './signatures';

/**
 * Binary files between dedup stages (claim-checked through warm:// by the pipeline): little-endian, a 32-byte
 * header, then fixed-size columns, so a reader can seek straight to one document's signature.
 *
 *   signatures: "FWMHSIG1" | numPerm | count | docBase | 3 × 0 | sigs[count × numPerm] | exactHi | exactLo | words
 *   band run:   "FWMHBND1" | band | count | 4 × 0            | keyHi[count] | keyLo[count] | docs[count]
 */
const SIG_MAGIC = 'FWMHSIG1';
const BAND_MAGIC = 'FWMHBND1';
const HEADER = 32;

export class CorruptDedupFile extends Error {
  override readonly name = 'CorruptDedupFile';
}

function header(magic: string, fields: number[]): Buffer {
  const h = Buffer.alloc(HEADER);
  h.write(magic, 0, 'latin1');
  fields.forEach((v, i) => h.writeUInt32LE(v, 8 + i * 4));
  return h;
}

const bytesOf = (a: Uint32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

function column(buf: Buffer, at: number, length: number): Uint32Array {
  const out = new Uint32Array(length);
  Buffer.from(out.buffer).set(buf.subarray(at, at + length * 4));
  return out;
}

function check(buf: Buffer, magic: string, expected: (fields: number[]) => number): number[] {
  if (buf.length < HEADER || buf.toString('latin1', 0, 8) !== magic)
    throw new CorruptDedupFile(`not a ${magic} file (header ${JSON.stringify(buf.toString('latin1', 0, 8))})`);
  const fields = Array.from({ length: 6 }, (_, i) => buf.readUInt32LE(8 + i * 4));
  const size = expected(fields);
  if (buf.length !== size) throw new CorruptDedupFile(`${magic} file is ${buf.length} bytes, its header says ${size}`);
  return fields;
}

export function encodeSignatures(part: PartitionSignatures): Buffer {
  return Buffer.concat([
    header(SIG_MAGIC, [part.numPerm, part.count, part.docBase]),
    bytesOf(part.sigs.subarray(0, part.count * part.numPerm)),
    bytesOf(part.exactHi.subarray(0, part.count)),
    bytesOf(part.exactLo.subarray(0, part.count)),
    bytesOf(part.words.subarray(0, part.count)),
  ]);
}

export function decodeSignatures(buf: Buffer): PartitionSignatures {
  const [numPerm, count, docBase] = check(buf, SIG_MAGIC, ([p, c]) => HEADER + 4 * c * (p + 3));
  let at = HEADER;
  const next = (length: number) => {
    const col = column(buf, at, length);
    at += length * 4;
    return col;
  };
  return {
    numPerm,
    count,
    docBase,
    sigs: next(count * numPerm),
    exactHi: next(count),
    exactLo: next(count),
    words: next(count),
  };
}

/** Byte offset of document `doc`'s signature in a signatures file (for reading one without the rest). */
export function signatureOffset(numPerm: number, docBase: number, doc: number): number {
  return HEADER + (doc - docBase) * numPerm * 4;
}

export function encodeBandRun(run: BandRun): Buffer {
  const n = run.docs.length;
  return Buffer.concat([
    header(BAND_MAGIC, [run.band, n]),
    bytesOf(run.keyHi),
    bytesOf(run.keyLo),
    bytesOf(run.docs.subarray(0, n)),
  ]);
}

export function decodeBandRun(buf: Buffer): BandRun {
  const [band, count] = check(buf, BAND_MAGIC, ([, c]) => HEADER + 12 * c);
  return {
    band,
    keyHi: column(buf, HEADER, count),
    keyLo: column(buf, HEADER + 4 * count, count),
    docs: column(buf, HEADER + 8 * count, count),
  };
}
