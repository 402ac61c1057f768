import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { EMPTY_FEEDBACK_WATERMARK, readFeedback, type FeedbackWatermark } from '../lib/feedback';
import { SignatureIndexMetaSchema } from '../lib/dedup/formats';
import { datasetManifestUri, DatasetMetaSchema, type DatasetMeta } from '../lib/pipeline/commit-dataset';
import { nearDedupOptions, resolveAgainst } from '../lib/pipeline/near-dedup';
import { STAGE_EPOCH } from '../lib/pipeline/stage-output';
import type { ExternalTrainerSpec } from '../lib/external-trainer';
import { externalTrainerOf, scoreExternalModels } from '../lib/flywheel/external-scores';
import { ModelRegistry } from '../lib/registry';
import type { FeedbackEvent } from '../lib/contracts/feedback';
import type { FlywheelDecisionKind, FlywheelSpec, ModelScores } from '../lib/contracts/flywheel';
import type { NearDedupSpec, PipelineSpec } from '../lib/contracts/pipeline';
import type { TrainingSpec } from '../lib/contracts/training';
import {
  commitManifest,
  findCommittedManifest,
  openVerified,
  readAll,
  ObjectNotFound,
  readManifest,
  type ArtifactRef,
  type TieredStore,
} from '../lib/storage';
import { tokensFromShards } from '../lib/train';
import { TrainedModel } from '../lib/train/model-files';
import { withFailureMapping } from './failures';

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

const watermarkUri = (model: string) => `warm://flywheel/${model}/watermark.json`;

/** Thumbs up is 1, down 0; scores are already 0..1. */
function ratingScore(event: FeedbackEvent): number {
  return 'thumbs' in event.rating ? (event.rating.thumbs === 'up' ? 1 : 0) : event.rating.score;
}

/** A dataset manifest's near-dedup settings, if documents can be deduplicated against it. */
async function nearSettingsOf(store: TieredStore, uri: string, meta: DatasetMeta & { nearIndex?: ArtifactRef }) {
  const near = (meta.spec as Partial<PipelineSpec> | undefined)?.dedup?.near;
  if (!near) return undefined;
  try {
    await resolveAgainst(store, uri, nearDedupOptions(near));
    return Object.fromEntries(Object.entries(near).filter(([k]) => k !== 'against')) as Omit<NearDedupSpec, 'against'>;
  } catch {
    return undefined;
  }
}

async function splitTokens(store: TieredStore, uri: string, split: 'train' | 'validation'): Promise<Uint32Array> {
  const manifest = await readManifest(store, uri, DatasetMetaSchema);
  const meta = manifest.meta;
  const buffers: Buffer[] = [];
  for (const shard of meta.splits[split].shards) {
    const entry = manifest.objects.find((o) => o.uri === shard.uri)!;
    buffers.push(await readAll(await openVerified(store, entry)));
  }
  return tokensFromShards(buffers);
}

