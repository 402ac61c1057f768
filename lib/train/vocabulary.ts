import { createHash } from 'node:crypto';

/**
 * The token ids a model knows, remapped to dense rows 1..n (row 0 is every id it does not know). Tokenizer ids
 * are sparse (cl100k reaches 100,277) while a corpus uses a few thousand, so the embedding and output layers are
 * sized to the ids present. Optionally only the `maxSize - 1` most frequent ids get rows of their own.
 */
export class Vocabulary {
  private readonly rowOf = new Map<number, number>();

  /** `ids[i]` is the token id of row i + 1, ascending. */
  constructor(readonly ids: Uint32Array) {
    for (let i = 0; i < ids.length; i++) {
      if (i > 0 && ids[i] <= ids[i - 1]) throw new RangeError('vocabulary ids must be strictly ascending');
      this.rowOf.set(ids[i], i + 1);
    }
  }

  static fromTokens(tokens: Uint32Array, maxSize?: number): Vocabulary {
    const counts = new Map<number, number>();
    for (let i = 0; i < tokens.length; i++) counts.set(tokens[i], (counts.get(tokens[i]) ?? 0) + 1);
    let ids = [...counts.keys()];
    if (maxSize !== undefined && ids.length > maxSize - 1) {
      // Most frequent first, ties by id: a stable choice whatever order the Map was filled in.
      ids.sort((a, b) => counts.get(b)! - counts.get(a)! || a - b);
      ids = ids.slice(0, maxSize - 1);
    }
    return new Vocabulary(Uint32Array.from(ids).sort());
  }

  /** Rows, the unknown row included. */
  get size(): number {
    return this.ids.length + 1;
  }

  row(id: number): number {
    return this.rowOf.get(id) ?? 0;
  }

  /** Token ids as rows, one new array. */
  encode(tokens: Uint32Array): Uint32Array {
    const rows = new Uint32Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) rows[i] = this.rowOf.get(tokens[i]) ?? 0;
    return rows;
  }

  digest(): string {
    return createHash('sha256')
      .update(new Uint8Array(this.ids.buffer, this.ids.byteOffset, this.ids.byteLength))
      .digest('hex');
  }
}
