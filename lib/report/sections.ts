import { DatasetMetaSchema } from '../pipeline/commit-dataset';
import type { DatasetSummary, PipelineProgress } from '../contracts/pipeline-results';
import { findCommittedManifest, parseManifestMeta, type TieredStore } from '../storage';
import { dedupClusterSizes } from './dedup-clusters';
import { pipelineFunnel } from './funnel';
import type { PipelineSection } from './model';

/** A pipeline's section from its result (or from the dataset manifest, which holds the same facts). */
export async function pipelineSection(
  store: TieredStore,
  summary: Pick<DatasetSummary, 'dataset' | 'version' | 'specDigest' | 'documents' | 'tokens' | 'stages'> & {
    manifest?: { uri: string };
    splits: { train: { shards: number }; validation: { shards: number } };
    reused?: boolean;
  },
  extra: { workflowId?: string; status?: string } = {},
): Promise<PipelineSection> {
  const key = { dataset: summary.dataset, version: summary.version, digest: summary.specDigest };
  return {
    ...extra,
    dataset: summary.dataset,
    version: summary.version,
    specDigest: summary.specDigest,
    manifestUri: summary.manifest?.uri,
    stages: summary.stages,
    funnel: pipelineFunnel(summary.stages, summary.documents),
    documents: summary.documents,
    tokens: summary.tokens,
    shards: { train: summary.splits.train.shards, validation: summary.splits.validation.shards },
    reused: summary.reused,
    clusters: await dedupClusterSizes(store, key, summary.stages),
  };
}

/** A running pipeline's section from its progress query: the stages done so far, no totals yet. */
export async function runningPipelineSection(
  store: TieredStore,
  spec: { dataset: string; version: string; digest: string },
  progress: PipelineProgress,
  extra: { workflowId?: string; status?: string } = {},
): Promise<PipelineSection> {
  return {
    ...extra,
    dataset: spec.dataset,
    version: spec.version,
    specDigest: spec.digest,
    stages: progress.stages,
    funnel: pipelineFunnel(progress.stages),
    documents: 0,
    tokens: 0,
    shards: { train: 0, validation: 0 },
    clusters: await dedupClusterSizes(store, spec, progress.stages),
  };
}

/** The section of the dataset a training run read, from its manifest: how the run's data was made. */
export async function datasetSection(store: TieredStore, manifestUri: string): Promise<PipelineSection | undefined> {
  const found = await findCommittedManifest(store, manifestUri);
  if (!found || found.manifest.kind !== 'dataset') return undefined;
  const { meta } = parseManifestMeta(manifestUri, found.manifest, DatasetMetaSchema);
  return pipelineSection(store, {
    ...meta,
    manifest: { uri: manifestUri },
    splits: {
      train: { shards: meta.splits.train.shards.length },
      validation: { shards: meta.splits.validation.shards.length },
    },
  });
}
