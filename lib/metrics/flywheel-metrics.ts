/** Tags on a metric point: the SDK's activity meter adds namespace, task_queue and activity_type by itself. */
export type MetricTags = Record<string, string | number | boolean>;

/**
 * The part of the Temporal SDK's `MetricMeter` Flywheel uses. lib/ stays free of @temporalio: an activity passes
 * `Context.current().metricMeter`, which satisfies this, so Flywheel's metrics leave through the SDK runtime's own
 * Prometheus endpoint beside the SDK's.
 */
export interface Meter {
  createCounter(name: string, unit?: string, description?: string): { add(value: number, tags?: MetricTags): void };
  createHistogram(
    name: string,
    valueType?: 'int' | 'float',
    unit?: string,
    description?: string,
  ): { record(value: number, tags?: MetricTags): void };
  createGauge(
    name: string,
    valueType?: 'int' | 'float',
    unit?: string,
    description?: string,
  ): { set(value: number, tags?: MetricTags): void };
}

/** Every metric Flywheel adds, by name: the README's metrics table and the Prometheus bucket overrides use these. */
export const FLYWHEEL_METRICS = {
  documents: 'flywheel_documents',
  documentsPerSecond: 'flywheel_documents_per_second',
  tokens: 'flywheel_tokens',
  tokensPerSecond: 'flywheel_tokens_per_second',
  stageSeconds: 'flywheel_stage_seconds',
  checkpointBytes: 'flywheel_checkpoint_bytes',
  checkpointSeconds: 'flywheel_checkpoint_seconds',
  feedbackEvents: 'flywheel_feedback_events',
} as const;

/**
 * Bucket bounds for Flywheel's histograms (the runtime's defaults are milliseconds, 50 to 10,000): stages run from
 * seconds to hours, checkpoints from kilobytes to many gigabytes.
 */
export const FLYWHEEL_HISTOGRAM_BUCKETS: Record<string, number[]> = {
  [FLYWHEEL_METRICS.stageSeconds]: [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600],
  [FLYWHEEL_METRICS.checkpointSeconds]: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
  [FLYWHEEL_METRICS.checkpointBytes]: [1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11],
};

/** Flywheel's instruments on a meter; cheap to make per activity call (the runtime keeps one series per name). */
export function flywheelMetrics(meter: Meter) {
  const m = FLYWHEEL_METRICS;
  return {
    documents: meter.createCounter(m.documents, 'documents', 'documents a pipeline stage read (rate() = documents/s)'),
    documentsPerSecond: meter.createGauge(
      m.documentsPerSecond,
      'float',
      'documents/s',
      'throughput of the last pipeline stage activity',
    ),
    tokens: meter.createCounter(m.tokens, 'tokens', 'tokens tokenized or trained on (rate() = tokens/s)'),
    tokensPerSecond: meter.createGauge(
      m.tokensPerSecond,
      'float',
      'tokens/s',
      'throughput of the last tokenize or train activity',
    ),
    stageSeconds: meter.createHistogram(m.stageSeconds, 'float', 's', 'wall time of a pipeline stage activity'),
    checkpointBytes: meter.createHistogram(m.checkpointBytes, 'int', 'bytes', 'bytes of a saved checkpoint'),
    checkpointSeconds: meter.createHistogram(m.checkpointSeconds, 'float', 's', 'time to save a checkpoint'),
    feedbackEvents: meter.createCounter(m.feedbackEvents, 'events', 'user feedback events received'),
  };
}

/** A pipeline stage's activity finished: its wall time, and how many documents it read and how fast. */
export function recordStage(
  meter: Meter,
  stage: string,
  work: { seconds: number; documents?: number; tokens?: number },
) {
  const metrics = flywheelMetrics(meter);
  const tags = { stage };
  metrics.stageSeconds.record(work.seconds, tags);
  if (work.documents !== undefined) {
    metrics.documents.add(work.documents, tags);
    if (work.seconds > 0) metrics.documentsPerSecond.set(work.documents / work.seconds, tags);
  }
  if (work.tokens !== undefined) {
    metrics.tokens.add(work.tokens, tags);
    if (work.seconds > 0) metrics.tokensPerSecond.set(work.tokens / work.seconds, tags);
  }
}

/** Training throughput of a segment. */
export function recordTraining(meter: Meter, work: { tokensPerSecond: number; tokens?: number }) {
  const metrics = flywheelMetrics(meter);
  const tags = { stage: 'train' };
  if (work.tokens !== undefined) metrics.tokens.add(Math.round(work.tokens), tags);
  if (Number.isFinite(work.tokensPerSecond)) metrics.tokensPerSecond.set(work.tokensPerSecond, tags);
}

/** A checkpoint was saved: its size and how long the save took. */
export function recordCheckpoint(meter: Meter, saved: { bytes: number; seconds: number; tier?: string }) {
  const metrics = flywheelMetrics(meter);
  const tags = { tier: saved.tier ?? 'hot' };
  metrics.checkpointBytes.record(Math.round(saved.bytes), tags);
  metrics.checkpointSeconds.record(saved.seconds, tags);
}

/** Feedback events arrived (by kind: rating, correction, ...). */
export function recordFeedback(meter: Meter, events: number, kind = 'all') {
  flywheelMetrics(meter).feedbackEvents.add(events, { kind });
}

/** Times `work`, recording it as a stage with the documents and tokens `count` finds in its result. */
export async function timeStage<T>(
  meter: Meter,
  stage: string,
  work: () => Promise<T>,
  count: (result: T) => { documents?: number; tokens?: number } = () => ({}),
): Promise<T> {
  const started = process.hrtime.bigint();
  const result = await work();
  recordStage(meter, stage, { seconds: Number(process.hrtime.bigint() - started) / 1e9, ...count(result) });
  return result;
}

/** Bytes a checkpoint's files hold (streams, whose size is not known up front, are not counted). */
function filesBytes(files: Readonly<Record<string, unknown>>): number {
  let bytes = 0;
  for (const body of Object.values(files)) {
    if (typeof body === 'string') bytes += Buffer.byteLength(body);
    else if (body instanceof Uint8Array) bytes += body.byteLength;
  }
  return bytes;
}

/** Saves a checkpoint through `save` and records its bytes and seconds. */
export async function timeCheckpointSave<F extends Readonly<Record<string, unknown>>, M, R>(
  meter: Meter,
  checkpoints: { save(step: number, files: F, meta: M): Promise<R> },
  step: number,
  files: F,
  meta: M,
): Promise<R> {
  const started = process.hrtime.bigint();
  const saved = await checkpoints.save(step, files, meta);
  recordCheckpoint(meter, { bytes: filesBytes(files), seconds: Number(process.hrtime.bigint() - started) / 1e9 });
  return saved;
}
