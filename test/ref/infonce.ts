/**
 * float64 reference of the symmetric softmax-InfoNCE loss over square logits [n, n] (targets on the
 * diagonal): ½ (mean over rows + mean over columns) of logsumexp − target logit.
 */
import { logitsRefF64 } from './logits';

export function infonceLossRefF64(x: ArrayLike<number>, n: number): number {
  let total = 0;
  for (let i = 0; i < n; i++) {
    let mr = -Infinity, mc = -Infinity;
    for (let j = 0; j < n; j++) (mr = Math.max(mr, x[i * n + j])), (mc = Math.max(mc, x[j * n + i]));
    let sr = 0, sc = 0;
    for (let j = 0; j < n; j++) (sr += Math.exp(x[i * n + j] - mr)), (sc += Math.exp(x[j * n + i] - mc));
    total += mr + Math.log(sr) - x[i * n + i] + (mc + Math.log(sc) - x[i * n + i]);
  }
  return total / (2 * n);
}

/** The loss from embeddings: logits = scale · Â·B̂ᵀ. */
export function infonceRefF64(a: ArrayLike<number>, b: ArrayLike<number>, n: number, d: number, scale: number): number {
  return infonceLossRefF64(logitsRefF64(a, b, n, n, d, scale), n);
}

/** Central finite difference of f at x[i] (x is copied to float64 and perturbed by ±h). */
export function centralDiff(f: (x: Float64Array) => number, x: ArrayLike<number>, i: number, h: number): number {
  const y = Float64Array.from(x as ArrayLike<number>);
  y[i] = x[i] + h;
  const up = f(y);
  y[i] = x[i] - h;
  const down = f(y);
  return (up - down) / (2 * h);
}
