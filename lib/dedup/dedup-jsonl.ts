import * as fs from 'node:fs';
import * as path from 'node:path';
import { EdgeList, unionEdges, verifyGroups, type BandKeyChunk, type CandidateGroups } from './band-join';
import { resolveClusters, type Clusters } from './cluster';
import { DedupInputError } from './errors';
import { exactDuplicates } from './exact';
import { shingleSetOf, type KeptRange, type SignedChunk } from './jsonl-batch';
import { sCurveThreshold } from './lsh-params';
import { resolveDedupOptions, verifyOptionsOf, type DedupOptions, type ResolvedDedupOptions } from './options';
import { sortByKey64 } from './radix-sort';
import { DedupPool } from './dedup-pool';
import { signatureIndexParts } from './formats';
import {
  checkIndexCompatible,
  INDEX_FILE,
  indexBandKeys,
  readSignatureIndex,
  writeSignatureIndexFile,
} from './signature-index';
import { ExactSimilarity, SignatureStore } from './signatures';
import { UnionFind } from './union-find';

export interface DedupProgress {
  phase: 'sign' | 'cluster' | 'write';
  bytesDone: number;
  bytesTotal: number;
  docs: number;
}

export interface DedupJsonlOptions extends DedupOptions {
  /** Worker threads that sign (0: sign on the calling thread). Default 1. */
  workers?: number;
  /** Bytes of whole lines per unit of work. */
  chunkBytes?: number;
  /**
   * Signature indexes to dedup against (index files, or the --out folders of earlier runs): their documents are
   * never removed, and a new document that repeats one is removed naming it. Default none.
   */
  index?: readonly string[];
  /** Write `index.bin`, the signature index of the kept documents (default true). */
  writeIndex?: boolean;
  onProgress?: (p: DedupProgress) => void;
}

/** What `DIR/stats.json` holds. */
export interface DedupStats {
  docs: number;
  kept: number;
  removed: number;
  exactDuplicates: number;
  nearDuplicates: number;
  /** Clusters of two or more documents. */
  clusters: number;
  /** Documents in the indexes deduplicated against (never removed). */
  indexed: number;
  /** Removed documents whose kept document is an indexed one. */
  indexDuplicates: number;
  threshold: number;
  numPerm: number;
  ngram: number;
  bands: number;
  rows: number;
  /** (1/b)^(1/r): where the S-curve is steepest, near its 50% point. */
  sCurveMidpoint: number;
  /** How candidate pairs were verified: exact Jaccard of shingle sets, the signatures' estimate, or not at all. */
  verification: 'exact' | 'estimate' | 'none';
  verifyThreshold: number | null;
  candidatePairs: number;
  verifiedPairs: number;
  emptyDocs: number;
  repairedUtf8Lines: number;
  workers: number;
  bytes: number;
  seconds: number;
  /** Input MB (10^6 bytes) per second, end to end. */
  mbPerSecond: number;
  signSeconds: number;
  clusterSeconds: number;
  writeSeconds: number;
  peakRssMB: number;
}

/** A growable Uint32Array. */
class U32 {
  data = new Uint32Array(1 << 12);
  length = 0;
  append(values: Uint32Array, from = 0, to = values.length): void {
    const n = to - from;
    if (this.length + n > this.data.length) {
      const next = new Uint32Array(Math.max(this.data.length * 2, this.length + n));
      next.set(this.data.subarray(0, this.length));
      this.data = next;
    }
    this.data.set(values.subarray(from, to), this.length);
    this.length += n;
  }
  push(value: number): void {
    if (this.length === this.data.length) {
      const next = new Uint32Array(this.data.length * 2);
      next.set(this.data);
      this.data = next;
    }
    this.data[this.length++] = value;
  }
  view(): Uint32Array {
    return this.data.subarray(0, this.length);
  }
}

const MB = 1e6;

/**
 * Near-duplicate dedup of a JSON-lines file, in process: documents are signed on worker threads, then band join,
 * verification and clustering run here, and `outDir` gets kept.jsonl (kept lines unchanged, in input order),
 * duplicates.jsonl (`{"id", "duplicate_of", "similarity"}` per removed document) and stats.json, written last.
 */
