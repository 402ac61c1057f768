import { open, type FileHandle } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { StringDecoder } from 'node:string_decoder';

/** Calls `onLine` for every line of `stream`; resolves when the stream ends. */
export function forEachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): Promise<void> {
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  lines.on('line', onLine);
  return new Promise((resolve) => lines.once('close', resolve));
}

/**
 * Follows a file another process appends lines to (like `tail -f`), polling every `intervalMs`. The file may appear
 * late; `stop()` reads what is left, including a last line without its newline.
 */
export class FileLineFollower {
  private handle: FileHandle | undefined;
  private offset = 0;
  private partial = '';
  private readonly decoder = new StringDecoder('utf8');
  private reading: Promise<void> = Promise.resolve();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly path: string,
    private readonly onLine: (line: string) => void,
    intervalMs = 200,
  ) {
    this.timer = setInterval(() => void this.poll(), intervalMs);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.poll();
    this.partial += this.decoder.end();
    if (this.partial !== '') this.onLine(this.partial);
    this.partial = '';
    await this.handle?.close();
    this.handle = undefined;
  }

  private poll(): Promise<void> {
    this.reading = this.reading.then(() => this.readNew()).catch(() => undefined);
    return this.reading;
  }

  private async readNew(): Promise<void> {
    if (this.handle === undefined) {
      try {
        this.handle = await open(this.path, 'r');
      } catch {
        return; // not written yet
      }
    }
    const buffer = Buffer.alloc(1 << 16);
    for (;;) {
      const { bytesRead } = await this.handle.read(buffer, 0, buffer.length, this.offset);
      if (bytesRead === 0) return;
      this.offset += bytesRead;
      const lines = (this.partial + this.decoder.write(buffer.subarray(0, bytesRead))).split('\n');
      this.partial = lines.pop()!;
      for (const line of lines) this.onLine(line.replace(/\r$/, ''));
    }
  }
}
