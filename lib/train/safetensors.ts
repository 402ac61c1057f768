import { endianness } from 'node:os';
import { FlywheelError } from '../common';
import type { NamedTensor } from './trainer';

/*
 * The safetensors format (huggingface/safetensors), written by hand: it is an 8-byte length, a JSON header and the
 * raw bytes, and no maintained JavaScript writer exists. Files written here are byte-identical to what the reference
 * writer produces for the same float32 tensors and metadata.
 */

/** The reference reader refuses headers above 100 MB; so do we, before allocating anything. */
const MAX_HEADER_BYTES = 100_000_000;
const LENGTH_BYTES = 8;
const ALIGNMENT = 8;
const F32_BYTES = 4;
const METADATA_KEY = '__metadata__';

/** A buffer that is not a float32 safetensors file this reader understands. */
export class MalformedSafetensors extends FlywheelError {
  constructor(detail: string) {
    super('MalformedSafetensors', `not a readable safetensors file: ${detail}`, { retryable: false });
  }
}

export interface SafetensorsContent {
  tensors: NamedTensor[];
  metadata: Record<string, string>;
}

interface TensorEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

const utf8 = (s: string) => Buffer.from(s, 'utf8');
/** The reference writer sorts by dtype (all F32 here), then by name as bytes. */
const byName = (a: NamedTensor, b: NamedTensor) => Buffer.compare(utf8(a.name), utf8(b.name));
const elements = (shape: readonly number[]) => shape.reduce((n, d) => n * d, 1);

/** Float32 tensors (and optional string metadata) as a safetensors file. */
export function toSafetensors(tensors: readonly NamedTensor[], metadata?: Record<string, string>): Buffer {
  const sorted = [...tensors].sort(byName);
  // A Map, not an object: a tensor may be called anything, '__proto__' included.
  const header = new Map<string, unknown>();
  if (metadata && Object.keys(metadata).length > 0) {
    const entries = Object.entries(metadata).sort(([a], [b]) => Buffer.compare(utf8(a), utf8(b)));
    for (const [key, value] of entries)
      if (typeof value !== 'string') throw new TypeError(`safetensors metadata '${key}' must be a string`);
    header.set(METADATA_KEY, Object.fromEntries(entries));
  }
  let offset = 0;
  for (const t of sorted) {
    if (t.name === METADATA_KEY) throw new RangeError(`a tensor cannot be called ${METADATA_KEY}`);
    if (header.has(t.name)) throw new RangeError(`two tensors are called '${t.name}'`);
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw new RangeError(`tensor '${t.name}' has shape [${t.shape.join(', ')}]; dimensions must be integers ≥ 0`);
    if (elements(t.shape) !== t.data.length)
      throw new RangeError(
        `tensor '${t.name}' has ${t.data.length} values but shape [${t.shape.join(', ')}] needs ${elements(t.shape)}`,
      );
    const bytes = t.data.length * F32_BYTES;
    header.set(t.name, { dtype: 'F32', shape: [...t.shape], data_offsets: [offset, offset + bytes] });
    offset += bytes;
  }
  const json = utf8(`{${[...header].map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`).join(',')}}`);
  const headerBytes = json.length + ((ALIGNMENT - (json.length % ALIGNMENT)) % ALIGNMENT);
  const out = Buffer.alloc(LENGTH_BYTES + headerBytes + offset, 0x20);
  out.writeBigUInt64LE(BigInt(headerBytes), 0);
  json.copy(out, LENGTH_BYTES);
  let at = LENGTH_BYTES + headerBytes;
  for (const t of sorted) {
    const raw = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    raw.copy(out, at);
    if (endianness() === 'BE') out.subarray(at, at + raw.length).swap32();
    at += raw.length;
  }
  return out;
}

/** Reads a safetensors file of float32 tensors, checking its header as strictly as the reference reader does. */
export function fromSafetensors(buf: Uint8Array): SafetensorsContent {
  const bytes = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (bytes.length < LENGTH_BYTES) throw new MalformedSafetensors(`${bytes.length} bytes, shorter than its length`);
  const n = bytes.readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new MalformedSafetensors(`header of ${n} bytes is over ${MAX_HEADER_BYTES}`);
  const headerBytes = Number(n);
  if (LENGTH_BYTES + headerBytes > bytes.length)
    throw new MalformedSafetensors(`header of ${headerBytes} bytes runs past the end of the ${bytes.length}-byte file`);
  const text = bytes.subarray(LENGTH_BYTES, LENGTH_BYTES + headerBytes).toString('utf8');
  if (!text.startsWith('{')) throw new MalformedSafetensors("the header does not start with '{'");
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (error) {
    throw new MalformedSafetensors(`the header is not JSON (${(error as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header))
    throw new MalformedSafetensors('the header is not a JSON object');

  const metadata: Record<string, string> = {};
  const entries: [string, TensorEntry][] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (value === null || typeof value !== 'object' || Array.isArray(value))
        throw new MalformedSafetensors(`${METADATA_KEY} is not an object`);
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw new MalformedSafetensors(`metadata '${k}' is not a string`);
        metadata[k] = v;
      }
    } else entries.push([name, checkEntry(name, value)]);
  }

  const data = bytes.subarray(LENGTH_BYTES + headerBytes);
  entries.sort(([, a], [, b]) => a.data_offsets[0] - b.data_offsets[0] || a.data_offsets[1] - b.data_offsets[1]);
  let expected = 0;
  const tensors: NamedTensor[] = [];
  for (const [name, entry] of entries) {
    const [from, to] = entry.data_offsets;
    if (from !== expected)
      throw new MalformedSafetensors(
        `tensor '${name}' starts at byte ${from}, expected ${expected} (no gaps/overlaps)`,
      );
    if (to - from !== elements(entry.shape) * F32_BYTES)
      throw new MalformedSafetensors(
        `tensor '${name}' spans ${to - from} bytes, shape [${entry.shape.join(', ')}] of F32 needs ` +
          `${elements(entry.shape) * F32_BYTES}`,
      );
    if (to > data.length) throw new MalformedSafetensors(`tensor '${name}' ends at byte ${to} of ${data.length}`);
    const values = new Float32Array((to - from) / F32_BYTES);
    const view = Buffer.from(values.buffer);
    data.copy(view, 0, from, to);
    if (endianness() === 'BE') view.swap32();
    tensors.push({ name, shape: entry.shape, data: values });
    expected = to;
  }
  if (expected !== data.length)
    throw new MalformedSafetensors(`tensors cover ${expected} of the ${data.length} data bytes`);
  return { tensors: tensors.sort(byName), metadata };
}

function checkEntry(name: string, value: unknown): TensorEntry {
  const e = value as Partial<TensorEntry> | null;
  if (e === null || typeof e !== 'object') throw new MalformedSafetensors(`tensor '${name}' is not an object`);
  if (e.dtype !== 'F32')
    throw new MalformedSafetensors(`tensor '${name}' has dtype ${JSON.stringify(e.dtype)}; only F32 is supported`);
  const nonNegative = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  if (!Array.isArray(e.shape) || !e.shape.every(nonNegative))
    throw new MalformedSafetensors(`tensor '${name}' has no valid shape`);
  const o = e.data_offsets;
  if (!Array.isArray(o) || o.length !== 2 || !o.every(nonNegative) || o[1] < o[0])
    throw new MalformedSafetensors(`tensor '${name}' has no valid data_offsets`);
  return { dtype: e.dtype, shape: e.shape, data_offsets: [o[0], o[1]] };
}
