/** A sequence number as a fixed-width, zero-padded name part (`000042`), so names sort in number order. */
export function pad(n: number, width = 6): string {
  return String(n).padStart(width, '0');
}
