import type { CollectEvent } from './records';

/** What collection did, as plain JSON: small enough for a workflow history, mergeable across units. */
export interface CollectStatsData {
  documents: number;
  /** UTF-8 bytes of document text kept. */
  bytes: number;
  /** Quarantine records by reason. */
  quarantined: Record<string, number>;
  /** Documents whose invalid UTF-8 was replaced with U+FFFD. */
  utf8Repaired: number;
  /** Documents cut to maxDocumentBytes. */
  truncated: number;
  /** Records passed over as not documents (WARC requests, redirects), by what they were. */
  skipped: Record<string, number>;
}

/** Counts collect events; `merge` adds another unit's counts (order does not matter). */
export class CollectStats {
  documents = 0;
  bytes = 0;
  quarantined: Record<string, number> = {};
  utf8Repaired = 0;
  truncated = 0;
  skipped: Record<string, number> = {};

  static from(data: CollectStatsData): CollectStats {
    return new CollectStats().merge(data);
  }

  /** A record passed over as not a document (readUnit's `onSkipped`). */
  skip(what: string): this {
    this.skipped[what] = (this.skipped[what] ?? 0) + 1;
    return this;
  }

  add(event: CollectEvent): this {
    if (event.kind === 'quarantine') {
      this.quarantined[event.record.reason] = (this.quarantined[event.record.reason] ?? 0) + 1;
      return this;
    }
    this.documents++;
    this.bytes += Buffer.byteLength(event.doc.text, 'utf8');
    if (event.doc.metadata.utf8Repaired === true) this.utf8Repaired++;
    if (event.doc.metadata.truncated === true) this.truncated++;
    return this;
  }

  merge(other: CollectStatsData): this {
    this.documents += other.documents;
    this.bytes += other.bytes;
    this.utf8Repaired += other.utf8Repaired;
    this.truncated += other.truncated;
    for (const [reason, count] of Object.entries(other.quarantined)) {
      this.quarantined[reason] = (this.quarantined[reason] ?? 0) + count;
    }
    for (const [what, count] of Object.entries(other.skipped ?? {})) {
      this.skipped[what] = (this.skipped[what] ?? 0) + count;
    }
    return this;
  }

  get quarantinedTotal(): number {
    return Object.values(this.quarantined).reduce((sum, n) => sum + n, 0);
  }

  toJSON(): CollectStatsData {
    const sorted = (counts: Record<string, number>) =>
      Object.fromEntries(Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    return {
      documents: this.documents,
      bytes: this.bytes,
      quarantined: sorted(this.quarantined),
      utf8Repaired: this.utf8Repaired,
      truncated: this.truncated,
      skipped: sorted(this.skipped),
    };
  }
}
