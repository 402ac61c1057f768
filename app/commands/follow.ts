import { Presets, SingleBar } from 'cli-progress';
import type { WorkflowHandle } from '@temporalio/client';

/** Where a long-running workflow stands, in the terms a progress bar shows. */
export interface ProgressMeter {
  /** The workflow's stage: `collect`, `tokenize`, `train`, ... */
  stage: string;
  done: number;
  total: number;
  /** What `done` counts: batches, partitions, shards, steps. */
  unit: string;
  /** A short tail: documents collected, the latest loss. */
  detail?: string;
}

const PIPELINE_UNITS: Record<string, string> = {
  collect: 'batches',
  filter: 'batches',
  dedup: 'steps',
  'near-dedup': 'steps',
  tokenize: 'partitions',
  shard: 'shards',
  commit: 'manifests',
};

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Reads the meter out of a workflow's `progress` query: the pipeline's (stage, done/total, documents) and the
 * training run's (step/steps, loss) shapes are known; anything else has no bar and is shown as plain lines.
 */
export function meterOf(progress: unknown): ProgressMeter | undefined {
  if (typeof progress !== 'object' || progress === null) return undefined;
  const p = progress as Record<string, unknown>;
  if (typeof p.stage === 'string' && isNumber(p.step) && isNumber(p.steps)) {
    const loss = isNumber(p.loss) ? `loss ${p.loss.toFixed(3)}` : undefined;
    const valLoss = isNumber(p.valLoss) ? `validation loss ${p.valLoss.toFixed(3)}` : undefined;
    return {
      stage: p.stage,
      done: p.step,
      total: p.steps,
      unit: 'steps',
      detail: [loss, valLoss].filter(Boolean).join(', ') || undefined,
    };
  }
  if (typeof p.stage === 'string' && isNumber(p.done) && isNumber(p.total)) {
    return {
      stage: p.stage,
      done: p.done,
      total: p.total,
      unit: PIPELINE_UNITS[p.stage] ?? 'steps',
      detail: isNumber(p.documents) && p.documents > 0 ? `${p.documents} documents collected` : undefined,
    };
  }
  return undefined;
}

/** Rate and time left of one stage, from the first and the latest reading of its meter. */
export class StageClock {
  private stage = '';
  private startedAt = 0;
  private startDone = 0;

  constructor(private readonly now: () => number = Date.now) {}

  read(meter: ProgressMeter): { rate?: number; etaSeconds?: number } {
    const t = this.now();
    if (meter.stage !== this.stage || meter.done < this.startDone) {
      this.stage = meter.stage;
      this.startedAt = t;
      this.startDone = meter.done;
    }
    const seconds = (t - this.startedAt) / 1000;
    const advanced = meter.done - this.startDone;
    if (seconds <= 0 || advanced <= 0) return meter.total > 0 && meter.done >= meter.total ? { etaSeconds: 0 } : {};
    const rate = advanced / seconds;
    return { rate, etaSeconds: meter.total > meter.done ? (meter.total - meter.done) / rate : 0 };
  }
}

export function formatRate(rate: number | undefined, unit: string): string {
  if (rate === undefined) return `… ${unit}/s`;
  return `${rate >= 10 ? rate.toFixed(0) : rate.toFixed(rate >= 1 ? 1 : 2)} ${unit}/s`;
}

