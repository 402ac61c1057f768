/** Linear warm-up to the peak rate, then cosine decay to `minLrRatio` × peak at `totalSteps` (held after). */
export function learningRateAt(
  step: number,
  schedule: { lr: number; warmupSteps: number; totalSteps: number; minLrRatio: number },
): number {
  const { lr, warmupSteps, totalSteps, minLrRatio } = schedule;
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps;
  const progress = Math.min(1, (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps));
  const min = lr * minLrRatio;
  return min + 0.5 * (lr - min) * (1 + Math.cos(Math.PI * progress));
}
