import {
  decodeSignatureIndex,
  indexMismatches,
  type PartitionSignatures,
  type ResolvedDedupOptions,
  type SignatureIndexMeta,
} from '../../dedup';
import { InvalidSpec } from '../../contracts/invalid-spec';
import { findCommittedManifest, readManifest, type ArtifactRef } from '../../storage/manifest';
import type { TieredStore } from '../../storage/tiered-store';
import { runFolder } from '../stage-output';
import { readVerified } from '../stage-io';
import { nearDedupFolder } from './layout';

/**
 * The dataset a spec dedups against (`dedup.near.against`): its documents are numbered ahead of the input's and are
 * never removed. What the stage reads of it is its signature index, one file per partition it was filtered in.
 */

function againstProblem(message: string): InvalidSpec {
  return new InvalidSpec('dataPipeline', [{ field: 'dedup.near.against', message }]);
}

/**
 * The signature index of the dataset a spec dedups against: given its dataset manifest, its run folder, or the
 * near-dedup stage manifest of its run. It must have been signed the way this spec signs.
 */
export async function resolveAgainst(
  store: TieredStore,
  uri: string,
  options: ResolvedDedupOptions,
): Promise<ArtifactRef> {
  let stageUri = uri.endsWith('.json') ? uri : `${nearDedupFolder(uri.replace(/\/+$/, ''))}/manifest.json`;
  let index: ArtifactRef | undefined;
  if (uri.endsWith('.json')) {
    const found = await findCommittedManifest(store, uri);
    if (!found) throw againstProblem(`no manifest at ${uri} (${store.backendUri(uri)})`);
    // A composed dataset (base + additions) carries the index of all its documents itself.
    index = (found.manifest.meta as { nearIndex?: ArtifactRef }).nearIndex;
    if (!index && found.manifest.kind === 'dataset') {
      const meta = found.manifest.meta as { dataset: string; version: string; specDigest: string };
      stageUri = `${nearDedupFolder(runFolder({ ...meta, digest: meta.specDigest }))}/manifest.json`;
    } else if (!index && found.manifest.kind !== 'pipeline-near-dedup')
      throw againstProblem(`${uri} is a ${found.manifest.kind} manifest: give a dataset manifest`);
  }
  if (!index) {
    const stage = await findCommittedManifest(store, stageUri);
    index = (stage?.manifest.meta as { index?: ArtifactRef } | undefined)?.index;
  }
  if (!index)
    throw againstProblem(
      `${uri} has no near-dedup signature index (looked for ${stageUri}): build that dataset with dedup.near first`,
    );
  const meta = (await readManifest(store, index)).meta as unknown as SignatureIndexMeta;
  const problems = indexMismatches(meta, options, 'field');
  if (problems.length)
    throw againstProblem(`${uri} was signed another way: ${problems.join('; ')}. Use the same dedup.near settings`);
  return index;
}

/** File `unit` of the `against` index: its documents' signatures (already computed) and ids. */
export async function readAgainstUnit(
  store: TieredStore,
  against: ArtifactRef,
  unit: number,
): Promise<{ part: PartitionSignatures; ids: string[] }> {
  const file = (await readManifest(store, against)).objects[unit];
  const index = decodeSignatureIndex(await readVerified(store, file));
  return { part: index.signatures, ids: index.ids };
}