export async function dedupJsonl(inputPath: string, outDir: string, opts: DedupJsonlOptions = {}): Promise<DedupStats> {
  const started = performance.now();
  const options = resolveDedupOptions(opts);
  const workers = opts.workers ?? 1;
  if (!Number.isInteger(workers) || workers < 0)
    throw new DedupInputError(`workers = ${workers}: expected a whole number ≥ 0`);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(inputPath);
  } catch {
    throw new DedupInputError(`input not found: ${inputPath}`);
  }
  if (!stat.isFile()) throw new DedupInputError(`input is not a file: ${inputPath}`);
  const bytesTotal = stat.size;
  const { numPerm } = options.minhash;
  const { bands, rows } = options.lsh;
  const progress = (phase: DedupProgress['phase'], bytesDone: number, docs: number) =>
    opts.onProgress?.({ phase, bytesDone, bytesTotal, docs });

  // Indexed documents come first: numbered ahead of the new ones, each cluster keeps an indexed document if it has one.
  const store = new SignatureStore(numPerm);
  const ids: string[] = [];
  const lines = new U32();
  const idHi = new U32();
  const idLo = new U32();
  const exactHi = new U32();
  const exactLo = new U32();
  const indexChunks: BandKeyChunk[] = [];
  for (const source of opts.index ?? []) {
    const index = readSignatureIndex(source);
    checkIndexCompatible(index, options);
    const sig = index.signatures;
    indexChunks.push(indexBandKeys(index, options.lsh, ids.length));
    store.add({ docBase: ids.length, count: sig.count, sigs: sig.sigs });
    for (const id of index.ids) ids.push(id);
    const zeros = new Uint32Array(sig.count);
    lines.append(zeros);
    idHi.append(zeros);
    idLo.append(zeros);
    exactHi.append(sig.exactHi);
    exactLo.append(sig.exactLo);
  }
  const indexed = ids.length;

  // Stage a: workers read and sign byte ranges of the input; results are taken in input order.
  const chunks: (BandKeyChunk & {
    start: number;
    length: number;
    lines: Uint32Array;
    outBytes: Uint32Array;
    sigs: Uint32Array;
  })[] = [];
  let emptyDocs = 0;
  let repairedLines = 0;
  let nextLine = 1;
  // Earlier outputs in outDir are replaced: stats.json (read last) goes first, and the files go in the background
  // while the workers sign (freeing a large file's blocks takes a while on some filesystems).
  const outputs = ['stats.json', 'kept.jsonl', 'duplicates.jsonl', INDEX_FILE].map((f) => path.join(outDir, f));
  fs.rmSync(outputs[0], { force: true });
  const cleared = Promise.all(outputs.slice(1).map((f) => fs.promises.rm(f, { force: true })));
  cleared.catch(() => undefined);
  const pool = DedupPool.shared(workers);
  const absorb = async (signing: Promise<SignedChunk>) => {
    let chunk: SignedChunk;
    try {
      chunk = await signing;
    } catch (err) {
      // Workers number lines from their chunk's start.
      if (err instanceof DedupInputError && err.problem !== undefined)
        throw DedupInputError.atLine(nextLine + err.lines[0] - 1, err.problem);
      throw err;
    }
    const docBase = ids.length;
    store.add({ docBase, count: chunk.count, sigs: chunk.sigs });
    chunks.push({
      docBase,
      count: chunk.count,
      words: chunk.words,
      bandKeys: chunk.bandKeys,
      start: chunk.start,
      length: chunk.length,
      lines: chunk.lines,
      outBytes: chunk.outBytes,
      sigs: chunk.sigs,
    });
    for (const id of chunk.ids) ids.push(id);
    for (let i = 0; i < chunk.count; i++) lines.push(nextLine + chunk.lines[i] - 1);
    nextLine += chunk.lineCount;
    idHi.append(chunk.idHi);
    idLo.append(chunk.idLo);
    exactHi.append(chunk.exactHi);
    exactLo.append(chunk.exactLo);
    repairedLines += chunk.repairedLines;
    for (let i = 0; i < chunk.count; i++) if (chunk.words[i] === 0) emptyDocs++;
  };
  const chunkBytes = opts.chunkBytes ?? 1 << 20;
  let joins: Promise<CandidateGroups[]>[] = [];
  let shares = 1;
  const inFlight: { end: number; signing: Promise<SignedChunk> }[] = [];
  try {
    const maxInFlight = Math.max(2, pool.size * 3);
    for (let start = 0; start < bytesTotal; start += chunkBytes) {
      const end = Math.min(start + chunkBytes, bytesTotal);
      const signing = pool.sign(options, inputPath, start, end);
      // Awaited in order below; this only keeps a failure from counting as unhandled before its turn.
      signing.catch(() => undefined);
      inFlight.push({ end, signing });
      while (inFlight.length >= maxInFlight) {
        const next = inFlight.shift() as (typeof inFlight)[number];
        await absorb(next.signing);
        progress('sign', next.end, ids.length);
      }
    }
    for (const next of inFlight.splice(0)) {
      await absorb(next.signing);
      progress('sign', next.end, ids.length);
    }
    progress('cluster', bytesTotal, ids.length);
    // Stage b, partitioned by band over the workers; meanwhile this thread checks ids and exact duplicates.
    shares = Math.min(Math.max(1, pool.size), bands);
    joins = Array.from({ length: shares }, (_, w) =>
      pool.join(
        [...indexChunks, ...chunks],
        bands,
        Array.from({ length: bands }, (_, b) => b).filter((b) => b % shares === w),
      ),
    );
    for (const j of joins) j.catch(() => undefined);
  } catch (err) {
    // Let in-flight jobs finish before the pool's next run.
    await Promise.allSettled([...inFlight.map((f) => f.signing), ...joins]);
    throw err;
  }
  const signed = performance.now();
  const docs = ids.length;
  const uf = new UnionFind(docs);
  let exactRepeats = 0;
  let indexDuplicates = 0;
  let candidatePairs = 0;
  let verifiedPairs = 0;
  let clusters: Clusters;
  let clustered: number;
  try {
    // Duplicate ids are an input error: sort id hashes, confirm equal hashes by the ids themselves.
    checkUniqueIds(
      ids.slice(indexed),
      idHi.view().subarray(indexed),
      idLo.view().subarray(indexed),
      lines.view().subarray(indexed),
    );
    if (options.exact)
      exactDuplicates(exactHi.view(), exactLo.view(), identity(docs), uf, (_, doc) => {
        if (doc >= indexed) exactRepeats++;
      });
    // Stage c: every band's groups verified on their own (as the pipeline's join does), then one union of all edges.
    const joined = await Promise.all(joins);
    const oracle =
      options.verification === 'exact'
        ? await candidateShingles(pool, options, inputPath, chunks, joined, docs, indexed, store)
        : store;
    const edges = new EdgeList();
    const verify = verifyOptionsOf(options);
    for (let b = 0; b < bands; b++) {
      const counts = verifyGroups(joined[b % shares][Math.floor(b / shares)], oracle, edges, verify);
      candidatePairs += counts.candidates;
      verifiedPairs += counts.accepted;
    }
    unionEdges(uf, edges);
    clusters = resolveClusters(uf, docs, oracle, { removableFrom: indexed });
    for (const d of clusters.removed) if (clusters.keptOf[d] < indexed) indexDuplicates++;
    clustered = performance.now();

    // Stage e: the outputs, stats last. Workers copy their ranges' kept lines to precomputed offsets in parallel.
    progress('write', 0, docs);
    fs.mkdirSync(outDir, { recursive: true });
    await cleared;
    const dupFile = path.join(outDir, 'duplicates.jsonl');
    writeDuplicates(dupFile + '.partial', clusters.removed, clusters.keptOf, clusters.similarity, ids);
    const keptFile = path.join(outDir, 'kept.jsonl');
    const ranges: KeptRange[] = [];
    let offset = 0;
    for (const c of chunks) {
      const kept: number[] = [];
      let size = 0;
      for (let i = 0; i < c.count; i++)
        if (clusters.keptOf[c.docBase + i] === c.docBase + i) {
          kept.push(c.lines[i]);
          size += c.outBytes[i];
        }
      if (kept.length)
        ranges.push({
          input: inputPath,
          output: keptFile + '.partial',
          start: c.start,
          length: c.length,
          offset,
          size,
          keptLines: Uint32Array.from(kept),
        });
      offset += size;
    }
    fs.writeFileSync(keptFile + '.partial', '');
    fs.truncateSync(keptFile + '.partial', offset);
    const writers = Math.max(1, pool.size);
    await Promise.all(
      Array.from({ length: writers }, (_, w) => pool.write(ranges.filter((_, i) => i % writers === w))),
    );
    fs.renameSync(dupFile + '.partial', dupFile);
    fs.renameSync(keptFile + '.partial', keptFile);
    if (opts.writeIndex ?? true)
      writeKeptIndex(
        path.join(outDir, INDEX_FILE),
        options,
        chunks,
        clusters.keptOf,
        ids,
        exactHi.view(),
        exactLo.view(),
      );
    progress('write', bytesTotal, docs);
  } finally {
    await Promise.allSettled(joins);
  }
  const finished = performance.now();
  const seconds = (finished - started) / 1000;
  const newDocs = docs - indexed;
  const stats: DedupStats = {
    docs: newDocs,
    kept: newDocs - clusters.removed.length,
    removed: clusters.removed.length,
    exactDuplicates: exactRepeats,
    nearDuplicates: clusters.removed.length - exactRepeats,
    clusters: clusters.clusters,
    indexed,
    indexDuplicates,
    threshold: options.threshold,
    numPerm,
    ngram: options.minhash.ngram,
    bands,
    rows,
    sCurveMidpoint: round(sCurveThreshold(options.lsh), 4),
    verification: options.verification,
    verifyThreshold: options.verifyThreshold === undefined ? null : round(options.verifyThreshold, 4),
    candidatePairs,
    verifiedPairs,
    emptyDocs,
    repairedUtf8Lines: repairedLines,
    workers,
    bytes: bytesTotal,
    seconds: round(seconds, 3),
    mbPerSecond: round(bytesTotal / MB / seconds, 2),
    signSeconds: round((signed - started) / 1000, 3),
    clusterSeconds: round((clustered - signed) / 1000, 3),
    writeSeconds: round((finished - clustered) / 1000, 3),
    peakRssMB: peakRssMB(),
  };
  fs.writeFileSync(path.join(outDir, 'stats.json'), JSON.stringify(stats, null, 2) + '\n');
  return stats;
}

