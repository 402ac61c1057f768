import { FlywheelError } from '../common';
import { parseFeedbackBatch, type FeedbackEvent, type FeedbackLimits } from '../contracts/feedback';

export interface FeedbackBatcherOptions extends FeedbackLimits {
  /** A batch is sent once it holds this many events (default 500). */
  maxEvents?: number;
  /** ...or this long after its first event (default 50 ms). */
  maxDelayMs?: number;
  /** Batches sent at once; later ones wait their turn (default 4). */
  maxInFlight?: number;
}

interface Waiter {
  event: FeedbackEvent;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** Thrown by `add` after `close`. */
/** A batch is cut at this many events or this long after its first; this many batches are sent at once. */
export const FEEDBACK_BATCHER_DEFAULTS = { maxEvents: 500, maxDelayMs: 50, maxInFlight: 4 } as const;

export class FeedbackBatcherClosed extends FlywheelError {
  constructor() {
    super('FeedbackBatcherClosed', 'This FeedbackBatcher is closed; make a new one to submit more feedback.', {
      retryable: false,
    });
  }
}

/**
 * Gathers single events from a service's request handlers into batches for one submit call each, so throughput
 * comes from few large Temporal updates instead of many small ones. Each `add` resolves when the batch holding its
 * event is durably accepted, and rejects if that batch fails; a bad event is refused alone, at once.
 */
export class FeedbackBatcher {
  private pending: Waiter[] = [];
  private queued: Waiter[][] = [];
  private inFlight = new Set<Promise<void>>();
  private sending = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  private readonly maxEvents: number;
  private readonly maxDelayMs: number;
  private readonly maxInFlight: number;

  constructor(
    private readonly submit: (events: FeedbackEvent[]) => Promise<unknown>,
    private readonly opts: FeedbackBatcherOptions = {},
  ) {
    this.maxEvents = opts.maxEvents ?? FEEDBACK_BATCHER_DEFAULTS.maxEvents;
    this.maxDelayMs = opts.maxDelayMs ?? FEEDBACK_BATCHER_DEFAULTS.maxDelayMs;
    this.maxInFlight = opts.maxInFlight ?? FEEDBACK_BATCHER_DEFAULTS.maxInFlight;
  }

  /** Events waiting for a batch or in one not yet accepted. */
  get outstanding(): number {
    return this.pending.length + this.queued.reduce((n, b) => n + b.length, 0) + this.sending;
  }

  /** Queues one event; resolves once it is durably accepted (or was a duplicate of one that was). A bad event rejects with InvalidFeedback. */
  add(event: unknown): Promise<void> {
    if (this.closed) return Promise.reject(new FeedbackBatcherClosed());
    let parsed: FeedbackEvent;
    try {
      [parsed] = parseFeedbackBatch([event], this.opts);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ event: parsed, resolve, reject });
      if (this.pending.length >= this.maxEvents) this.cut();
      else this.timer ??= setTimeout(() => this.cut(), this.maxDelayMs);
    });
  }

  /** Sends what is waiting now and resolves when every batch sent so far has settled. */
  async flush(): Promise<void> {
    this.cut();
    while (this.inFlight.size > 0 || this.queued.length > 0) await Promise.allSettled([...this.inFlight]);
  }

  /** Flushes, then refuses further events. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
  }

  private cut(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    let events = this.pending;
    this.pending = [];
    // While every send slot is busy, later cuts fill the batch already waiting (up to maxEvents) instead of queuing
    // one small batch per cut: under sustained load the batches grow, so the backlog drains instead of growing.
    const waiting = this.queued[this.queued.length - 1];
    if (waiting && waiting.length < this.maxEvents) {
      const room = this.maxEvents - waiting.length;
      waiting.push(...events.slice(0, room));
      events = events.slice(room);
    }
    if (events.length > 0) this.queued.push(events);
    this.pump();
  }

  private pump(): void {
    while (this.inFlight.size < this.maxInFlight && this.queued.length > 0) {
      const batch = this.queued.shift()!;
      this.sending += batch.length;
      const sent: Promise<void> = this.submit(batch.map((w) => w.event)).then(
        () => batch.forEach((w) => w.resolve()),
        (err: unknown) => batch.forEach((w) => w.reject(err)),
      );
      const done = sent.finally(() => {
        this.sending -= batch.length;
        this.inFlight.delete(done);
        this.pump();
      });
      this.inFlight.add(done);
    }
  }
}
