import type { FeedbackWatermark } from '../feedback';
import type { FlywheelDecisionKind, ModelScores } from '../contracts/flywheel';
import { ModelRegistry } from '../registry';
import type { TieredStore } from '../storage';
import { writeFlywheelWatermark } from './watermark';

/** A flywheel round's decision, with the numbers it was made on. */
export interface FlywheelDecision {
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
  /** Make the challenger the champion. */
  promote: boolean;
  /** Move the feedback watermark here: the champion now covers the feedback before it. */
  watermark?: FeedbackWatermark;
}

/**
 * Records the decision with its numbers in the registry; promotes the challenger when told; moves the feedback
 * watermark when the champion now covers that feedback. Safe to retry. Returns the champion after it.
 */
export async function recordFlywheelDecision(
  store: TieredStore,
  input: FlywheelDecision,
): Promise<{ champion?: string }> {
  const registry = new ModelRegistry(store);
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
  if (input.watermark) await writeFlywheelWatermark(store, input.model, input.watermark);
  return { champion: (await registry.aliases(input.model)).champion };
}
