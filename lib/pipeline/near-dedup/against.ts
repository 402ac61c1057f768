import {
  decodeSignatureIndex,
  indexMismatches,
  type PartitionSignatures,
  type ResolvedDedupOptions,
  SignatureIndexMetaSchema,
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
  const { index, stageUri } = await locateSignatureIndex(store, uri);
  if (!index)
    throw againstProblem(
      `${uri} has no near-dedup signature index (looked for ${stageUri}): build that dataset with dedup.near first`,
    );
  const problems = await signingMismatches(store, index, options);
  if (problems.length)
    throw againstProblem(`${uri} was signed another way: ${problems.join('; ')}. Use the same dedup.near settings`);
  return index;
}

/**
 * The signature index `uri` can be deduplicated against, as {@link resolveAgainst} finds it; undefined when it has
 * none or it was signed another way than `options` sign. Storage errors still fail.
 */
export async function signatureIndexOf(
  store: TieredStore,
  uri: string,
  options: ResolvedDedupOptions,
): Promise<ArtifactRef | undefined> {
  const { index } = await locateSignatureIndex(store, uri);
  if (!index || (await signingMismatches(store, index, options)).length) return undefined;
  return index;
}

/** Where the signature index of `uri` is, if it has one, and the stage manifest looked for. */
async function locateSignatureIndex(
  store: TieredStore,
  uri: string,
): Promise<{ index: ArtifactRef | undefined; stageUri: string }> {
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
  return { index, stageUri };
}

/** How the index was signed unlike `options`, one line per setting; none when they match. */
async function signingMismatches(
  store: TieredStore,
  index: ArtifactRef,
  options: ResolvedDedupOptions,
): Promise<string[]> {
  const { meta } = await readManifest(store, index, SignatureIndexMetaSchema);
  return indexMismatches(meta, options, 'field');
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
