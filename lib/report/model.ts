import type { CostReport } from '../cost/run-cost';
import type { DatasetSummary, PipelineProgress, StageStats } from '../contracts/pipeline-results';
import type { Evaluation } from '../contracts/training';
import type { Tier } from '../storage';

/** One workflow the report covers, as the Temporal server described it. */
export interface ReportWorkflow {
  workflowId: string;
  type: string;
  status: string;
  startTime: string;
  closeTime?: string;
  seconds: number;
  /** Link to the run in the Temporal Web UI, when its address is known. */
  uiUrl?: string;
  failure?: string;
}

/** One bar of the pipeline funnel: a running total, or what one rule dropped from it. */
export interface FunnelRow {
  label: string;
  kind: 'total' | 'drop';
  count: number;
  stage: string;
}

/** Sizes of the duplicate clusters one dedup method found: cluster size (documents, kept one included) → clusters. */
export interface ClusterSizes {
  method: 'exact' | 'near';
  /** Documents the stage read. */
  documents: number;
  /** Documents it removed as duplicates. */
  removed: number;
  /** Only clusters of 2 or more documents; every other document is a cluster of its own. */
  sizes: Record<number, number>;
}

export interface PipelineSection {
  workflowId?: string;
  status?: string;
  dataset: string;
  version: string;
  specDigest: string;
  manifestUri?: string;
  stages: PipelineProgress['stages'];
  funnel: FunnelRow[];
  documents: number;
  tokens: number;
  shards: { train: number; validation: number };
  reused?: boolean;
  /** Undefined when the stage manifests are gone (collected as garbage) or dedup was off. */
  clusters: ClusterSizes[];
}

/** A checkpoint step and the tiers that hold a committed copy of it now. */
export interface RetainedCheckpoint {
  step: number;
  epoch: number;
  tiers: Tier[];
  metrics: Record<string, number>;
}

export interface TrainingSection {
  workflowId?: string;
  status?: string;
  run: string;
  dataset?: string;
  steps: number;
  step: number;
  firstLoss?: number;
  loss?: number;
  valLoss?: number;
  perplexity?: number;
  tokensPerSecond?: number;
  stoppedEarly?: boolean;
  model?: { name: string; version: string };
  evaluations: Evaluation[];
  /** Every checkpoint step written, retained or since deleted by retention. */
  written: number[];
  retained: RetainedCheckpoint[];
}

/**
 * A champion/challenger decision, as the model registry records it. Versions and metrics are read leniently (a
 * version string or an object with `version`; metrics per side or per name), so the report renders any record of
 * this shape.
 */
export interface PromotionDecision {
  id: string;
  at: string;
  model: string;
  champion?: unknown;
  challenger: unknown;
  decision: string;
  reason: string;
  metrics: unknown;
}

export interface RunReport {
  title: string;
  generatedAt: string;
  workflows: ReportWorkflow[];
  pipelines: PipelineSection[];
  trainings: TrainingSection[];
  promotions: PromotionDecision[];
  /** What the workflows used and cost (`flywheel cost`); absent when it could not be gathered. */
  cost?: CostReport;
  /** What could not be read (a workflow still running, stage manifests gone), said in the report. */
  notes: string[];
}

export type { DatasetSummary, StageStats };
