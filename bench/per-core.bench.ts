import * as path from 'node:path';
import { gatherCostReport } from '../app/commands/cost';
import { loadConfig } from '../lib/config';
import { tieredStoreFromConfig } from '../lib/storage';
import type { Figure } from './harness';
import { PipelineRig, scaleCorpusMB, writeCorpus } from './scale.bench';

const MB = 1e6;

/** End to end on one core with near dedup before this bench existed (the scale-out bench's figure). */
const BEFORE_MB_PER_CORE = 1.1;

/**
 * `npm run bench -- per-core`: the scale bench's corpus (FLYWHEEL_BENCH_SCALE_MB, default 300 MB in 8 files) through
 * the default pipeline with near dedup on one `flywheel worker` pinned to one core with one compute thread. End to
 * end: corpus MB ÷ wall seconds, against twice the figure before (target). Per stage: corpus MB ÷ the CPU seconds
 * the stage's activities used, as the worker recorded them for `flywheel cost` (its process CPU apportioned over the
 * activities running), so every stage is measured in the same unit and the stages' times add up to the run's.
 */
export async function perCoreFigures(): Promise<Figure[]> {
  const totalMB = scaleCorpusMB();
  const rig = new PipelineRig();
  try {
    const corpus = path.join(rig.scratch, 'corpus');
    const bytes = writeCorpus(corpus, totalMB * MB, 8);
    await rig.start();
    const run = await rig.serve('per-core', [{ cpu: 0, threads: 1 }], corpus, bytes, 1);
    const store = tieredStoreFromConfig(loadConfig({ FLYWHEEL_HOME: rig.home }, rig.scratch));
    const report = await gatherCostReport({ client: rig.client!, store, workflowIds: [run.workflowId] });
    const stages = report.runs.flatMap((r) => r.stages);
    const cpuTotal = stages.reduce((sum, s) => sum + s.cpuSeconds, 0);
    const size = `${(bytes / MB).toFixed(0)} MB in 8 files, ${run.documents} documents`;
    return [
      {
        name: `per-core: whole pipeline with near dedup, 1 worker on 1 core (${size})`,
        value: run.perCore,
        unit: 'MB/s/core',
        min: 2 * BEFORE_MB_PER_CORE,
        note: `wall ${run.wall.toFixed(1)} s; ${(run.perCore / BEFORE_MB_PER_CORE).toFixed(2)}× the ${BEFORE_MB_PER_CORE} MB/s/core before`,
      },
      ...stages.map((s): Figure => ({
        name: `per-core: ${s.name}`,
        value: bytes / MB / s.cpuSeconds,
        unit: 'MB/s/core',
        note: `${s.cpuSeconds.toFixed(1)} CPU s, ${((100 * s.cpuSeconds) / cpuTotal).toFixed(0)}% of the run's, ${s.attempts} activities`,
      })),
    ];
  } finally {
    await rig.close();
  }
}
