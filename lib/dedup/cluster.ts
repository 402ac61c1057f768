import type { SimilarityOracle } from './signatures';
import type { UnionFind } from './union-find';

/** Stage d's outcome: which document each document's cluster keeps, and what it removes. */
export interface Clusters {
  /** keptOf[d] = the kept document of d's cluster (d itself when d is kept). */
  keptOf: Uint32Array;
  /** Removed documents in input order. */
  removed: Uint32Array;
  /** Estimated Jaccard of each removed document with its cluster's kept document. */
  similarity: Float32Array;
  /** Clusters with more than one document. */
  clusters: number;
}

export interface ResolveOptions {
  /**
   * Documents before this one are never removed (an index's documents, numbered ahead of the new ones): they only
   * name the cluster a new document joins. Clusters are counted when they remove a document. Default 0.
   */
  removableFrom?: number;
}

/** Connected components of the duplicate edges; the earliest document of each is kept (the union-find root). */
export function resolveClusters(
  uf: UnionFind,
  size: number,
  oracle: SimilarityOracle,
  opts: ResolveOptions = {},
): Clusters {
  const from = opts.removableFrom ?? 0;
  const keptOf = new Uint32Array(size);
  const removed: number[] = [];
  const multi = new Uint8Array(size);
  let clusters = 0;
  for (let d = 0; d < size; d++) {
    const root = uf.find(d);
    keptOf[d] = root;
    if (root !== d && d >= from) {
      removed.push(d);
      if (!multi[root]) {
        multi[root] = 1;
        clusters++;
      }
    }
  }
  const similarity = new Float32Array(removed.length);
  removed.forEach((d, i) => (similarity[i] = oracle.similarity(d, keptOf[d])));
  return { keptOf, removed: Uint32Array.from(removed), similarity, clusters };
}
