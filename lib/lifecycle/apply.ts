import { forEachLimit } from '../common';
import {
  commitManifest,
  openVerified,
  readManifest,
  ObjectNotFound,
  parseTierUri,
  tierUri,
  type ManifestObject,
  type TieredStore,
} from '../storage';
import { ColdTierIsWarm } from './errors';
import type { PlannedAction } from './plan';

const CONCURRENCY = 8;

/**
 * Deletes objects, manifests first: a reader trusts only manifests, so none may outlive an object it lists (the
 * reverse of manifest-last). Idempotent: a missing object counts as deleted.
 */
export async function deleteObjects(
  store: TieredStore,
  uris: readonly string[],
  onDeleted?: (deleted: number) => void,
): Promise<void> {
  let deleted = 0;
  for (const batch of [uris.filter((u) => u.endsWith('.json')), uris.filter((u) => !u.endsWith('.json'))])
    await forEachLimit(batch, CONCURRENCY, async (uri) => {
      await store.delete(uri);
      onDeleted?.((deleted += 1));
    });
}

const toCold = (uri: string) => tierUri('cold', parseTierUri(uri).key);
const toWarm = (uri: string) => tierUri('warm', parseTierUri(uri).key);

/**
 * Moves a dataset version's own objects (those under its folder) to the same keys in cold, keeping its manifest where
 * readers look for it: objects are copied and checked first, then the manifest is rewritten to list the cold copies
 * (its meta's shard URIs too), last, and only then are the warm copies deleted. A retry after any step finishes the
 * move; `warm://datasets/<dataset>/<version>/manifest.json` stays valid for readers throughout.
 */
export async function moveDatasetToCold(
  store: TieredStore,
  manifestUri: string,
  onMoved?: (moved: number) => void,
): Promise<{ objects: number; bytes: number }> {
  if (coldIsWarm(store)) throw new ColdTierIsWarm(manifestUri);
  const folder = manifestUri.slice(0, manifestUri.lastIndexOf('/') + 1);
  const coldFolder = `cold://${folder.slice('warm://'.length)}`;
  const manifest = await readManifest(store, manifestUri);
  const own = manifest.objects.filter((o) => o.uri.startsWith(folder));
  let moved = 0;
  await forEachLimit(own, CONCURRENCY, async (o) => {
    const target = toCold(o.uri);
    const there = await store.head(target).catch((err: unknown) => {
      if (err instanceof ObjectNotFound) return undefined;
      throw err;
    });
    if (there?.bytes !== o.bytes || (there.sha256 !== undefined && there.sha256 !== o.sha256))
      await copyVerified(store, o, target);
    onMoved?.((moved += 1));
  });
  if (own.length > 0) {
    const renamed = new Map(own.map((o) => [o.uri, toCold(o.uri)]));
    await commitManifest(store, manifestUri, {
      kind: manifest.kind,
      name: manifest.name,
      objects: manifest.objects.map((o) => ({ ...o, uri: renamed.get(o.uri) ?? o.uri })),
      meta: { ...(renameStrings(manifest.meta, renamed) as object), storage: { movedToCold: true } },
      // The same commit time: a retried rewrite writes the same bytes.
      createdAt: manifest.createdAt,
    });
  }
  // Now (and on any retry) the warm copies of every object the manifest keeps in cold can go.
  const current = own.length > 0 ? await readManifest(store, manifestUri) : manifest;
  const warmCopies = current.objects.filter((o) => o.uri.startsWith(coldFolder)).map((o) => toWarm(o.uri));
  await deleteObjects(store, warmCopies);
  const bytes = current.objects.filter((o) => o.uri.startsWith(coldFolder)).reduce((n, o) => n + o.bytes, 0);
  return { objects: warmCopies.length, bytes };
}

/** Whether cold and warm are one place (FLYWHEEL_COLD = FLYWHEEL_WARM), where a move would lose the only copy. */
export function coldIsWarm(store: TieredStore): boolean {
  return store.backendUri('warm://datasets/x') === store.backendUri('cold://datasets/x');
}

/** Streams one object to its new place, checked against its manifest entry as it goes (ChecksumMismatch if not). */
async function copyVerified(store: TieredStore, o: ManifestObject, target: string): Promise<void> {
  const stream = await openVerified(store, o);
  try {
    await store.put(target, stream);
  } finally {
    stream.destroy();
  }
}

function renameStrings(value: unknown, renamed: ReadonlyMap<string, string>): unknown {
  if (typeof value === 'string') return renamed.get(value) ?? value;
  if (Array.isArray(value)) return value.map((v) => renameStrings(v, renamed));
  if (value && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, renameStrings(v, renamed)]));
  return value;
}

/** Carries out one planned action. */
export async function applyAction(
  store: TieredStore,
  action: PlannedAction,
  onProgress?: (done: number) => void,
): Promise<void> {
  if (action.action === 'cold') await moveDatasetToCold(store, action.target, onProgress);
  else await deleteObjects(store, action.uris, onProgress);
}
