import { decodeSignatures, signatureIndexParts } from '../../dedup';
import { countDrop, emptyStats, type StageStats } from '../../contracts/pipeline-results';
import { findCommittedManifest, readManifest, type ArtifactRef } from '../../storage/manifest';
import type { TieredStore } from '../../storage/tiered-store';
import { commitStage } from '../stage-output';
import { putArtifact, readPartitionRecords, readVerified, stageWriters, type PartitionLimits } from '../stage-io';
import type { Removal } from './cluster';
import { filterFolder, signatureFolder } from './layout';
import { nearDedupOptions, type NearDedupStepInput } from './step';

/**
 * Step d for one partition: rewrites it without its removed documents, which go to the rejected partitions with
 * rule `dedup.near`, the kept document's id and their Jaccard (exact, or estimated); writes the kept documents' signature index.
 */
export async function filterNearDuplicates(
  input: NearDedupStepInput & {
    input: ArtifactRef;
    clusters: ArtifactRef;
    indexPartitions: number;
    index: number;
    limits: PartitionLimits;
    onProgress?: (documents: number) => void;
  },
): Promise<StageStats> {
  const { store } = input;
  const partFolder = filterFolder(input.folder, input.index);
  const committed = await findCommittedManifest(store, `${partFolder}/manifest.json`);
  if (committed) return (committed.manifest.meta as { stats: StageStats }).stats;
  const removals = await readRemovals(store, (await readManifest(store, input.clusters)).objects[input.index]);

  // The kept documents' signature index, from the partition's signatures: what a later `against` reads.
  const unitFolder = signatureFolder(input.folder, input.indexPartitions + input.index, input.indexPartitions);
  const unit = await findCommittedManifest(store, `${unitFolder}/manifest.json`);
  if (!unit) throw new Error(`near dedup: the signatures of ${unitFolder} are not committed; sign them first`);
  const file = (name: string) => unit.manifest.objects.find((o) => o.uri === `${unitFolder}/${name}`) as ArtifactRef;
  const part = decodeSignatures(await readVerified(store, file('sigs.bin')));
  const ids = (await readVerified(store, file('ids.txt'))).toString('utf8').split('\n');
  const kept = Array.from({ length: part.count }, (_, i) => i).filter((i) => !removals.has(i));
  const numPerm = part.numPerm;
  const keptSigs = new Uint32Array(kept.length * numPerm);
  kept.forEach((i, k) => keptSigs.set(part.sigs.subarray(i * numPerm, (i + 1) * numPerm), k * numPerm));
  const pick = (column: Uint32Array) => Uint32Array.from(kept, (i) => column[i]);
  const indexRef = await putArtifact(
    store,
    `${partFolder}/index.bin`,
    Buffer.concat([
      ...signatureIndexParts(
        { params: nearDedupOptions(input.near).minhash, exactField: null },
        kept.map((i) => ids[i]),
        {
          count: kept.length,
          numPerm,
          sigs: keptSigs,
          exactHi: pick(part.exactHi),
          exactLo: pick(part.exactLo),
          words: pick(part.words),
        },
      ),
    ]),
  );

  const jaccardLabel = nearDedupOptions(input.near).verification === 'exact' ? 'Jaccard' : 'estimated Jaccard';
  const stats = emptyStats();
  const writers = stageWriters(store, partFolder, input.limits);
  const partition = (await readManifest(store, input.input)).objects[input.index];
  for await (const { doc, json } of readPartitionRecords(store, partition)) {
    const at = stats.input++;
    if (JSON.stringify(doc.id) !== ids[at])
      throw new Error(`near dedup: ${partition.uri} document ${at} is ${doc.id}, its signatures say ${ids[at]}`);
    const removal = removals.get(at);
    if (removal) {
      countDrop(stats, 'dedup.near');
      await writers.reject({
        doc,
        stage: 'dedup',
        rule: 'dedup.near',
        detail: `near duplicate of ${removal.duplicateOf} (${jaccardLabel} ${removal.similarity})`,
        duplicateOf: removal.duplicateOf,
        similarity: removal.similarity,
      });
      continue;
    }
    stats.kept += 1;
    stats.keptBytes += Buffer.byteLength(doc.text);
    await writers.keep(doc, json);
    if (stats.input % 1000 === 0) input.onProgress?.(stats.input);
  }
  if (stats.input !== part.count)
    throw new Error(`near dedup: ${partition.uri} holds ${stats.input} documents, its signatures ${part.count}`);
  const out = await writers.finish();
  await commitStage(store, partFolder, 'pipeline-near-dedup-partition', { ...out, stats }, { index: indexRef });
  return stats;
}

/** A partition's removal file from the cluster step, by document position. */
async function readRemovals(store: TieredStore, file: ArtifactRef): Promise<Map<number, Removal>> {
  const removals = new Map<number, Removal>();
  for (const line of (await readVerified(store, file)).toString('utf8').split('\n'))
    if (line) {
      const r = JSON.parse(line) as Removal;
      removals.set(r.doc, r);
    }
  return removals;
}
