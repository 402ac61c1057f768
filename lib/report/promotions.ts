import { ModelRegistry } from '../registry';
import type { TieredStore } from '../storage';
import type { PromotionDecision } from './model';

/**
 * Champion/challenger decisions the model registry recorded for a model: the one a flywheel round made (by its id),
 * or those that judged a given version as the challenger.
 */
export async function recordedDecisions(
  store: TieredStore,
  query: { model: string; decisionId?: string; challenger?: string },
): Promise<PromotionDecision[]> {
  const all = await new ModelRegistry(store).decisions(query.model);
  return all.filter(
    (d) =>
      (query.decisionId === undefined || d.id === query.decisionId) &&
      (query.challenger === undefined || d.challenger === query.challenger),
  );
}
