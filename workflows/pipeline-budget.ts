/** At most this many stage activities pending at once: far below Temporal's 2,000, kind to small clusters. */
export const MAX_PENDING = 8;

/**
 * Activities one pipeline execution starts before it continues as new, unless Temporal suggests it sooner: each
 * costs about six history events, so an execution stays far below the 51,200-event limit.
 */
export const DEFAULT_ACTIVITIES_PER_EXECUTION = 2000;

/**
 * What a pipeline execution hands the next when it continues as new: the results themselves go through warm://
 * in pages (a workflow input, like any payload, is limited to a few MB; thousands of results are more).
 */
export interface PipelineCarry {
  /** The execution this carry starts (2 for the first continued one). */
  execution: number;
  /** Pages of results saved for it. */
  pages: number;
}

/** One page of carried results: [key, result] pairs, at most about CARRY_PAGE_BYTES of JSON. */
export type CarryEntries = [string, unknown][];

/** Well under the payload limits (2 MB by default) for the save activity's input and the load activity's result. */
export const CARRY_PAGE_BYTES = 512 * 1024;

/** How a budget saves and loads its pages: activities of the pipeline, on its run folder. */
export interface CarryStore {
  save(execution: number, page: number, entries: CarryEntries): Promise<void>;
  load(execution: number, page: number): Promise<CarryEntries>;
}

/** The dataPipeline workflow's second argument: neither needed nor shown in the UI form. */
export interface PipelineOptions {
  /** Continue as new after this many activities (default 2,000, or sooner when Temporal suggests it). */
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

  constructor(
    private readonly options: PipelineOptions,
    private readonly suggested: () => boolean,
  ) {
    const limit = options.maxActivitiesPerExecution ?? DEFAULT_ACTIVITIES_PER_EXECUTION;
    this.limit = Number.isInteger(limit) && limit >= 1 ? limit : DEFAULT_ACTIVITIES_PER_EXECUTION;
  }

  storeWith(store: CarryStore): void {
    this.store = store;
  }

  /** Reads back the results earlier executions carried (nothing on the first). */
  async restore(): Promise<void> {
    const carry = this.options.carry;
    if (!carry) return;
    for (let page = 0; page < carry.pages; page++) {
      for (const [key, result] of await this.requireStore().load(carry.execution, page)) this.results[key] = result;
    }
  }

  /** Saves every result so far in pages and returns the next execution's carry. */
  async persist(): Promise<PipelineCarry> {
    const execution = (this.options.carry?.execution ?? 1) + 1;
    const pages: CarryEntries[] = [[]];
    let bytes = 0;
    for (const entry of Object.entries(this.results)) {
      const size = JSON.stringify(entry).length;
      if (bytes > 0 && bytes + size > CARRY_PAGE_BYTES) {
        pages.push([]);
        bytes = 0;
      }
      pages[pages.length - 1].push(entry);
      bytes += size;
    }
    for (let page = 0; page < pages.length; page++) await this.requireStore().save(execution, page, pages[page]);
    return { execution, pages: pages.length };
  }

  private requireStore(): CarryStore {
    if (!this.store) throw new Error('ExecutionBudget: storeWith() was not called');
    return this.store;
  }

  async once<T>(key: string, call: () => Promise<T>): Promise<T> {
    if (Object.prototype.hasOwnProperty.call(this.results, key)) return this.results[key] as T;
    if (this.started > 0 && (this.started >= this.limit || this.suggested())) throw new ExecutionFull();
    this.started += 1;
    const result = await call();
    // Stored as JSON will carry it: an activity that returned nothing is remembered as null.
    this.results[key] = result === undefined ? null : result;
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
