import { utf8Bytes } from '../lib/contracts/feedback';
import type { CarryEntries } from '../lib/contracts/pipeline-carry';

/** At most this many stage activities pending at once: far below Temporal's 2,000, kind to small clusters. */
export const MAX_PENDING = 8;

/**
 * Activities one pipeline execution starts before it continues as new: each costs about six history events, so an
 * execution stays far below the 51,200-event limit.
 */
export const DEFAULT_ACTIVITIES_PER_EXECUTION = 2000;

/**
 * An execution also continues once its history has grown this much since it read back its carry (large results
 * can fill bytes before activities reach the count). Measured from after the read-back, so a large carry alone
 * cannot make every execution stop after one activity; a carry itself of more than about 25 MB (some 50,000
 * activity results) would leave too little room under Temporal's 50 MB history limit.
 */
export const HISTORY_GROWTH_PER_EXECUTION = { events: 20_000, bytes: 16 * 1024 * 1024 };

/** The size of this execution's history so far, as workflowInfo() reports it (replay-safe). */
export interface HistoryMeasure {
  events: number;
  bytes: number;
}

/**
 * What a pipeline execution hands the next when it continues as new: the results themselves go through warm://
 * in pages (a workflow input, like any payload, is limited to a few MB; thousands of results are more).
 */
export interface PipelineCarry {
  /** The execution this carry starts (2 for the first continued one). */
  execution: number;
  /** Each earlier execution that saved results, and how many pages: each saves only what it finished itself. */
  saved: { execution: number; pages: number }[];
}

/** One page of carried results: [key, result] pairs, at most about CARRY_PAGE_BYTES of JSON. */
export type { CarryEntries };

/** Well under the payload limits (2 MB by default) for the save activity's input and the load activity's result. */
export const CARRY_PAGE_BYTES = 512 * 1024;

/** How a budget saves and loads its pages: activities of the pipeline, on its run folder. */
export interface CarryStore {
  save(execution: number, page: number, entries: CarryEntries): Promise<void>;
  load(execution: number, page: number): Promise<CarryEntries>;
}

/** The dataPipeline workflow's second argument: neither needed nor shown in the UI form. */
export interface PipelineOptions {
  /** Continue as new after this many activities (default 2,000; sooner when the history has grown a lot). */
  maxActivitiesPerExecution?: number;
  /** Set by the workflow itself when it continues as new. */
  carry?: PipelineCarry;
}

/** Thrown through the stages once the execution has started its share of activities and all of them completed. */
export class ExecutionFull extends Error {
  constructor() {
    super('this pipeline execution has started its share of activities; it continues as new');
    this.name = 'ExecutionFull';
  }
}

/**
 * Keeps a long pipeline's history bounded. Every stage activity goes through `once(key, call)`: a key whose result
 * the run already has (carried from an earlier execution) returns it without scheduling anything; otherwise the call
 * is started, unless this execution is full, in which case ExecutionFull unwinds the stages. Fan-outs stop starting
 * work at that point and let what they started finish first, so the carried results are exactly the completed work.
 * Deterministic: it depends only on the carried input, the order of calls and Temporal's suggestion.
 */
export class ExecutionBudget {
  private readonly results: Record<string, unknown> = {};
  private readonly limit: number;
  private started = 0;
  private store?: CarryStore;
  /** Keys of the results this execution added (what it saves), in the order they completed. */
  private readonly fresh: string[] = [];
  private base?: HistoryMeasure;

  constructor(
    private readonly options: PipelineOptions,
    private readonly history: () => HistoryMeasure,
  ) {
    const limit = options.maxActivitiesPerExecution ?? DEFAULT_ACTIVITIES_PER_EXECUTION;
    this.limit = Number.isInteger(limit) && limit >= 1 ? limit : DEFAULT_ACTIVITIES_PER_EXECUTION;
  }

  storeWith(store: CarryStore): void {
    this.store = store;
  }

  /** Reads back the results earlier executions saved (nothing on the first), then measures the history from here. */
  async restore(): Promise<void> {
    for (const { execution, pages } of this.options.carry?.saved ?? []) {
      for (let page = 0; page < pages; page++) {
        for (const [key, result] of await this.requireStore().load(execution, page)) this.results[key] = result;
      }
    }
    this.base = this.history();
  }

  /** Saves the results this execution added, in pages, and returns the next execution's carry. */
  async persist(): Promise<PipelineCarry> {
    const execution = this.options.carry?.execution ?? 1;
    const pages: CarryEntries[] = [];
    let bytes = Infinity;
    for (const key of this.fresh) {
      const entry: [string, unknown] = [key, this.results[key]];
      const size = utf8Bytes(JSON.stringify(entry));
      if (bytes + size > CARRY_PAGE_BYTES) {
        pages.push([]);
        bytes = 0;
      }
      pages[pages.length - 1].push(entry);
      bytes += size;
    }
    for (let page = 0; page < pages.length; page++) await this.requireStore().save(execution, page, pages[page]);
    const saved = [
      ...(this.options.carry?.saved ?? []),
      ...(pages.length > 0 ? [{ execution, pages: pages.length }] : []),
    ];
    return { execution: execution + 1, saved };
  }

  /** Whether this execution has done its share: its activity count, or its history's growth since the read-back. */
  private full(): boolean {
    if (this.started >= this.limit) return true;
    const now = this.history();
    const base = this.base ?? { events: 0, bytes: 0 };
    return (
      now.events - base.events >= HISTORY_GROWTH_PER_EXECUTION.events ||
      now.bytes - base.bytes >= HISTORY_GROWTH_PER_EXECUTION.bytes
    );
  }

  private requireStore(): CarryStore {
    if (!this.store) throw new Error('ExecutionBudget: storeWith() was not called');
    return this.store;
  }

  async once<T>(key: string, call: () => Promise<T>): Promise<T> {
    if (Object.prototype.hasOwnProperty.call(this.results, key)) return this.results[key] as T;
    if (this.started > 0 && this.full()) throw new ExecutionFull();
    this.started += 1;
    const result = await call();
    // Stored as JSON will carry it: an activity that returned nothing is remembered as null.
    this.results[key] = result === undefined ? null : result;
    this.fresh.push(key);
    return result;
  }

  /**
   * Runs `fn` for 0..count-1 with at most MAX_PENDING in flight, results in index order. When the execution fills
   * up, no lane starts more, the lanes finish what they started, then ExecutionFull is thrown.
   */
  async mapBounded<T>(count: number, fn: (i: number) => Promise<T>): Promise<T[]> {
    const results = new Array<T>(count);
    let next = 0;
    let full = false;
    const lane = async () => {
      while (next < count && !full) {
        const i = next++;
        try {
          results[i] = await fn(i);
        } catch (err) {
          if (!(err instanceof ExecutionFull)) throw err;
          full = true;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(MAX_PENDING, count) }, lane));
    if (full) throw new ExecutionFull();
    return results;
  }
}
