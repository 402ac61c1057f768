import type { FilterResult } from './filter-document';

/** What filtering did, as plain JSON: small enough for a workflow history, mergeable across partitions. */
export interface QualityStatsData {
  documents: number;
  kept: number;
  /** Dropped documents by rule ('gopher_quality.min_words', 'c4.too_few_sentences', ...). */
  dropped: Record<string, number>;
  /** Lines C4 removed from kept documents, by reason. */
  c4LinesRemoved: Record<string, number>;
  c4CitationsRemoved: number;
}

/** Counts filter results; `merge` adds another partition's counts (order does not matter). */
export class QualityStats {
  documents = 0;
  kept = 0;
  dropped: Record<string, number> = {};
  c4LinesRemoved: Record<string, number> = {};
  c4CitationsRemoved = 0;

  static from(data: QualityStatsData): QualityStats {
    return new QualityStats().merge(data);
  }

  add(result: FilterResult): this {
    this.documents++;
    if (!result.kept) {
      this.dropped[result.rule] = (this.dropped[result.rule] ?? 0) + 1;
      return this;
    }
    this.kept++;
    if (result.c4 !== undefined) {
      for (const [reason, n] of Object.entries(result.c4.linesRemoved)) addTo(this.c4LinesRemoved, reason, n ?? 0);
      this.c4CitationsRemoved += result.c4.citationsRemoved;
    }
    return this;
  }

  merge(other: QualityStatsData): this {
    this.documents += other.documents;
    this.kept += other.kept;
    this.c4CitationsRemoved += other.c4CitationsRemoved;
    for (const [rule, n] of Object.entries(other.dropped)) addTo(this.dropped, rule, n);
    for (const [reason, n] of Object.entries(other.c4LinesRemoved)) addTo(this.c4LinesRemoved, reason, n);
    return this;
  }

  get droppedTotal(): number {
    return this.documents - this.kept;
  }

  toJSON(): QualityStatsData {
    return {
      documents: this.documents,
      kept: this.kept,
      dropped: sortedKeys(this.dropped),
      c4LinesRemoved: sortedKeys(this.c4LinesRemoved),
      c4CitationsRemoved: this.c4CitationsRemoved,
    };
  }
}

function addTo(counts: Record<string, number>, key: string, n: number): void {
  counts[key] = (counts[key] ?? 0) + n;
}

function sortedKeys(counts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