/**
 * Peak resident memory of this process. Linux's VmHWM belongs to the address space; getrusage's maxrss survives
 * exec, so a child started by a big parent would report the parent's peak.
 */
function peakRssMB(): number {
  try {
    const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Math.round(Number(hwm[1]) / 1024);
  } catch {
    // Not Linux.
  }
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

/**
 * Exact verification's second read: the shingle sets of every new document that shares a band with another, read
 * again from the input by the pool's workers (only the chunks holding such documents), so memory holds the
 * candidates' sets, never the whole input's. Indexed documents keep their estimate.
 */
async function candidateShingles(
  pool: DedupPool,
  options: ResolvedDedupOptions,
  inputPath: string,
  chunks: readonly { docBase: number; count: number; start: number; length: number }[],
  joined: readonly CandidateGroups[][],
  docs: number,
  indexed: number,
  estimate: SignatureStore,
): Promise<ExactSimilarity> {
  const wanted = new Uint8Array(docs);
  for (const perWorker of joined)
    for (const groups of perWorker) for (const d of groups.docs) if (d >= indexed) wanted[d] = 1;
  const oracle = new ExactSimilarity(estimate);
  const settings = { minhash: options.minhash, lsh: options.lsh, exactField: options.exactField };
  await Promise.all(
    chunks.map(async (c) => {
      const locals: number[] = [];
      for (let i = 0; i < c.count; i++) if (wanted[c.docBase + i]) locals.push(i);
      if (locals.length === 0) return;
      const packed = await pool.shingles(settings, inputPath, c.start, c.start + c.length, Uint32Array.from(locals));
      locals.forEach((local, k) => oracle.add(c.docBase + local, shingleSetOf(packed, k)));
    }),
  );
  return oracle;
}

function identity(length: number): Uint32Array {
  const out = new Uint32Array(length);
  for (let i = 0; i < length; i++) out[i] = i;
  return out;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

function checkUniqueIds(ids: string[], hi: Uint32Array, lo: Uint32Array, lines: Uint32Array): void {
  const h = hi.slice();
  const l = lo.slice();
  const order = identity(ids.length);
  sortByKey64(h, l, order);
  for (let i = 1; i < order.length; i++) {
    if (h[i] !== h[i - 1] || l[i] !== l[i - 1]) continue;
    // Equal hashes: find an earlier document of the run with the very same id.
    for (let j = i - 1; j >= 0 && h[j] === h[i] && l[j] === l[i]; j--) {
      if (ids[order[j]] !== ids[order[i]]) continue;
      const [a, b] = [lines[order[j]], lines[order[i]]].sort((x, y) => x - y);
      throw new DedupInputError(`duplicate id ${ids[order[i]]} on lines ${a} and ${b}; ids must be unique`, [a, b]);
    }
  }
}

/** The signature index of the kept documents, in kept.jsonl's order: what a later run dedups against. */
function writeKeptIndex(
  file: string,
  options: ResolvedDedupOptions,
  chunks: readonly { docBase: number; count: number; words: Uint32Array; sigs: Uint32Array }[],
  keptOf: Uint32Array,
  ids: readonly string[],
  exactHi: Uint32Array,
  exactLo: Uint32Array,
): void {
  const numPerm = options.minhash.numPerm;
  const kept: number[] = [];
  const words: number[] = [];
  for (const c of chunks)
    for (let i = 0; i < c.count; i++)
      if (keptOf[c.docBase + i] === c.docBase + i) {
        kept.push(c.docBase + i);
        words.push(c.words[i]);
      }
  // One chunk's kept rows at a time: never a second copy of every signature.
  function* blocks(): Generator<Uint32Array> {
    for (const c of chunks) {
      const rows: number[] = [];
      for (let i = 0; i < c.count; i++) if (keptOf[c.docBase + i] === c.docBase + i) rows.push(i);
      if (rows.length === c.count) yield c.sigs.subarray(0, c.count * numPerm);
      else if (rows.length > 0) {
        const block = new Uint32Array(rows.length * numPerm);
        rows.forEach((r, k) => block.set(c.sigs.subarray(r * numPerm, (r + 1) * numPerm), k * numPerm));
        yield block;
      }
    }
  }
  const pick = (column: Uint32Array) => Uint32Array.from(kept, (d) => column[d]);
  writeSignatureIndexFile(
    file,
    signatureIndexParts(
      { params: options.minhash, exactField: options.exactField ?? null },
      kept.map((d) => ids[d]),
      {
        count: kept.length,
        numPerm,
        sigs: blocks(),
        exactHi: pick(exactHi),
        exactLo: pick(exactLo),
        words: Uint32Array.from(words),
      },
    ),
  );
}

function writeDuplicates(
  file: string,
  removed: Uint32Array,
  keptOf: Uint32Array,
  similarity: Float32Array,
  ids: string[],
) {
  const fd = fs.openSync(file, 'w');
  try {
    let out = '';
    for (let i = 0; i < removed.length; i++) {
      const d = removed[i];
      out += `{"id":${ids[d]},"duplicate_of":${ids[keptOf[d]]},"similarity":${round(similarity[i], 4)}}\n`;
      if (out.length > 1 << 20) {
        fs.writeSync(fd, out);
        out = '';
      }
    }
    fs.writeSync(fd, out);
  } finally {
    fs.closeSync(fd);
  }
}
