import { z } from 'zod';
import { FlywheelError } from '../common';
import type { BandRun, EdgeList } from './band-join';
import type { PackedShingles } from './jsonl-batch';
import type { MinHashParams } from './minhash';
import type { PartitionSignatures } from './signatures';

/**
 * Binary files between dedup stages (claim-checked through warm:// by the pipeline): little-endian, a 32-byte
 * header, then fixed-size columns, so a reader can seek straight to one document's signature.
 *
 *   signatures: "FWMHSIG1" | numPerm | count | docBase | 3 × 0 | sigs[count × numPerm] | exactHi | exactLo | words
 *   band run:   "FWMHBND1" | band | count | 4 × 0            | keyHi[count] | keyLo[count] | docs[count]
 *   edges:      "FWMHEDG1" | band | count | 4 × 0            | a[count] | b[count] | similarity[count] (float32)
 *   index:      "FWMHIDX1" | metaBytes | idsBytes | 4 × 0    | meta JSON | ids | a signatures file (docBase 0)
 *
 * An index's meta JSON and ids (one JSON id per line) are each padded with spaces to a multiple of 4 bytes.
 */
const SIG_MAGIC = 'FWMHSIG1';
const BAND_MAGIC = 'FWMHBND1';
const EDGE_MAGIC = 'FWMHEDG1';
const INDEX_MAGIC = 'FWMHIDX1';
const SHINGLE_MAGIC = 'FWMHSHG1';
const HEADER = 32;

export class CorruptDedupFile extends FlywheelError {
  constructor(message: string) {
    super('CorruptDedupFile', message, { retryable: true });
  }
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
  return Buffer.concat([...signatureParts(part)]);
}

/**
 * A signatures file as the pieces `encodeSignatures` joins, made as they are taken: `sigs` may be given as blocks of
 * rows, produced one by one, so a writer never holds a second copy of them all.
 */