export function formatEta(seconds: number | undefined): string {
  if (seconds === undefined) return '…';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** The plain line for a meter: `collect 3/10 batches, 1.5 batches/s, ETA 5s, 120 documents collected`. */
export function meterLine(meter: ProgressMeter, clock: { rate?: number; etaSeconds?: number }): string {
  const counts = meter.total > 0 ? ` ${meter.done}/${meter.total} ${meter.unit}` : '';
  const pace =
    meter.total > 0 && clock.rate !== undefined
      ? `, ${formatRate(clock.rate, meter.unit)}, ETA ${formatEta(clock.etaSeconds)}`
      : '';
  return `${meter.stage}${counts}${pace}${meter.detail ? `, ${meter.detail}` : ''}`;
}

/** How progress is shown: a live bar on a terminal, or plain lines for logs and pipes. */
export interface ProgressDisplay {
  update(progress: unknown, line: string): void;
  stop(): void;
}

/**
 * Plain lines, printed when what they say changes (rate and ETA are added to a line, never a reason to print one),
 * so a log of a long run stays short.
 */
export function lineDisplay(print: (line: string) => void, now: () => number = Date.now): ProgressDisplay {
  const clock = new StageClock(now);
  let last = '';
  return {
    update(progress, line) {
      const meter = meterOf(progress);
      const pace = meter ? clock.read(meter) : {};
      if (line === last) return;
      last = line;
      print(
        meter && pace.rate !== undefined && meter.total > 0
          ? `${line} (${formatRate(pace.rate, meter.unit)}, ETA ${formatEta(pace.etaSeconds)})`
          : line,
      );
    },
    stop() {},
  };
}

/**
 * A cli-progress bar per stage on a terminal: `tokenize |████░░░░| 3/8 partitions | 1.5 partitions/s | ETA 4s | 120
 * documents collected`. A finished stage's bar stays on screen; the next stage starts a new one below it.
 */
export function barDisplay(
  stream: NodeJS.WritableStream = process.stderr,
  now: () => number = Date.now,
  prefix = '',
): ProgressDisplay {
  const clock = new StageClock(now);
  let bar: SingleBar | undefined;
  let stage: string | undefined;
  const newBar = () =>
    new SingleBar(
      {
        stream,
        format: `${prefix}{stage} |{bar}| {value}/{total} {unit} | {rate} | ETA {left} | {detail}`,
        barsize: 24,
        hideCursor: false,
        gracefulExit: true,
        // The workflow is polled once a second: redraws in between would show nothing new.
        fps: 2,
        linewrap: false,
      },
      Presets.shades_classic,
    );
  return {
    update(progress, line) {
      const meter = meterOf(progress);
      if (!meter || meter.total <= 0) {
        // Stages without counts (plan, validate, done) show as a bar-less status line.
        if (bar) {
          bar.stop();
          bar = undefined;
        }
        if (stage !== line) stream.write(`${prefix}${line}\n`);
        stage = line;
        return;
      }
      const pace = clock.read(meter);
      const payload = {
        // Padded, so the bars of successive stages line up.
        stage: meter.stage.padEnd(8),
        unit: meter.unit,
        rate: formatRate(pace.rate, meter.unit),
        left: formatEta(pace.etaSeconds),
        detail: meter.detail ?? '',
      };
      if (!bar || stage !== meter.stage) {
        bar?.stop();
        bar = newBar();
        stage = meter.stage;
        bar.start(meter.total, meter.done, payload);
      } else {
        bar.setTotal(meter.total);
        bar.update(meter.done, payload);
      }
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}

/** A bar on a terminal (stderr), plain lines through `print` otherwise; FLYWHEEL_PROGRESS=plain forces lines. */
export function defaultDisplay(print: (line: string) => void): ProgressDisplay {
  const tty =
    process.stderr.isTTY === true && process.env.FLYWHEEL_PROGRESS !== 'plain' && process.env.CI === undefined;
  return tty ? barDisplay(process.stderr) : lineDisplay(print);
}

/**
 * Waits for a workflow's result, showing its `progress` query (polled once a second) as a live bar on a terminal,
 * or as a line whenever `describe` says something new. Shared by every command with `--wait` and `status --follow`.
 */
export async function followWorkflow<Result, Progress>(
  handle: WorkflowHandle,
  describe: (progress: Progress) => string,
  print: (line: string) => void,
  opts: { display?: ProgressDisplay; intervalMs?: number; read?: () => Promise<Progress> } = {},
): Promise<Result> {
  const display = opts.display ?? defaultDisplay(print);
  let finished = false;
  const result = (handle.result() as Promise<Result>).finally(() => (finished = true));
  try {
    while (!finished) {
      try {
        const progress = opts.read ? await opts.read() : ((await handle.query('progress')) as Progress);
        display.update(progress, describe(progress));
      } catch {
        // The first workflow task may not have run yet: nothing to show.
      }
      await Promise.race([result.catch(() => undefined), new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000))]);
    }
  } finally {
    display.stop();
  }
  return result;
}
