import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ChecksumMismatch } from './errors';

/** A pass-through stream that computes sha256 and the byte count of what flows through it. */
export class HashingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private digest: string | undefined;
  bytes = 0;

  /** Hex sha256 of everything written; only valid once the stream has finished. */
  get sha256(): string {
    if (this.digest === undefined) throw new Error('HashingStream.sha256 read before the stream finished');
    return this.digest;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    this.digest = this.hash.digest('hex');
    callback();
  }
}

export interface ExpectedContent {
  sha256: string;
  bytes: number;
}

/**
 * Passes bytes through and fails the stream with ChecksumMismatch if the content differs from what was expected:
 * as soon as too many bytes arrive, otherwise at the end, so a reader never mistakes corrupt data for a clean EOF.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private bytes = 0;

  constructor(
    private readonly uri: string,
    private readonly expected: ExpectedContent,
    private readonly context?: string,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.bytes > this.expected.bytes) {
      callback(this.mismatch(undefined));
      return;
    }
    this.hash.update(chunk);
    callback(null, chunk);
  }

  override _flush(callback: TransformCallback): void {
    const actual = this.hash.digest('hex');
    if (actual !== this.expected.sha256 || this.bytes !== this.expected.bytes) {
      callback(this.mismatch(actual));
      return;
    }
    callback();
  }

  private mismatch(actualSha256: string | undefined): ChecksumMismatch {
    return new ChecksumMismatch(
      this.uri,
      {
        expectedSha256: this.expected.sha256,
        actualSha256,
        expectedBytes: this.expected.bytes,
        actualBytes: this.bytes,
      },
      this.context,
    );
  }
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}
