/** The last `maxLines` lines written to a stream (a ring buffer), each cut to `maxLineChars`. */
export class LineTail {
  private readonly ring: string[] = [];
  private next = 0;

  constructor(
    readonly maxLines = 50,
    readonly maxLineChars = 500,
  ) {
    if (!Number.isInteger(maxLines) || maxLines < 1) throw new RangeError(`maxLines must be ≥ 1, got ${maxLines}`);
  }

  push(line: string): void {
    const kept = line.length > this.maxLineChars ? `${line.slice(0, this.maxLineChars)}…` : line;
    if (this.ring.length < this.maxLines) this.ring.push(kept);
    else this.ring[this.next] = kept;
    this.next = (this.next + 1) % this.maxLines;
  }

  /** Oldest first. */
  lines(): string[] {
    return this.ring.length < this.maxLines
      ? [...this.ring]
      : [...this.ring.slice(this.next), ...this.ring.slice(0, this.next)];
  }
}
