import { createHash } from 'node:crypto';
import type { PipelineSpec } from '../contracts/pipeline';
import { SignatureIndexMetaSchema } from '../dedup/formats';
import { datasetManifestUri, DatasetMetaSchema, type DatasetMeta } from '../pipeline/commit-dataset';
import { nearDedupOptions, signatureIndexOf } from '../pipeline/near-dedup';
import { STAGE_EPOCH } from '../pipeline/stage-output';
import { commitManifest, findCommittedManifest, readManifest, type ArtifactRef, type TieredStore } from '../storage';

export interface Composition {
  /** The base dataset's manifest. */
  base: string;
  /** The manifest of the dataset built from the new documents. */
  addition: string;
  /** The composed dataset's version, under the base dataset's name. */
  version: string;
}

/**
 * An incremental dataset version: the base's shards plus the addition's, one manifest referencing both (no shard is
 * copied), with a signature index covering both so the next round can dedup against it. Returns its manifest's URI;
 * a version already composed is returned as it is.
 */
export async function composeDataset(store: TieredStore, input: Composition): Promise<string> {
  const base = await readManifest(store, input.base, DatasetMetaSchema);
  const addition = await readManifest(store, input.addition, DatasetMetaSchema);
  const [b, a] = [base.meta, addition.meta];
  const uri = datasetManifestUri(b.dataset, input.version);
  if (await findCommittedManifest(store, uri)) return uri;
  const joined = (s: 'train' | 'validation') => ({
    documents: b.splits[s].documents + a.splits[s].documents,
    tokens: b.splits[s].tokens + a.splits[s].tokens,
    shards: [...b.splits[s].shards, ...a.splits[s].shards],
  });
  const splits = { train: joined('train'), validation: joined('validation') };
  const nearIndex = await combinedNearIndex(store, input, b);
  const meta: DatasetMeta & { nearIndex?: ArtifactRef; composedOf: string[] } = {
    ...b,
    version: input.version,
    specDigest: createHash('sha256').update(`${input.base}\n${input.addition}`).digest('hex'),
    spec: { ...(b.spec as object), composedOf: [input.base, input.addition] },
    documents: b.documents + a.documents,
    tokens: b.tokens + a.tokens,
    textBytes: b.textBytes + a.textBytes,
    splits,
    stages: a.stages,
    rejected: [...b.rejected, ...a.rejected],
    composedOf: [input.base, input.addition],
    ...(nearIndex ? { nearIndex } : {}),
  };
  await commitManifest(store, uri, {
    kind: 'dataset',
    name: `${b.dataset}/${input.version}`,
    objects: [...base.objects, ...addition.objects],
    meta,
    createdAt: STAGE_EPOCH,
  });
  return uri;
}

/**
 * One signature index over the base's documents and the addition's, beside the composed manifest; none unless the
 * base was built with near dedup and both have an index signed its way.
 */
async function combinedNearIndex(
  store: TieredStore,
  input: Composition,
  b: DatasetMeta,
): Promise<ArtifactRef | undefined> {
  const near = (b.spec as Partial<PipelineSpec>)?.dedup?.near;
  if (!near) return undefined;
  const options = nearDedupOptions(near);
  const indexes = await Promise.all([input.base, input.addition].map((u) => signatureIndexOf(store, u, options)));
  if (!indexes.every(Boolean)) return undefined;
  const parts = await Promise.all(indexes.map((ref) => readManifest(store, ref!, SignatureIndexMetaSchema)));
  const uri = datasetManifestUri(b.dataset, input.version);
  return commitManifest(store, `${uri.replace(/manifest\.json$/, '')}near-index.json`, {
    kind: 'dedup-index',
    name: `${b.dataset}/${input.version}/near-index`,
    objects: parts.flatMap((p) => p.objects),
    meta: {
      ...parts[0].meta,
      documents: parts.reduce((n, p) => n + p.meta.documents, 0),
    },
    createdAt: STAGE_EPOCH,
  });
}
