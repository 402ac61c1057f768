import { z } from 'zod';
import { QualitySpec } from '../quality/spec';

const name = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes, at most 63');
const duration = z
  .string()
  .regex(/^[0-9]+(ms|s|m|h|d)$/, 'a duration such as 90s, 30m, 12h or 1d')
  .describe('a duration: 90s, 30m, 12h, 1d');

/** Metrics the gate can compare: validation loss or perplexity on the held-out set or on the new feedback. */
export const GateMetric = z.enum(['heldout.valLoss', 'heldout.perplexity', 'feedback.valLoss', 'feedback.perplexity']);
export type GateMetric = z.infer<typeof GateMetric>;

/**
 * The flywheel's one argument: which model it improves, how feedback becomes training data, how the challenger is
 * trained, and the gate it must pass. `{ "model": "sample" }` is complete: the champion's own dataset is the base.
 */
export const FlywheelSpec = z
  .object({
    model: name.describe('registered model whose champion the flywheel improves'),
    feedback: z
      .object({
        minScore: z
          .number()
          .min(0)
          .max(1)
          .default(0.6)
          .describe('a response without a correction becomes training data at this rating or above (thumbs up = 1)'),
        negatives: z
          .enum(['exclude', 'keep'])
          .default('exclude')
          .describe('low-rated responses: left out, or kept as documents tagged negative in metadata'),
      })
      .strict()
      .prefault({}),
    quality: QualitySpec.prefault({}).describe("the pipeline's quality filters, applied to the feedback documents"),
    nearDedup: z
      .boolean()
      .default(true)
      .describe('drop feedback documents that nearly repeat the base dataset (needs a base built with dedup.near)'),
    training: z
      .object({
        steps: z.number().int().min(1).default(50).describe('fine-tuning steps for the challenger'),
        segmentSteps: z.number().int().min(1).default(50),
        checkpointEvery: z.number().int().min(1).default(25),
        trainer: z
          .record(z.string(), z.unknown())
          .optional()
          .describe("fields that override the champion's trainer spec, merged deeply (e.g. optimizer.lr)"),
      })
      .strict()
      .prefault({}),
    gate: z
      .object({
        primary: GateMetric.default('heldout.valLoss'),
        minImprovement: z
          .number()
          .min(0)
          .default(0.001)
          .describe('the challenger must lower the primary metric by at least this much'),
        guards: z
          .array(z.object({ metric: GateMetric, tolerance: z.number().min(0) }).strict())
          .default([{ metric: 'feedback.valLoss', tolerance: 0.05 }])
          .describe('metrics that may not get worse by more than their tolerance'),
        evalTokens: z.number().int().min(1).default(50_000).describe('tokens scored per evaluation set'),
      })
      .strict()
      .prefault({}),
    approval: z
      .object({
        timeout: duration.default('24h'),
        default: z.enum(['promote', 'reject']).default('reject').describe('the decision when nobody answers'),
      })
      .strict()
      .optional()
      .describe('wait for an `approve` or `reject` signal before promoting a challenger that passed the gate'),
    schedule: z
      .object({
        cron: z.string().min(9).default('0 2 * * *').describe('when the flywheel runs (cron, 5 fields)'),
        timezone: z.string().default('UTC').describe('IANA time zone of the cron'),
        catchupWindow: duration.default('6h').describe('how late a missed run may still start'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type FlywheelSpec = z.infer<typeof FlywheelSpec>;
export type FlywheelInput = z.input<typeof FlywheelSpec>;

export type FlywheelDecisionKind = 'promote' | 'reject' | 'no-data' | 'failed';

export interface ModelScores {
  'heldout.valLoss': number;
  'heldout.perplexity': number;
  'feedback.valLoss'?: number;
  'feedback.perplexity'?: number;
}

export interface GateOutcome {
  passed: boolean;
  reasons: string[];
}

/**
 * The promotion rule: the primary metric must drop by at least `minImprovement`, and no guard may rise by more than
 * its tolerance. Metrics missing on either side (no feedback split) are skipped with a reason, never guessed.
 */
export function applyGate(gate: FlywheelSpec['gate'], champion: ModelScores, challenger: ModelScores): GateOutcome {
  const reasons: string[] = [];
  let passed = true;
  const a = champion[gate.primary];
  const b = challenger[gate.primary];
  if (a === undefined || b === undefined) {
    passed = false;
    reasons.push(`primary metric ${gate.primary} is missing`);
  } else if (a - b >= gate.minImprovement) {
    reasons.push(`${gate.primary} improved ${a.toFixed(4)} → ${b.toFixed(4)} (needed ≥ ${gate.minImprovement})`);
  } else {
    passed = false;
    reasons.push(
      `${gate.primary} ${a.toFixed(4)} → ${b.toFixed(4)}: improvement ${(a - b).toFixed(4)} is below ${gate.minImprovement}`,
    );
  }
  for (const guard of gate.guards) {
    const x = champion[guard.metric];
    const y = challenger[guard.metric];
    if (x === undefined || y === undefined) {
      reasons.push(`guard ${guard.metric} skipped: not measured`);
      continue;
    }
    if (y - x > guard.tolerance) {
      passed = false;
      reasons.push(`guard ${guard.metric} regressed ${x.toFixed(4)} → ${y.toFixed(4)} (tolerance ${guard.tolerance})`);
    } else reasons.push(`guard ${guard.metric} held: ${x.toFixed(4)} → ${y.toFixed(4)}`);
  }
  return { passed, reasons };
}

export interface FlywheelProgress {
  stage: 'validate' | 'curate' | 'pipeline' | 'train' | 'evaluate' | 'approval' | 'decide' | 'done';
  events?: number;
  newDocs?: number;
  challenger?: string;
}

export interface FlywheelResult {
  model: string;
  decision: FlywheelDecisionKind;
  reasons: string[];
  /** Feedback events read since the watermark, and the documents they became after filters and dedup. */
  events: number;
  newDocs: number;
  champion?: string;
  challenger?: string;
  /** The champion after the run (the challenger when promoted). */
  championAfter?: string;
  dataset?: string;
  scores?: { champion: ModelScores; challenger: ModelScores };
  decisionId: string;
}

/** `flywheel-<model>-<YYYY-MM-DD>` for a run on `date`. */
export function flywheelWorkflowId(model: string, date: Date): string {
  return `flywheel-${model}-${date.toISOString().slice(0, 10)}`;
}

/** The Temporal Schedule that runs a model's flywheel. */
export function flywheelScheduleId(model: string): string {
  return `flywheel-${model}`;
}

/** Temporal duration text (`90s`, `12h`, `1d`) in milliseconds. */
export function durationMs(text: string): number {
  const m = /^([0-9]+)(ms|s|m|h|d)$/.exec(text);
  if (!m) throw new RangeError(`not a duration: ${text}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}
