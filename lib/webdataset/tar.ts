/**
 * The tar framing WebDataset shards need, and only that: regular files with short names, fixed owner, mode and mtime
 * (POSIX ustar). Hand-written because tar-stream's per-entry machinery capped shard writing at about 300 MB/s with
 * nothing else running, against GB/s for these few header bytes. Collection reads arbitrary tars with tar-stream;
 * tarEntries below reads back shards held in memory.
 */
const BLOCK = 512;

function octal(value: number, width: number): string {
  // width - 1 octal digits, then NUL.
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** The 512-byte ustar header of a regular file. */
export function tarHeader(name: string, size: number, mtime: Date): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeTarHeader(h, 0, name, size, mtime);
  return h;
}

/** Writes the header tarHeader returns into `target` at `offset` (512 bytes): no buffer of its own. */
export function writeTarHeader(target: Buffer, offset: number, name: string, size: number, mtime: Date): void {
  const nameBytes = Buffer.byteLength(name);
  if (nameBytes > 100) throw new Error(`tar entry name longer than 100 bytes: ${name}`);
  if (size >= 8 ** 11) throw new Error(`tar entry ${name} too large for a ustar header (${size} bytes)`);
  // Every field but the name and size is the same for all entries of an mtime: start from that header, then sum
  // only the bytes that differ (the checksum is the byte sum with its own field read as spaces).
  const template = headerTemplate(mtime);
  template.header.copy(target, offset);
  target.write(name, offset, 'utf8');
  const sizeField = octal(size, 12);
  target.write(sizeField, offset + 124, 'latin1');
  let sum = template.sum;
  for (let i = offset; i < offset + nameBytes; i++) sum += target[i];
  for (let i = 0; i < 11; i++) sum += sizeField.charCodeAt(i);
  target.write(sum.toString(8).padStart(6, '0') + '\0 ', offset + 148, 'latin1');
}

let template: { mtime: number; header: Buffer; sum: number } | undefined;

/** A header with every field but name, size and checksum filled (checksum as spaces), and its byte sum. */
function headerTemplate(mtime: Date): { header: Buffer; sum: number } {
  const seconds = Math.floor(mtime.getTime() / 1000);
  if (template?.mtime === seconds) return template;
  const h = Buffer.alloc(BLOCK);
  h.write(octal(0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1'); // uid
  h.write(octal(0, 8), 116, 'latin1'); // gid
  h.write(octal(seconds, 12), 136, 'latin1');
  h.write('        ', 148, 'latin1'); // checksum field counts as spaces while summing
  h.write('0', 156, 'latin1'); // regular file
  h.write('ustar\u000000', 257, 'latin1');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  template = { mtime: seconds, header: h, sum };
  return template;
}

/** Zero bytes that pad an entry's data to a whole block. */
export function tarPadding(size: number): Buffer {
  const rest = size % BLOCK;
  return rest === 0 ? EMPTY : ZEROS.subarray(0, BLOCK - rest);
}

const EMPTY = Buffer.alloc(0);
const ZEROS = Buffer.alloc(BLOCK);

/** Two zero blocks end an archive. */
export const TAR_END = Buffer.alloc(2 * BLOCK);

/**
 * The regular-file entries of a whole tar in memory, in order (the reader of what tarHeader writes; also reads
 * ustar `prefix` names). Throws with the entry's name and offset when an entry runs past the end.
 */
export function* tarEntries(tar: Buffer): Generator<{ name: string; data: Buffer; offset: number }> {
  const field = (header: Buffer, start: number, end: number) =>
    header.toString('latin1', start, end).replace(/\0.*$/s, '');
  for (let at = 0; at + BLOCK <= tar.length;) {
    const header = tar.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) return;
    const name = field(header, 0, 100);
    const prefix = field(header, 345, 500);
    const size = parseInt(field(header, 124, 136).trim() || '0', 8);
    if (!Number.isFinite(size) || at + BLOCK + size > tar.length) {
      throw new Error(`tar entry ${name || '(unnamed)'} at byte ${at} is truncated`);
    }
    yield { name: prefix ? `${prefix}/${name}` : name, data: tar.subarray(at + BLOCK, at + BLOCK + size), offset: at };
    at += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
}
