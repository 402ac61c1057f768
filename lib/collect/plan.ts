import type { CollectContext } from './context';
import { checkHostAllowed } from './reach';
import { sampleCorpus } from './sample-corpus';
import type { SampleSource, SourceSpec } from './source-spec';
import { planPathSource } from './sources/local-files';
import { planS3Source } from './sources/s3-objects';
import { planTierSource } from './sources/tier-objects';
import { unitId, type SourceUnit } from './source-unit';

/** Documents per unit of a sample corpus: small enough to spread over workers, large enough to be worth a task. */
export const SAMPLE_DOCUMENTS_PER_UNIT = 16;

/**
 * Lists the units of work of a source, in a deterministic order with stable ids, for fan-out. Throws the typed
 * errors SourceNotFound / SourceForbidden / SourceUnreadable / SourceMisconfigured when the source itself cannot be
 * listed; problems with single units surface when they are read.
 */
export async function planSource(source: SourceSpec, ctx: CollectContext): Promise<SourceUnit[]> {
  switch (source.type) {
    case 'path':
      return planPathSource(source, ctx);
    case 's3':
      return planS3Source(source, ctx);
    case 'url':
      checkHostAllowed(new URL(source.url), ctx.allowedHosts, source.url);
      return [{ id: unitId(source.url, source.url), source, ref: source.url, uri: source.url, bytes: 0 }];
    case 'tier':
      return planTierSource(source, ctx);
    case 'sample':
      return planSample(source);
  }
}

function planSample(source: SampleSource): SourceUnit[] {
  const corpus = sampleCorpus(source.name);
  const count = Math.min(source.limit, corpus.documents.length);
  const uri = `sample:${source.name}`;
  const units: SourceUnit[] = [];
  for (let start = 0; start < count; start += SAMPLE_DOCUMENTS_PER_UNIT) {
    const end = Math.min(start + SAMPLE_DOCUMENTS_PER_UNIT, count);
    const ref = `${start}-${end}`;
    let bytes = 0;
    for (let i = start; i < end; i++) bytes += Buffer.byteLength(corpus.documents[i].text);
    units.push({ id: unitId(uri, ref), source, ref, uri, bytes });
  }
  return units;
}

/** The document range `start-end` (end exclusive) of a sample unit. */
export function sampleRange(unit: SourceUnit): { start: number; end: number } {
  const match = /^(\d+)-(\d+)$/.exec(unit.ref);
  if (match === null) throw new Error(`not a sample unit ref: ${unit.ref}`);
  return { start: Number(match[1]), end: Number(match[2]) };
}
