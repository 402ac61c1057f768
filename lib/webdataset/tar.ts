/**
 * The tar framing WebDataset shards need, and only that: regular files with short names, fixed owner, mode and mtime
 * (POSIX ustar). Hand-written because tar-stream's per-entry machinery capped shard writing at about 300 MB/s with
 * nothing else running, against GB/s for these few header bytes; reading tars (collection) still uses tar-stream.
 */
const BLOCK = 512;

function octal(value: number, width: number): string {
  // width - 1 octal digits, then NUL.
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

/** The 512-byte ustar header of a regular file. */
export function tarHeader(name: string, size: number, mtime: Date): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name longer than 100 bytes: ${name}`);
  if (size >= 8 ** 11) throw new Error(`tar entry ${name} too large for a ustar header (${size} bytes)`);
  const h = Buffer.alloc(BLOCK);
  h.write(name, 0, 'utf8');
  h.write(octal(0o644, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1'); // uid
  h.write(octal(0, 8), 116, 'latin1'); // gid
  h.write(octal(size, 12), 124, 'latin1');
  h.write(octal(Math.floor(mtime.getTime() / 1000), 12), 136, 'latin1');
  h.write('        ', 148, 'latin1'); // checksum field counts as spaces while summing
  h.write('0', 156, 'latin1'); // regular file
  h.write('ustar\u000000', 257, 'latin1');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i];
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
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
