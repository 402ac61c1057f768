/** AdamW hyper-parameters; PyTorch's defaults but for the learning rate, which the schedule supplies per step. */
export interface AdamWConfig {
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
}

/** Global L2 norm of a gradient, accumulated in double precision in index order (deterministic). */
export function gradientNorm(grad: Float32Array): number {
  let sum = 0;
  for (let i = 0; i < grad.length; i++) sum += grad[i] * grad[i];
  return Math.sqrt(sum);
}

/** Scales the gradient in place so its global norm is at most `maxNorm` (PyTorch's clip_grad_norm_); returns the norm. */
export function clipGradientNorm(grad: Float32Array, maxNorm: number): number {
  const norm = gradientNorm(grad);
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (let i = 0; i < grad.length; i++) grad[i] *= scale;
  }
  return norm;
}

/**
 * One AdamW step (Loshchilov & Hutter: decay decoupled from the adaptive update) over a flat parameter vector.
 * `decay[i]` is 1 where weight decay applies (weights) and 0 where it does not (biases). `step` counts from 1.
 */
export function adamWStep(
  params: Float32Array,
  grad: Float32Array,
  m: Float32Array,
  v: Float32Array,
  decay: Uint8Array,
  step: number,
  lr: number,
  config: AdamWConfig,
): void {
  const [beta1, beta2] = config.betas;
  const correction1 = 1 - Math.pow(beta1, step);
  const correction2 = 1 - Math.pow(beta2, step);
  const shrink = 1 - lr * config.weightDecay;
  for (let i = 0; i < params.length; i++) {
    const g = grad[i];
    const mi = beta1 * m[i] + (1 - beta1) * g;
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const p = decay[i] ? params[i] * shrink : params[i];
    params[i] = p - (lr * (mi / correction1)) / (Math.sqrt(vi / correction2) + config.eps);
  }
}
