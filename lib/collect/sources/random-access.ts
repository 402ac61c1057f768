import type { FileHandle } from 'node:fs/promises';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import type { RandomAccessBytes } from '../formats/input';

/** Positional reads on an open file; they leave the handle's stream position alone. */
export function fileRandomAccess(
  handle: FileHandle,
  byteLength: number,
  mapError: (err: unknown) => unknown,
): RandomAccessBytes {
  return {
    byteLength,
    read: async (start, end) => {
      const length = Math.max(0, Math.min(end, byteLength) - start);
      const buffer = Buffer.alloc(length);
      let filled = 0;
      try {
        while (filled < length) {
          const { bytesRead } = await handle.read(buffer, filled, length - filled, start + filled);
          if (bytesRead === 0) break; // the file shrank under us: the format reader sees short data
          filled += bytesRead;
        }
      } catch (err) {
        throw mapError(err);
      }
      return buffer.subarray(0, filled);
    },
  };
}

/**
 * Ranged GetObject reads of one object (HTTP Range, end inclusive), each its own request; with the ETag of the first
 * read, so an object replaced meanwhile fails the read instead of mixing two versions.
 */
export function s3RandomAccess(
  client: S3Client,
  object: { bucket: string; key: string; etag?: string },
  byteLength: number,
  mapError: (err: unknown) => Promise<unknown>,
): RandomAccessBytes {
  const { bucket, key, etag } = object;
  return {
    byteLength,
    read: async (start, end) => {
      const last = Math.min(end, byteLength) - 1;
      if (last < start) return Buffer.alloc(0);
      try {
        const res = await client.send(
          new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${last}`, IfMatch: etag }),
        );
        return Buffer.from((await res.Body?.transformToByteArray()) ?? new Uint8Array(0));
      } catch (err) {
        throw await mapError(err);
      }
    },
  };
}

/** Bytes already in memory (an entry of an archive, a decompressed file), read as if at random. */
export function bufferRandomAccess(bytes: Buffer): RandomAccessBytes {
  return {
    byteLength: bytes.length,
    read: async (start, end) => bytes.subarray(start, Math.min(end, bytes.length)),
  };
}
