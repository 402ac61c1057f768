import type { FlywheelClient } from '../../client/flywheel-client';
import type { PipelineInput } from '../../lib/contracts/pipeline';
import { readManifest, verifyManifest, type TieredStore } from '../../lib/storage';

/** One pipeline of the load: its dataset, how long from start to result, and what went wrong if it did. */
export interface PipelineRun {
  dataset: string;
  latencyMs: number;
  /** Shards written and verified against their sha256. */
  shards?: number;
  error?: string;
}

/** A small dataset: 32 documents of the bundled sample corpus, through every stage, in a few small shards. */
export function loadPipelineSpec(index: number): PipelineInput {
  return {
    dataset: `load-${String(index).padStart(3, '0')}`,
    version: 'v1',
    sources: [{ type: 'sample', limit: 32 }],
    shards: { targetBytes: 64 * 1024, validationFraction: 0.1 },
  };
}

/**
 * Starts `count` pipelines at once and waits for every result, each within `timeoutMs` of its start. A pipeline
 * succeeds when its workflow completes and every shard of its manifest verifies in storage.
 */
export async function runConcurrentPipelines(
  flywheel: FlywheelClient,
  store: TieredStore,
  count: number,
  timeoutMs: number,
): Promise<PipelineRun[]> {
  return Promise.all(
    Array.from({ length: count }, async (_, i): Promise<PipelineRun> => {
      const spec = loadPipelineSpec(i);
      const started = performance.now();
      try {
        const summary = await withTimeout(
          flywheel.startPipeline(spec).then((handle) => handle.result()),
          timeoutMs,
          `pipeline ${spec.dataset} did not finish`,
        );
        const latencyMs = performance.now() - started;
        const verified = await verifyManifest(store, await readManifest(store, summary.manifest));
        return { dataset: spec.dataset, latencyMs, shards: verified.objects };
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        return { dataset: spec.dataset, latencyMs: performance.now() - started, error: message.split('\n')[0] };
      }
    }),
  );
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
