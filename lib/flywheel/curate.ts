import { createHash } from 'node:crypto';
import { readFeedback, type FeedbackWatermark } from '../feedback';
import type { FeedbackEvent } from '../contracts/feedback';
import type { FlywheelSpec } from '../contracts/flywheel';
import type { NearDedupSpec, PipelineSpec } from '../contracts/pipeline';
import type { TrainingSpec } from '../contracts/training';
import type { ExternalTrainerSpec } from '../external-trainer';
import { DatasetMetaSchema, type DatasetMeta } from '../pipeline/commit-dataset';
import { nearDedupOptions, signatureIndexOf } from '../pipeline/near-dedup';
import { ModelRegistry } from '../registry';
import { readManifest, type TieredStore } from '../storage';
import { externalTrainerOf } from './external-scores';
import { readFlywheelWatermark } from './watermark';

/** What curation hands the flywheel workflow: small, whatever the amount of feedback. */
export interface CuratedFeedback {
  events: number;
  documents: number;
  /** Feedback events written by a model version the registry does not know (kept, counted, flagged in metadata). */
  unknownModelVersion: number;
  negatives: number;
  /** The training documents, JSON lines, for the pipeline's `tier` source. */
  documentsUri: string;
  watermark: FeedbackWatermark;
  champion: { model: string; version: string };
  championTrainer: TrainingSpec['trainer'];
  /** The champion's external trainer, when it was trained by one: the challenger is trained and scored with it. */
  championExternal?: ExternalTrainerSpec;
  baseDataset: { uri: string; dataset: string; version: string; encoding: string };
  /** The base dataset's near-dedup settings, when it has a signature index to dedup against. */
  baseNear?: Omit<NearDedupSpec, 'against'>;
}

export interface Curation {
  store: TieredStore;
  spec: FlywheelSpec;
  /** Names the curated documents' folder, so a retry overwrites what an earlier attempt wrote. */
  decisionId: string;
  /** Called once the feedback since the watermark is read, with how many events it holds. */
  onRead?: (events: number) => void;
}

/**
 * Feedback since the model's watermark → training documents: the correction where there is one, else a response
 * rated at least `minScore`; low-rated ones are left out or kept tagged `negative`. Events from model versions the
 * registry does not know are kept and flagged. Writes the documents for the pipeline to read.
 */
export async function curateFeedback({ store, spec, decisionId, onRead }: Curation): Promise<CuratedFeedback> {
  const registry = new ModelRegistry(store);
  const champion = await registry.get(spec.model, 'champion');
  const { meta } = await readManifest(store, champion.dataset, DatasetMetaSchema);
  const since = await readFlywheelWatermark(store, spec.model);
  const read = await readFeedback(store, { since });
  onRead?.(read.events.length);
  const known = new Set((await registry.list(spec.model)).map((v) => v.version));
  const isKnown = (v: string) => known.has(v) || known.has(v.replace(`${spec.model}@`, ''));
  let unknownModelVersion = 0;
  let negatives = 0;
  const lines: string[] = [];
  for (const event of read.events) {
    const score = ratingScore(event);
    const negative = event.correction === undefined && score < spec.feedback.minScore;
    if (negative && spec.feedback.negatives === 'exclude') continue;
    const unknown = !isKnown(event.modelVersion);
    if (unknown) unknownModelVersion++;
    if (negative) negatives++;
    lines.push(
      JSON.stringify({
        id: `feedback-${event.id}`,
        text: `${event.prompt}\n\n${event.correction ?? event.response}`,
        created: event.ts,
        metadata: {
          feedback: event.id,
          kind: event.correction !== undefined ? 'correction' : negative ? 'negative' : 'rated-response',
          score,
          modelVersion: event.modelVersion,
          ...(unknown ? { unknownModelVersion: true } : {}),
          ...(event.tags ? { tags: event.tags } : {}),
        },
      }),
    );
  }
  const key = createHash('sha256').update(decisionId).digest('hex').slice(0, 16);
  const documentsUri = `warm://flywheel/${spec.model}/curated/${key}/documents.jsonl`;
  await store.put(documentsUri, Buffer.from(lines.join('\n') + (lines.length ? '\n' : '')));
  const [dataset, version] = [meta.dataset, meta.version];
  return {
    events: read.events.length,
    documents: lines.length,
    unknownModelVersion,
    negatives,
    documentsUri,
    watermark: read.watermark,
    champion: { model: champion.model, version: champion.version },
    championTrainer: (champion.spec as TrainingSpec).trainer,
    championExternal: externalTrainerOf(champion),
    baseDataset: { uri: champion.dataset, dataset, version, encoding: meta.tokenizer.encoding },
    baseNear: await nearSettingsOf(store, champion.dataset, meta),
  };
}

/** Thumbs up is 1, down 0; scores are already 0..1. */
function ratingScore(event: FeedbackEvent): number {
  return 'thumbs' in event.rating ? (event.rating.thumbs === 'up' ? 1 : 0) : event.rating.score;
}

/** A dataset manifest's near-dedup settings, if it has a signature index, signed by them, to dedup against. */
async function nearSettingsOf(
  store: TieredStore,
  uri: string,
  meta: DatasetMeta,
): Promise<Omit<NearDedupSpec, 'against'> | undefined> {
  const near = (meta.spec as Partial<PipelineSpec> | undefined)?.dedup?.near;
  if (!near || !(await signatureIndexOf(store, uri, nearDedupOptions(near)))) return undefined;
  return Object.fromEntries(Object.entries(near).filter(([k]) => k !== 'against')) as Omit<NearDedupSpec, 'against'>;
}
