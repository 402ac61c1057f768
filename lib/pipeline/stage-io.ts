import type { Document, RejectedDocument } from '../document/schema';
import { decodeJsonlGz } from '../document/jsonl-partition';
import { openVerified, readManifest, type ArtifactRef } from '../storage/manifest';
import type { TieredStore } from '../storage/tiered-store';
import { PartitionWriter } from './partition-writer';

export interface PartitionLimits {
  maxDocuments: number;
  maxBytes: number;
}

/** Every document of the stage manifests given, in order, each partition verified against its sha256 as it streams. */
export async function* readStageDocuments(
  store: TieredStore,
  stages: readonly ArtifactRef[],
): AsyncGenerator<Document> {
  for (const ref of stages) {
    const manifest = await readManifest(store, ref);
    for (const partition of manifest.objects) {
      yield* decodeJsonlGz<Document>(await openVerified(store, partition));
    }
  }
}

/** The partitions listed by stage manifests, in order (what the next stage reads). */
export async function stagePartitions(store: TieredStore, stages: readonly ArtifactRef[]): Promise<ArtifactRef[]> {
  const out: ArtifactRef[] = [];
  for (const ref of stages) out.push(...(await readManifest(store, ref)).objects);
  return out;
}

/** Writers for a stage's kept documents and its rejected records, side by side in one folder. */
export function stageWriters(store: TieredStore, folder: string, limits: PartitionLimits) {
  const kept = new PartitionWriter(store, `${folder}/part`, {
    maxRecords: limits.maxDocuments,
    maxBytes: limits.maxBytes,
  });
  const rejected = new PartitionWriter(store, `${folder}/rejected`, {
    maxRecords: limits.maxDocuments,
    maxBytes: limits.maxBytes,
  });
  return {
    keep: (doc: Document) => kept.write(doc),
    reject: (record: RejectedDocument | Record<string, unknown>) => rejected.write(record),
    finish: async () => ({ kept: await kept.finish(), rejected: await rejected.finish() }),
  };
}
