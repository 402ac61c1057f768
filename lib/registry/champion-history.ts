import { NoPreviousChampion } from './errors';
import type { AliasEvent, AliasState } from './schema';

/**
 * The champions in force, oldest first, replayed from the history: a promotion pushes its version, a rollback pops
 * back to the one before. So rolling back twice after three promotions returns to the first champion, never
 * flip-flops between the last two.
 */
export function championLineage(history: readonly AliasEvent[]): string[] {
  const lineage: string[] = [];
  for (const event of history) {
    if (event.action === 'promote') lineage.push(event.version);
    else lineage.pop();
  }
  return lineage;
}

/** The state after promoting `version`; the same state when it already is the champion (a retried promotion). */
export function promoted(state: AliasState, version: string, reason: string, at: Date): AliasState {
  if (state.champion === version) return state;
  return append(state, { at: at.toISOString(), alias: 'champion', version, action: 'promote', reason });
}

/** The state after returning to the previous champion; NoPreviousChampion when there is none. */
export function rolledBack(state: AliasState, reason: string, at: Date): AliasState {
  const lineage = championLineage(state.history);
  if (lineage.length < 2) throw new NoPreviousChampion(state.model, state.champion);
  const version = lineage[lineage.length - 2];
  return append(state, { at: at.toISOString(), alias: 'champion', version, action: 'rollback', reason });
}

function append(state: AliasState, event: Omit<AliasEvent, 'previous'>): AliasState {
  const full: AliasEvent = state.champion === undefined ? event : { ...event, previous: state.champion };
  return { model: state.model, champion: event.version, history: [...state.history, full] };
}
