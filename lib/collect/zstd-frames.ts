import { InputDataError } from './records';

/** zstd's own default decoder limit (window log 27); only `--long=28+` or `--ultra -22` on big inputs go past it. */
export const MAX_ZSTD_WINDOW_BYTES = 128 * 1024 * 1024;

const ZSTD_MAGIC = 0xfd2fb528;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const SKIPPABLE_MAGIC = 0x184d2a50;
const RESERVED_BLOCK_TYPE = 3;
const RLE_BLOCK_TYPE = 1;

/** A block whose bytes have all arrived: where it ends in the chunk, and the window its frame declared. */
export interface ScannedBlock {
  end: number;
  window: number;
}

type State =
  | { kind: 'magic' }
  | { kind: 'frame-descriptor' }
  | { kind: 'frame-header'; descriptor: number }
  | { kind: 'block-header' }
  | { kind: 'skip'; then: 'magic' | 'block-end'; last?: boolean }
  | { kind: 'skippable-size' };

/**
 * Walks zstd frame and block headers ahead of the decoder (fzstd), which trusts them: it allocates whatever window a
 * frame declares (up to 2 GiB from 6 bytes) and shifts the whole window once per block, so a frame of tiny blocks
 * with a large window costs minutes of CPU. Refuses windows past `maxWindowBytes` and reports each complete block.
 */
export class ZstdFrameScanner {
  private state: State = { kind: 'magic' };
  /** Header bytes gathered so far for the current state. */
  private header: number[] = [];
  private need = 4;
  private remaining = 0;
  private window = 0;
  private checksum = false;

  constructor(
    private readonly layer: symbol,
    private readonly maxWindowBytes = MAX_ZSTD_WINDOW_BYTES,
  ) {}

  /** Advances over `chunk`; returns the blocks that end inside it. Throws InputDataError on bad or costly headers. */
  scan(chunk: Uint8Array): ScannedBlock[] {
    const blocks: ScannedBlock[] = [];
    let i = 0;
    while (i < chunk.length) {
      if (this.state.kind === 'skip') {
        const take = Math.min(this.remaining, chunk.length - i);
        i += take;
        this.remaining -= take;
        if (this.remaining > 0) break;
        this.afterSkip(this.state, i, blocks);
        continue;
      }
      this.header.push(chunk[i++]);
      if (this.header.length < this.need) continue;
      const bytes = this.header;
      this.header = [];
      this.onHeader(bytes, i, blocks);
    }
    // A block with an empty payload (an empty raw block) ends where its header does.
    if (this.state.kind === 'skip' && this.remaining === 0) this.afterSkip(this.state, i, blocks);
    return blocks;
  }

  /** Throws unless the input ended between frames: a cut-off header would be read as zeros by the decoder. */
  finish(): void {
    if (this.state.kind !== 'magic' || this.header.length > 0) {
      throw new InputDataError(this.layer, 'corrupt_compression', 'corrupt zstd data: the input ends inside a frame');
    }
  }

  private onHeader(bytes: number[], end: number, blocks: ScannedBlock[]): void {
    switch (this.state.kind) {
      case 'magic': {
        const magic = (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
        if (magic === ZSTD_MAGIC) return this.expect({ kind: 'frame-descriptor' }, 1);
        if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC) return this.expect({ kind: 'skippable-size' }, 4);
        throw new InputDataError(this.layer, 'corrupt_compression', 'corrupt zstd data: no frame magic number');
      }
      case 'skippable-size': {
        const size = (bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (bytes[3] << 24)) >>> 0;
        return this.skipToNextFrame(size, end, blocks);
      }
      case 'frame-descriptor': {
        const descriptor = bytes[0];
        const singleSegment = (descriptor >> 5) & 1;
        const dictionaryBytes = [0, 1, 2, 4][descriptor & 3];
        const contentSizeFlag = descriptor >> 6;
        const contentSizeBytes = contentSizeFlag ? 1 << contentSizeFlag : singleSegment;
        // Never empty: without a window descriptor (single segment) there is always a content size.
        return this.expect(
          { kind: 'frame-header', descriptor },
          (singleSegment ? 0 : 1) + dictionaryBytes + contentSizeBytes,
        );
      }
      case 'frame-header': {
        this.window = declaredWindow(this.state.descriptor, bytes);
        this.checksum = ((this.state.descriptor >> 2) & 1) === 1;
        if (!(this.window >= 0)) {
          throw new InputDataError(this.layer, 'corrupt_compression', 'corrupt zstd data: an invalid window size');
        }
        if (this.window > this.maxWindowBytes) {
          throw new InputDataError(
            this.layer,
            'zstd_window',
            `zstd frame declares a ${this.window}-byte window, over the ${this.maxWindowBytes}-byte limit ` +
              '(the zstd default); recompress it without --long or --ultra',
          );
        }
        return this.expect({ kind: 'block-header' }, 3);
      }
      case 'block-header': {
        const value = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16);
        const last = (value & 1) === 1;
        const type = (value >> 1) & 3;
        const size = value >> 3;
        if (type === RESERVED_BLOCK_TYPE) {
          throw new InputDataError(this.layer, 'corrupt_compression', 'corrupt zstd data: a reserved block type');
        }
        this.state = { kind: 'skip', then: 'block-end', last };
        this.remaining = type === RLE_BLOCK_TYPE ? 1 : size;
        return;
      }
      case 'skip':
        return;
    }
  }

  private afterSkip(state: Extract<State, { kind: 'skip' }>, end: number, blocks: ScannedBlock[]): void {
    if (state.then === 'block-end') {
      blocks.push({ end, window: this.window });
      if (!state.last) return this.expect({ kind: 'block-header' }, 3);
      return this.skipToNextFrame(this.checksum ? 4 : 0, end, blocks);
    }
    return this.expect({ kind: 'magic' }, 4);
  }

  private skipToNextFrame(bytes: number, end: number, blocks: ScannedBlock[]): void {
    this.state = { kind: 'skip', then: 'magic' };
    this.remaining = bytes;
    if (bytes === 0) this.afterSkip(this.state, end, blocks);
  }

  private expect(state: State, bytes: number): void {
    this.state = state;
    this.need = bytes;
    this.header = [];
  }
}

/**
 * The window the decoder will allocate for a frame, computed as fzstd computes it (its 32-bit arithmetic included,
 * so a crafted 8-byte content size is judged by the number fzstd would actually use).
 */
function declaredWindow(descriptor: number, rest: number[]): number {
  const singleSegment = (descriptor >> 5) & 1;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3];
  const contentSizeFlag = descriptor >> 6;
  const contentSizeBytes = contentSizeFlag ? 1 << contentSizeFlag : singleSegment;
  const at = (singleSegment ? 0 : 1) + dictionaryBytes;
  let contentSize = 0;
  for (let i = 0; i < contentSizeBytes; i++) contentSize |= rest[at + i] << (i << 3);
  if (contentSizeFlag === 1) contentSize += 256;
  if (singleSegment) return contentSize;
  const windowDescriptor = rest[0];
  const base = 1 << (10 + (windowDescriptor >> 3));
  return base + (base >> 3) * (windowDescriptor & 7);
}
