/** A rule a document broke: a stable dotted name ('gopher_quality.min_words') and the numbers behind it. */
export interface Violation {
  rule: string;
  detail: string;
}

/** `12.3%` style, enough digits to see a value sitting on a threshold. */
export function percent(value: number): string {
  return `${(value * 100).toFixed(2)}%`;
}
