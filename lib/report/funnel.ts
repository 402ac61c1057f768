import type { PipelineProgress, StageStats } from '../contracts/pipeline-results';
import type { FunnelRow } from './model';

/** Each stage's label for the total it leaves, in pipeline order. */
const STAGES: { key: keyof PipelineProgress['stages']; total: string }[] = [
  { key: 'collect', total: 'collected' },
  { key: 'filter', total: 'passed the filters' },
  { key: 'dedup', total: 'after exact dedup' },
  { key: 'nearDedup', total: 'after near dedup' },
];

/**
 * The funnel a report draws: records read, then per stage what each rule dropped (largest first) and what was left,
 * ending at the dataset's documents.
 */
export function pipelineFunnel(stages: PipelineProgress['stages'], documents?: number): FunnelRow[] {
  const rows: FunnelRow[] = [];
  const present = STAGES.filter((s) => stages[s.key]);
  const first = present[0] ? (stages[present[0].key] as StageStats) : undefined;
  if (!first)
    return documents === undefined ? [] : [{ label: 'documents', kind: 'total', count: documents, stage: 'done' }];
  // Records read is worth a bar of its own only when collection dropped some (unparsable, oversize).
  if (Object.keys(first.dropped).length > 0 || present[0].key !== 'collect')
    rows.push({ label: 'records read', kind: 'total', count: first.input, stage: present[0].key });
  for (const { key, total } of present) {
    const stats = stages[key] as StageStats;
    const drops = Object.entries(stats.dropped).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
    for (const [rule, n] of drops) rows.push({ label: rule, kind: 'drop', count: n, stage: key });
    rows.push({ label: total, kind: 'total', count: stats.kept, stage: key });
  }
  const last = rows[rows.length - 1];
  if (documents !== undefined && documents !== last.count)
    rows.push({ label: 'documents', kind: 'total', count: documents, stage: 'done' });
  return rows;
}
