import type { Document, QuarantineRecord } from '../document';
import { excerpt, truncateUtf8 } from './bytes';
import type { CollectContext } from './context';
import { CollectError, SourceMisconfigured } from './errors';
import type { ParseOptions } from './formats/input';
import { readJsonLines } from './formats/json-records';
import { parseInput } from './formats/parse-input';
import { readParquet } from './formats/parquet-rows';
import { ownedLineBytes } from './line-ranges';
import { sampleRange } from './plan';
import {
  positionLabel,
  positionSuffix,
  type CollectEvent,
  type QuarantineReason,
  type RawDocument,
  type RawQuarantine,
  type RawRecord,
} from './records';
import { sampleCorpus } from './sample-corpus';
import type { SourceSpec } from './source-spec';
import { derivedDocumentId, type SourceUnit } from './source-unit';
import { openPathUnit } from './sources/local-files';
import type { OpenedUnit } from './sources/opened-unit';
import { openUrlUnit } from './sources/http-download';
import { openS3Unit } from './sources/s3-objects';
import { openTierUnit } from './sources/tier-objects';

export interface ReadUnitOptions {
  /** Skip the events before this ordinal: the resume cursor of an interrupted read. */
  startAt?: number;
  /**
   * Told of each record passed over as not a document (see RawSkipped: a WARC request, a redirect), as it is read:
   * before the event that follows it. Such records take no ordinal and are not events; like events, those before
   * `startAt` are not told.
   */
  onSkipped?: (what: string) => void;
}

/**
 * Reads one unit as a stream of documents and quarantine records, numbered by `ordinal` (their position in the
 * unit, the same on every read of the same bytes). Problems with the data become quarantine records; a unit that
 * cannot be read at all throws its typed error, or with `onSourceError: 'skip'` ends with one quarantine record.
 */
export async function* readUnit(
  unit: SourceUnit,
  ctx: CollectContext,
  opts: ReadUnitOptions = {},
): AsyncGenerator<CollectEvent> {
  const startAt = opts.startAt ?? 0;
  let ordinal = 0;
  try {
    for await (const raw of rawRecords(unit, ctx)) {
      if (raw.kind === 'skipped') {
        if (ordinal >= startAt) opts.onSkipped?.(raw.what);
        continue;
      }
      if (ordinal >= startAt) yield toEvent(raw, unit, ctx, ordinal);
      ordinal++;
    }
  } catch (err) {
    if (!(err instanceof CollectError) || err instanceof SourceMisconfigured || unit.source.onSourceError === 'fail') {
      throw err;
    }
    if (ordinal >= startAt) {
      yield {
        kind: 'quarantine',
        ordinal,
        record: { source: unit.uri, reason: reasonOf(err), detail: err.message },
      };
    }
  }
}

async function* rawRecords(unit: SourceUnit, ctx: CollectContext): AsyncGenerator<RawRecord> {
  if (unit.source.type === 'sample') {
    const corpus = sampleCorpus(unit.source.name);
    const { start, end } = sampleRange(unit);
    for (let i = start; i < end && i < corpus.documents.length; i++) {
      const doc = corpus.documents[i];
      yield {
        kind: 'document',
        position: { item: i },
        id: doc.id,
        text: doc.text,
        created: doc.created,
        metadata: { ...doc.metadata },
      };
    }
    return;
  }
  const opened = await openUnit(unit, ctx);
  try {
    if (unit.rowGroups !== undefined) {
      // Planning read this file's footer: some of its row groups, the file read in place.
      const { start, end } = unit.rowGroups;
      yield* readParquet(opened.input, { ...parseOptionsOf(unit.source), rowGroups: { start, end } });
    } else if (unit.range === undefined) {
      yield* parseInput(opened.input, parseOptionsOf(unit.source));
    } else {
      // Planning checked the file's head as parseInput would (uncompressed JSON lines, text): the range is its lines.
      const { input } = opened;
      const owned = { ...input, chunks: ownedLineBytes(input.chunks, unit.range) };
      yield* readJsonLines(owned, parseOptionsOf(unit.source), unit.range.linesBefore + 1);
    }
  } finally {
    await opened.close();
  }
}

function openUnit(unit: SourceUnit, ctx: CollectContext): Promise<OpenedUnit> {
  switch (unit.source.type) {
    case 'path':
      return openPathUnit(unit, ctx);
    case 's3':
      return openS3Unit(unit, ctx);
    case 'url':
      return openUrlUnit(unit, ctx);
    case 'tier':
      return openTierUnit(unit, ctx);
    case 'sample':
      throw new Error('sample units are not read as bytes');
  }
}

function parseOptionsOf(source: Exclude<SourceSpec, { type: 'sample' }>): ParseOptions {
  return {
    format: source.format,
    fields: source.fields,
    maxDocumentBytes: source.maxDocumentBytes,
    oversize: source.oversize,
    maxExpansionRatio: source.maxExpansionRatio,
  };
}

/** Applies the unit-wide rules to a raw record: the document size limit, ids, timestamps, Document.source. */
function toEvent(
  raw: RawDocument | RawQuarantine,
  unit: SourceUnit,
  ctx: CollectContext,
  ordinal: number,
): CollectEvent {
  const where = raw.entry === undefined ? unit.uri : `${unit.uri}!${raw.entry}`;
  const location = positionLabel(raw.position) ?? (raw.entry === undefined ? undefined : `entry ${raw.entry}`);
  const quarantine = (reason: QuarantineReason, detail: string, sample?: string): CollectEvent => {
    const record: QuarantineRecord = { source: where, reason, detail };
    if (location !== undefined) record.location = location;
    if (sample !== undefined) record.sample = sample;
    return { kind: 'quarantine', record, ordinal };
  };
  if (raw.kind === 'quarantine') return quarantine(raw.reason, raw.detail, raw.sample);

  // An empty document is nothing to filter, dedup or shard: rejected here, with its place, rather than passed on.
  if (raw.text.trim().length === 0)
    return quarantine('empty', 'the document has no text (empty, or only whitespace)', excerpt(raw.text));
  const { maxDocumentBytes, oversize } = unit.source;
  const source = where + positionSuffix(raw.position);
  const metadata: Record<string, unknown> = { ...raw.metadata };
  if (raw.utf8Repaired) metadata.utf8Repaired = true;
  let text = raw.text;
  const bytes = Buffer.byteLength(text, 'utf8');
  if (bytes > maxDocumentBytes) {
    if (oversize === 'skip') {
      return quarantine(
        'oversize',
        `document of ${bytes} bytes, over maxDocumentBytes (${maxDocumentBytes}); raise it, or set oversize: ` +
          "'truncate' to keep the start",
        excerpt(text),
      );
    }
    text = truncateUtf8(text, maxDocumentBytes);
    metadata.truncated = true;
    metadata.originalBytes ??= bytes;
  }
  const doc: Document = {
    id: raw.id ?? derivedDocumentId(source),
    text,
    source,
    added: ctx.now().toISOString(),
    metadata,
  };
  if (raw.created !== undefined) doc.created = raw.created;
  return { kind: 'document', doc, ordinal };
}

function reasonOf(err: CollectError): QuarantineReason {
  switch (err.type) {
    case 'SourceNotFound':
      return 'not_found';
    case 'SourceForbidden':
      return 'forbidden';
    case 'SourceFetchFailed':
      return 'fetch_failed';
    case 'SourceTooLarge':
      return 'too_large';
    default:
      return 'unreadable';
  }
}
