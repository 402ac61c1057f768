import { parentPort, workerData } from 'node:worker_threads';
import { joinBandsOfChunks, type BandKeyChunk, type CandidateGroups } from './band-join';
import { DedupInputError } from './errors';
import {
  ChunkSigner,
  exactKeysOfRange,
  writeKeptRange,
  type ExactKeys,
  type ChunkSettings,
  type KeptRange,
  type PackedShingles,
  type SignedChunk,
} from './jsonl-batch';

/**
 * Worker thread body: reads and signs byte ranges of the input (stage a), joins the bands it is given (stage b) and
 * writes its ranges' kept lines (stage e); for the pipeline's exact dedup, the keys of a partition's byte range.
 */
export type WorkerJob =
  | { kind: 'sign'; seq: number; settings: ChunkSettings; file: string; start: number; end: number }
  | { kind: 'join'; seq: number; chunks: BandKeyChunk[]; numBands: number; bands: number[] }
  | { kind: 'write'; seq: number; ranges: KeptRange[] }
  | { kind: 'exactKeys'; seq: number; file: string; start: number; end: number }
  | {
      kind: 'shingles';
      seq: number;
      settings: ChunkSettings;
      file: string;
      start: number;
      end: number;
      docs: Uint32Array;
    };

export type WorkerReply =
  | { seq: number; chunk: SignedChunk }
  | { seq: number; groups: CandidateGroups[] }
  | { seq: number; written: number }
  | { seq: number; exactKeys: ExactKeys }
  | { seq: number; shingles: PackedShingles }
  | { seq: number; error: { message: string; line?: number; problem?: string } };

const signers = new Map<string, ChunkSigner>();

/** One signer per settings (a run's), kept for the next run with the same settings. */
function signerFor(settings: ChunkSettings): ChunkSigner {
  const key = JSON.stringify(settings);
  let signer = signers.get(key);
  if (!signer) {
    if (signers.size >= 4) signers.clear();
    signer = new ChunkSigner(settings);
    signers.set(key, signer);
  }
  return signer;
}

/** What a job yields and which of its buffers can move instead of being copied. */
export function runJob(job: WorkerJob): { reply: WorkerReply; transfer: ArrayBuffer[] } {
  const seq = job.seq;
  switch (job.kind) {
    case 'sign': {
      const chunk = signerFor(job.settings).signRange(job.file, job.start, job.end);
      const transfer = [chunk.lines, chunk.idHi, chunk.idLo, chunk.exactHi, chunk.exactLo, chunk.words, chunk.outBytes];
      if (chunk.shingles) transfer.push(chunk.shingles.offsets, chunk.shingles.values);
      return { reply: { seq, chunk }, transfer: transfer.map((a) => a.buffer as ArrayBuffer) };
    }
    case 'join': {
      const groups = joinBandsOfChunks(job.chunks, job.numBands, job.bands);
      return {
        reply: { seq, groups },
        transfer: groups.flatMap((g) => [g.offsets.buffer, g.docs.buffer]) as ArrayBuffer[],
      };
    }
    case 'shingles': {
      const shingles = signerFor(job.settings).shinglesOfRange(job.file, job.start, job.end, job.docs);
      return { reply: { seq, shingles }, transfer: [shingles.offsets.buffer, shingles.values.buffer] as ArrayBuffer[] };
    }
    case 'exactKeys':
      return { reply: { seq, exactKeys: exactKeysOfRange(job.file, job.start, job.end) }, transfer: [] };
    case 'write':
      return { reply: { seq, written: job.ranges.reduce((n, r) => n + writeKeptRange(r), 0) }, transfer: [] };
  }
}

export function errorReply(seq: number, err: unknown): WorkerReply {
  const line = err instanceof DedupInputError ? err.lines[0] : undefined;
  const problem = err instanceof DedupInputError ? err.problem : undefined;
  return { seq, error: { message: (err as Error).message, line, problem } };
}

if (parentPort && workerData === 'flywheel-dedup') {
  const port = parentPort;
  port.on('message', (job: WorkerJob) => {
    try {
      const { reply, transfer } = runJob(job);
      port.postMessage(reply, transfer);
    } catch (err) {
      port.postMessage(errorReply(job.seq, err));
    }
  });
}
