import type { Readable } from 'node:stream';
import { ObjectNotFound, StorageError, type TieredStore } from '../../storage';
import type { CollectContext } from '../context';
import { SourceMisconfigured, SourceNotFound, SourceUnreadable } from '../errors';
import type { TierSource } from '../source-spec';
import { compareRefs, unitId, type SourceUnit } from '../source-unit';
import type { OpenedUnit } from './opened-unit';
import picomatch from 'picomatch';

function storeOf(ctx: CollectContext, location: string): TieredStore {
  if (ctx.store === undefined)
    throw new SourceMisconfigured(location, 'a tier source needs the tiered store in the collect context (ctx.store)');
  return ctx.store;
}

function asCollectError(err: unknown, location: string): unknown {
  if (err instanceof ObjectNotFound) return new SourceNotFound(location, err.message, { cause: err });
  if (err instanceof StorageError) return new SourceUnreadable(location, err.message, err.retryable, { cause: err });
  return err;
}

/**
 * Lists a `tier` source: Flywheel's own storage (what an earlier stage or the flywheel's curation wrote), as the
 * object the URI names or the objects under it read as a folder, filtered by `glob`.
 */
export async function planTierSource(source: TierSource, ctx: CollectContext): Promise<SourceUnit[]> {
  const store = storeOf(ctx, source.uri);
  try {
    if (await store.exists(source.uri)) {
      const info = await store.head(source.uri);
      const ref = source.uri.slice(source.uri.lastIndexOf('/') + 1);
      return [{ id: unitId(source.uri, ref), source, ref, uri: source.uri, bytes: info.bytes }];
    }
    const folder = source.uri.endsWith('/') ? source.uri : `${source.uri}/`;
    const matches = source.glob ? picomatch(source.glob, { dot: false }) : () => true;
    const units: SourceUnit[] = [];
    for await (const entry of store.listAll(folder)) {
      const ref = entry.uri.slice(folder.length);
      if (!ref || !matches(ref)) continue;
      units.push({ id: unitId(entry.uri, ref), source, ref, uri: entry.uri, bytes: entry.bytes });
    }
    if (!units.length)
      throw new SourceNotFound(source.uri, `nothing at ${source.uri} (${store.backendUri(source.uri)})`);
    return units.sort((a, b) => compareRefs(a.ref, b.ref));
  } catch (err) {
    throw asCollectError(err, source.uri);
  }
}

export async function openTierUnit(unit: SourceUnit, ctx: CollectContext): Promise<OpenedUnit> {
  const store = storeOf(ctx, unit.uri);
  let stream: Readable;
  try {
    stream = await store.get(unit.uri);
  } catch (err) {
    throw asCollectError(err, unit.uri);
  }
  async function* chunks() {
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) yield chunk;
    } catch (err) {
      throw asCollectError(err, unit.uri);
    }
  }
  return {
    input: { name: unit.ref.slice(unit.ref.lastIndexOf('/') + 1), path: unit.uri, chunks: chunks() },
    close: async () => {
      stream.destroy();
    },
  };
}