function* signatureParts(
  part: Omit<PartitionSignatures, 'sigs'> & { sigs: Uint32Array | Iterable<Uint32Array> },
): Generator<Buffer> {
  yield header(SIG_MAGIC, [part.numPerm, part.count, part.docBase]);
  let rows = 0;
  for (const block of part.sigs instanceof Uint32Array
    ? [part.sigs.subarray(0, part.count * part.numPerm)]
    : part.sigs) {
    rows += block.length;
    yield bytesOf(block);
  }
  if (rows !== part.count * part.numPerm)
    throw new Error(`signatures: ${rows} values where ${part.count} × ${part.numPerm} were expected`);
  yield bytesOf(part.exactHi.subarray(0, part.count));
  yield bytesOf(part.exactLo.subarray(0, part.count));
  yield bytesOf(part.words.subarray(0, part.count));
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

/**
 * A partition's shingle sets (exact verification): header [count, values], then count + 1 offsets, then the values;
 * set i is values[offsets[i] .. offsets[i + 1]). The offsets come first so a reader can fetch a few sets by range.
 */
export function encodeShingles(packed: PackedShingles): Buffer {
  const count = packed.offsets.length - 1;
  return Buffer.concat([
    header(SHINGLE_MAGIC, [count, packed.values.length]),
    bytesOf(packed.offsets),
    bytesOf(packed.values),
  ]);
}

export function decodeShingles(buf: Buffer): PackedShingles {
  const [count, values] = check(buf, SHINGLE_MAGIC, ([c, v]) => HEADER + 4 * (c + 1) + 4 * v);
  return { offsets: column(buf, HEADER, count + 1), values: column(buf, HEADER + 4 * (count + 1), values) };
}

/** Byte ranges of a shingles file of `count` sets: its offsets, and value v. */
export const shingleLayout = {
  offsetsEnd: (count: number) => HEADER + 4 * (count + 1),
  value: (count: number, v: number) => HEADER + 4 * (count + 1) + 4 * v,
  /** The offsets read by range (header skipped; checked against the file's size by the caller). */
  offsets: (buf: Buffer, count: number) => column(buf, HEADER, count + 1),
  check: (buf: Buffer) => {
    if (buf.length < HEADER || buf.toString('latin1', 0, 8) !== SHINGLE_MAGIC)
      throw new CorruptDedupFile(`not a ${SHINGLE_MAGIC} file`);
    return { count: buf.readUInt32LE(8), values: buf.readUInt32LE(12) };
  },
};

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

export function encodeEdges(band: number, edges: EdgeList): Buffer {
  const n = edges.count;
  const similarity = edges.similarity.subarray(0, n);
  return Buffer.concat([
    header(EDGE_MAGIC, [band, n]),
    bytesOf(edges.a.subarray(0, n)),
    bytesOf(edges.b.subarray(0, n)),
    Buffer.from(similarity.buffer, similarity.byteOffset, similarity.byteLength),
  ]);
}

/** Verified duplicate edges of one band, as stage b of the pipeline writes them. */
export interface BandEdges {
  band: number;
  a: Uint32Array;
  b: Uint32Array;
  similarity: Float32Array;
}

export function decodeEdges(buf: Buffer): BandEdges {
  const [band, count] = check(buf, EDGE_MAGIC, ([, c]) => HEADER + 12 * c);
  const similarity = new Float32Array(count);
  Buffer.from(similarity.buffer).set(buf.subarray(HEADER + 8 * count, HEADER + 12 * count));
  return { band, a: column(buf, HEADER, count), b: column(buf, HEADER + 4 * count, count), similarity };
}

/** What signed an index: new documents are compared with it only when signed the same way. */
export interface SignatureIndexMeta {
  version: 1;
  params: MinHashParams;
  /** The field exact dedup hashed instead of the normalized text, if any. */
  exactField: string | null;
  documents: number;
}

/** A signature index manifest's `meta`, as readers parse it; loose, in the order the near-dedup commit writes it. */
export const SignatureIndexMetaSchema = z.looseObject({
  version: z.literal(1),
  params: z.looseObject({
    numPerm: z.number(),
    ngram: z.number(),
    seed: z.number(),
    normalizeNumbers: z.boolean().optional(),
    normalizeDiacritics: z.boolean().optional(),
  }),
  exactField: z.string().nullable(),
  documents: z.number(),
}) satisfies z.ZodType<SignatureIndexMeta>;

/**
 * A signature index: the signatures, exact-dedup hashes and ids (as JSON: `"a"` or `7`) of a deduplicated dataset's
 * kept documents, in their order, so later data can be deduplicated against it without reading its text.
 */
export interface SignatureIndex {
  meta: SignatureIndexMeta;
  ids: string[];
  signatures: PartitionSignatures;
}

const padded = (text: string) => Buffer.from(text + ' '.repeat((4 - (Buffer.byteLength(text) % 4)) % 4));

/** An index file as pieces to write in order, made as they are taken (see `signatureParts`). */
export function* signatureIndexParts(
  meta: Omit<SignatureIndexMeta, 'version' | 'documents'>,
  ids: readonly string[],
  signatures: Omit<PartitionSignatures, 'sigs' | 'docBase'> & { sigs: Uint32Array | Iterable<Uint32Array> },
): Generator<Buffer> {
  if (ids.length !== signatures.count)
    throw new Error(`signature index: ${ids.length} ids for ${signatures.count} signatures`);
  const full: SignatureIndexMeta = { version: 1, ...meta, documents: signatures.count };
  const metaBytes = padded(JSON.stringify(full));
  const idBytes = padded(ids.map((id) => id + '\n').join(''));
  yield header(INDEX_MAGIC, [metaBytes.length, idBytes.length]);
  yield metaBytes;
  yield idBytes;
  yield* signatureParts({ ...signatures, docBase: 0 });
}

export function encodeSignatureIndex(
  meta: Omit<SignatureIndexMeta, 'version' | 'documents'>,
  ids: readonly string[],
  signatures: Omit<PartitionSignatures, 'docBase'>,
): Buffer {
  return Buffer.concat([...signatureIndexParts(meta, ids, signatures)]);
}

export function decodeSignatureIndex(buf: Buffer): SignatureIndex {
  if (buf.length < HEADER || buf.toString('latin1', 0, 8) !== INDEX_MAGIC)
    throw new CorruptDedupFile(`not a signature index (header ${JSON.stringify(buf.toString('latin1', 0, 8))})`);
  const metaBytes = buf.readUInt32LE(8);
  const idBytes = buf.readUInt32LE(12);
  if (HEADER + metaBytes + idBytes > buf.length)
    throw new CorruptDedupFile(`signature index is ${buf.length} bytes, shorter than its header says`);
  let meta: SignatureIndexMeta;
  try {
    meta = JSON.parse(buf.toString('utf8', HEADER, HEADER + metaBytes)) as SignatureIndexMeta;
  } catch {
    throw new CorruptDedupFile('signature index: its meta is not JSON');
  }
  if (meta.version !== 1) throw new CorruptDedupFile(`signature index version ${meta.version}: expected 1`);
  const idText = buf.toString('utf8', HEADER + metaBytes, HEADER + metaBytes + idBytes);
  const ids = idText.slice(0, idText.lastIndexOf('\n') + 1).split('\n');
  ids.pop();
  const signatures = decodeSignatures(buf.subarray(HEADER + metaBytes + idBytes));
  if (ids.length !== signatures.count || meta.documents !== signatures.count)
    throw new CorruptDedupFile(
      `signature index holds ${ids.length} ids and ${signatures.count} signatures; its meta says ${meta.documents}`,
    );
  return { meta, ids, signatures };
}
