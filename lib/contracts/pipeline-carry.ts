/** One page of the results a pipeline execution carries into the next: [key, result] pairs. */
export type CarryEntries = [string, unknown][];