export function createFlywheelActivities({ store }: { store: TieredStore }) {
  const registry = new ModelRegistry(store);
  return {
    /**
     * Feedback since the model's watermark → training documents: the correction where there is one, else a
     * response rated at least `minScore`; low-rated ones are left out or kept tagged `negative`. Events from model
     * versions the registry does not know are kept and flagged. Writes the documents for the pipeline to read.
     */
    async curateFeedback(input: { spec: FlywheelSpec; decisionId: string }): Promise<CuratedFeedback> {
      return withFailureMapping(async () => {
        const { spec } = input;
        const champion = await registry.get(spec.model, 'champion');
        const { meta } = await readManifest(store, champion.dataset, DatasetMetaSchema);
        // No watermark yet is the first night; any other failure must not reset it (all feedback would be curated again).
        const saved = await store.getBytes(watermarkUri(spec.model)).catch((err: unknown) => {
          if (err instanceof ObjectNotFound) return undefined;
          throw err;
        });
        const since = saved ? (JSON.parse(saved.toString('utf8')) as FeedbackWatermark) : EMPTY_FEEDBACK_WATERMARK;
        const read = await readFeedback(store, { since });
        Context.current().heartbeat({ events: read.events.length });
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
        const key = createHash('sha256').update(input.decisionId).digest('hex').slice(0, 16);
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
      });
    },

    /**
     * An incremental dataset version: the base's shards plus the addition's, one manifest referencing both (no
     * shard is copied), with a signature index covering both so the next round can dedup against it.
     */
    async composeDataset(input: { base: string; addition: string; version: string }): Promise<string> {
      return withFailureMapping(async () => {
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
        let nearIndex: ArtifactRef | undefined;
        const near = (b.spec as Partial<PipelineSpec>)?.dedup?.near;
        if (near) {
          const options = nearDedupOptions(near);
          const indexes = await Promise.all(
            [input.base, input.addition].map((u) => resolveAgainst(store, u, options).catch(() => undefined)),
          );
          if (indexes.every(Boolean)) {
            const parts = await Promise.all(indexes.map((ref) => readManifest(store, ref!, SignatureIndexMetaSchema)));
            nearIndex = await commitManifest(store, `${uri.replace(/manifest\.json$/, '')}near-index.json`, {
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
        }
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
      });
    },

    /** Scores model versions on the same data: the base dataset's validation split and the new feedback's. */
    async scoreModels(input: {
      model: string;
      versions: string[];
      heldout: string;
      feedback: string;
      evalTokens: number;
    }): Promise<ModelScores[]> {
      return withFailureMapping(async () => {
        const versions = await Promise.all(input.versions.map((v) => registry.get(input.model, v)));
        if (externalTrainerOf(versions[0])) {
          const ctx = Context.current();
          return scoreExternalModels({
            store,
            registry,
            versions,
            heldout: input.heldout,
            feedback: input.feedback,
            evalTokens: input.evalTokens,
            signal: ctx.cancellationSignal,
            onScored: (scored) => ctx.heartbeat({ scored }),
          });
        }
        const heldout = await splitTokens(store, input.heldout, 'validation');
        let feedback = await splitTokens(store, input.feedback, 'validation');
        if (feedback.length < 16) feedback = await splitTokens(store, input.feedback, 'train');
        const scores: ModelScores[] = [];
        for (const version of versions) {
          const model = TrainedModel.fromFiles(await registry.loadFiles(version));
          const h = model.evaluate(heldout, { maxTokens: input.evalTokens });
          const score: ModelScores = { 'heldout.valLoss': h.loss, 'heldout.perplexity': h.perplexity };
          if (feedback.length > model.shape.contextTokens) {
            const f = model.evaluate(feedback, { maxTokens: input.evalTokens });
            score['feedback.valLoss'] = f.loss;
            score['feedback.perplexity'] = f.perplexity;
          }
          scores.push(score);
          Context.current().heartbeat({ scored: version.version });
        }
        return scores;
      });
    },

    /**
     * Records the decision with its numbers in the registry; promotes the challenger when told; moves the
     * feedback watermark when the champion now covers that feedback. Safe to retry.
     */
    async recordFlywheelDecision(input: {
      decisionId: string;
      model: string;
      decision: FlywheelDecisionKind;
      reasons: string[];
      champion?: string;
      challenger?: string;
      scores?: { champion: ModelScores; challenger: ModelScores };
      events: number;
      newDocs: number;
      dataset?: string;
      promote: boolean;
      watermark?: FeedbackWatermark;
    }): Promise<{ champion?: string }> {
      return withFailureMapping(async () => {
        await registry.recordDecision({
          id: input.decisionId,
          at: new Date().toISOString(),
          model: input.model,
          champion: input.champion,
          challenger: input.challenger ?? '-',
          decision: input.decision,
          reason: input.reasons.join('; '),
          metrics: {
            ...(input.scores ?? {}),
            events: input.events,
            newDocs: input.newDocs,
            ...(input.dataset ? { dataset: input.dataset } : {}),
          },
        });
        if (input.promote && input.challenger) {
          const current = (await registry.aliases(input.model)).champion;
          if (current !== input.challenger)
            await registry.promote(input.model, input.challenger, `flywheel ${input.decisionId}: ${input.reasons[0]}`);
        }
        if (input.watermark) await store.put(watermarkUri(input.model), Buffer.from(JSON.stringify(input.watermark)));
        return { champion: (await registry.aliases(input.model)).champion };
      });
    },
  };
}
