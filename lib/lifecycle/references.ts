import { LatestPointer } from '../checkpoint/layout';
import { DatasetMetaSchema } from '../pipeline/commit-dataset';
import { nearDedupFolder } from '../pipeline/near-dedup/layout';
import { runFolder } from '../pipeline/stage-output';
import { ModelRegistry } from '../registry';
import { findCommittedManifest, type ArtifactRef, type Manifest, type TieredStore } from '../storage';
import type { StoredObject } from './inventory';

/** A committed dataset version: its manifest, where its own objects live, and what it was built from. */
export interface DatasetVersion {
  manifestUri: string;
  dataset: string;
  version: string;
  specDigest: string;
  /** `warm://datasets/<dataset>/<version>/`: objects under it belong to this version. */
  folder: string;
  /** When the manifest was last written. */
  modified: Date;
  manifest: Manifest;
}

/**
 * What still needs what: every object a live manifest lists (datasets, registered models, the `latest` checkpoint of
 * each run, and what their meta points at), each with the manifest or record that needs it.
 */
export interface ReferenceGraph {
  /** Object URI → the first manifest or record found needing it, for messages. */
  needed: Map<string, string>;
  datasets: DatasetVersion[];
  /** Dataset manifest URI → who uses the version (a registered model, a newer dataset built on it). */
  datasetUsers: Map<string, string[]>;
  /** Manifests found under the scanned folders → the objects each lists (an expire rule deletes them together). */
  manifests: Map<string, string[]>;
}

const COMMITTED_DATASET = 'a committed dataset (the lifecycle moves datasets, never deletes them)';
const DATASET_MANIFEST = /^datasets\/([^/]+)\/([^/]+)\/manifest\.json$/;
const LATEST_POINTER = /^runs\/.+\/latest\.json$/;

/** Builds the reference graph from the inventory; `scan` names folders whose every JSON manifest is read too. */
export async function buildReferences(
  store: TieredStore,
  inventory: readonly StoredObject[],
  scan: readonly string[] = [],
): Promise<ReferenceGraph> {
  const present = new Set(inventory.map((o) => o.uri));
  const needed = new Map<string, string>();
  const datasetUsers = new Map<string, string[]>();
  const need = (uri: string, by: string) => void (needed.has(uri) || needed.set(uri, by));
  const use = (datasetUri: string, by: string) =>
    datasetUsers.set(datasetUri, [...(datasetUsers.get(datasetUri) ?? []), by]);
  /** A manifest some record points at: it and everything it lists are needed. */
  const needManifest = async (ref: ArtifactRef | string, by: string) => {
    const uri = typeof ref === 'string' ? ref : ref.uri;
    need(uri, by);
    const found = present.has(uri) ? await findCommittedManifest(store, uri) : undefined;
    for (const o of found?.manifest.objects ?? []) need(o.uri, uri);
  };

  const datasets: DatasetVersion[] = [];
  for (const o of inventory) {
    const match = o.tier === 'warm' ? DATASET_MANIFEST.exec(o.key) : null;
    if (!match) continue;
    const found = await findCommittedManifest(store, o.uri);
    const meta = found?.manifest.kind === 'dataset' ? DatasetMetaSchema.safeParse(found.manifest.meta) : undefined;
    if (!found || !meta?.success) continue;
    datasets.push({
      manifestUri: o.uri,
      dataset: match[1],
      version: match[2],
      specDigest: meta.data.specDigest,
      folder: `warm://datasets/${match[1]}/${match[2]}/`,
      modified: o.modified,
      manifest: found.manifest,
    });
    need(o.uri, COMMITTED_DATASET);
    for (const object of found.manifest.objects) need(object.uri, o.uri);
    for (const ref of meta.data.rejected) await needManifest(ref, o.uri);
    const extra = found.manifest.meta as { nearIndex?: ArtifactRef; composedOf?: unknown };
    if (extra.nearIndex) await needManifest(extra.nearIndex, o.uri);
    for (const base of Array.isArray(extra.composedOf) ? extra.composedOf : [])
      if (typeof base === 'string') use(base, `the newer dataset ${o.uri}`);
    // The signature index later flywheel rounds near-dedup against lives with the pipeline run's near-dedup stage.
    const run = runFolder({ dataset: match[1], version: match[2], digest: meta.data.specDigest });
    const stage = `${nearDedupFolder(run)}/manifest.json`;
    if (present.has(stage)) {
      need(stage, `${o.uri} (its near-dedup signature index)`);
      const index = ((await findCommittedManifest(store, stage))?.manifest.meta as { index?: ArtifactRef }).index;
      if (index) await needManifest(index, `${o.uri} (its near-dedup signature index)`);
    }
  }
  // A dataset listing another version's objects (a flywheel round's composed dataset) keeps that version in place.
  for (const d of datasets)
    for (const object of d.manifest.objects) {
      const owner = datasets.find((other) => other !== d && object.uri.startsWith(other.folder));
      if (owner && !(datasetUsers.get(owner.manifestUri) ?? []).includes(`the newer dataset ${d.manifestUri}`))
        use(owner.manifestUri, `the newer dataset ${d.manifestUri}`);
    }

  const registry = new ModelRegistry(store);
  for (const model of await registry.models()) {
    const { champion } = await registry.aliases(model);
    need(registry.layout.aliasesUri(model), 'the model registry');
    for (const v of await registry.list(model)) {
      const who = `model ${model} ${v.version}${v.version === champion ? ' (champion)' : ''} (${v.manifest})`;
      need(v.manifest, 'the model registry');
      for (const file of v.files) need(file.uri, v.manifest);
      // Who trained on a dataset says more than that it is committed.
      if (needed.get(v.dataset) === COMMITTED_DATASET) needed.delete(v.dataset);
      need(v.dataset, who);
      use(v.dataset, who);
    }
  }

  for (const o of inventory) {
    if (o.tier !== 'warm' || !LATEST_POINTER.test(o.key)) continue;
    const parsed = LatestPointer.safeParse(parseJson(await store.getBytes(o.uri)));
    if (!parsed.success) continue;
    need(o.uri, "a run's latest checkpoint pointer");
    await needManifest(parsed.data.manifest, `${o.uri} (the latest checkpoint)`);
  }

  const manifests = new Map<string, string[]>();
  for (const o of inventory) {
    if (!o.key.endsWith('.json') || !scan.some((prefix) => o.uri.startsWith(prefix))) continue;
    // JSON that is no manifest reads as undefined; a store error fails the plan rather than miss a reference.
    const found = await findCommittedManifest(store, o.uri);
    if (found)
      manifests.set(
        o.uri,
        found.manifest.objects.map((x) => x.uri),
      );
  }
  return { needed, datasets, datasetUsers, manifests };
}

function parseJson(bytes: Buffer): unknown {
  try {
    return JSON.parse(bytes.toString('utf8'));
  } catch {
    return undefined;
  }
}
