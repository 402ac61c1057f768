import { createHash, type Hash } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { Transform, type TransformCallback } from 'node:stream';
import { FlywheelError } from '../common';
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

/**
 * sha256 on a worker thread. Node hashes only synchronously, and at ~1.7 GB/s hashing a stream on the event loop took
 * as long as the encoding in front of it; on its own thread it overlaps both the encoding and the disk write. Each
 * chunk is copied once (the caller keeps its buffer) and moved to the thread without a second copy. One thread
 * serves every hash of the process, in message order, so each hash sees its chunks in the order they were given.
 */
export class BackgroundSha256 {
  private readonly ticket = hashThread.open();
  private finished = false;

  /** Queues a copy of `chunk`; the caller may reuse its buffer at once. */
  update(chunk: Uint8Array): void {
    hashThread.update(this.ticket, chunk);
  }

  /** Waits while more than `bytes` of this process's chunks are still queued for hashing (memory stays bounded). */
  caughtUp(bytes: number): Promise<void> {
    return hashThread.caughtUp(bytes);
  }

  digest(): Promise<string> {
    this.finished = true;
    return hashThread.digest(this.ticket);
  }

  /** Drops the hash without a digest (the write it checked failed). */
  abandon(): void {
    if (!this.finished) hashThread.abandon(this.ticket);
    this.finished = true;
  }
}

const HASH_THREAD_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.bytes) {
    let hash = hashes.get(m.id);
    if (!hash) hashes.set(m.id, (hash = createHash('sha256')));
    hash.update(new Uint8Array(m.bytes));
    parentPort.postMessage({ hashed: m.bytes.byteLength });
  } else if (m.digest) {
    const hash = hashes.get(m.id) ?? createHash('sha256');
    hashes.delete(m.id);
    parentPort.postMessage({ id: m.id, sha256: hash.digest('hex') });
  } else {
    hashes.delete(m.id);
  }
});
`;

/** The hashing thread died (it is restarted for the next hash): retrying the write that used it is worth it. */
export class HashThreadFailed extends FlywheelError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HashThreadFailed', message, { retryable: true, cause: options?.cause });
  }
}

interface HashTicket {
  id: number;
  /** The thread the hash began on: if that thread died, its chunks are lost and the hash fails. */
  thread: number;
}

/** The one hashing thread: started on first use, and holding the process open only while it has work. */
const hashThread = new (class HashThread {
  private worker: Worker | undefined;
  private generation = 0;
  private nextId = 0;
  private queued = 0;
  private readonly digests = new Map<number, { resolve(sha256: string): void; reject(err: unknown): void }>();
  private waiters: { bytes: number; resolve(): void; reject(err: unknown): void }[] = [];

  open(): HashTicket {
    this.thread();
    return { id: this.nextId++, thread: this.generation };
  }

  update(ticket: HashTicket, chunk: Uint8Array): void {
    this.check(ticket);
    if (chunk.byteLength === 0) return;
    const copy = new Uint8Array(chunk); // exactly the view's bytes: cloning the view would copy its whole buffer
    this.queued += copy.byteLength;
    this.thread().postMessage({ id: ticket.id, bytes: copy.buffer }, [copy.buffer]);
    this.holdOpen();
  }

  caughtUp(bytes: number): Promise<void> {
    if (this.queued <= bytes) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ bytes, resolve, reject }));
  }

  digest(ticket: HashTicket): Promise<string> {
    return new Promise((resolve, reject) => {
      this.check(ticket);
      this.digests.set(ticket.id, { resolve, reject });
      this.thread().postMessage({ id: ticket.id, digest: true });
      this.holdOpen();
    });
  }

  abandon(ticket: HashTicket): void {
    if (ticket.thread === this.generation) this.worker?.postMessage({ id: ticket.id });
  }

  private check(ticket: HashTicket): void {
    if (ticket.thread !== this.generation) {
      throw new HashThreadFailed('the sha256 thread failed while this hash was in progress');
    }
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(HASH_THREAD_SOURCE, { eval: true });
    worker.unref();
    worker.on('message', (m: { hashed?: number; id?: number; sha256?: string }) => {
      if (worker !== this.worker) return; // a message that outlived its thread's failure counts for nothing
      if (m.hashed !== undefined) {
        this.queued -= m.hashed;
        this.waiters = this.waiters.filter((w) => (this.queued <= w.bytes ? (w.resolve(), false) : true));
      } else if (m.id !== undefined) {
        this.digests.get(m.id)?.resolve(m.sha256!);
        this.digests.delete(m.id);
      }
      this.holdOpen();
    });
    worker.on('error', (err) =>
      this.fail(worker, new HashThreadFailed(`the sha256 thread failed: ${err}`, { cause: err })),
    );
    worker.on('exit', (code) => this.fail(worker, new HashThreadFailed(`the sha256 thread exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  /** Keeps the process alive while a digest or a queued chunk is outstanding, and no longer. */
  private holdOpen(): void {
    if (!this.worker) return;
    if (this.digests.size > 0 || this.queued > 0) this.worker.ref();
    else this.worker.unref();
  }

  /** The thread died: everything waiting on it fails, and the next hash starts a new thread. */
  private fail(worker: Worker, err: unknown): void {
    if (worker !== this.worker) return;
    this.worker = undefined;
    this.generation += 1;
    this.queued = 0;
    for (const d of this.digests.values()) d.reject(err);
    this.digests.clear();
    for (const w of this.waiters) w.reject(err);
    this.waiters = [];
  }
})();
