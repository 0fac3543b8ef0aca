/** float64 reference: y = (s - mean)/sqrt(var + eps)·gamma + beta, s = x (+ residual). */
export function layerNormRefF64(
  x: ArrayLike<number>,
  gamma: ArrayLike<number>,
  beta: ArrayLike<number> | null,
  rows: number,
  dim: number,
  eps: number,
  residual?: ArrayLike<number>,
): { y: Float64Array; sum: Float64Array } {
  const y = new Float64Array(rows * dim), sum = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < dim; i++) {
      const s = x[r * dim + i] + (residual ? residual[r * dim + i] : 0);
      sum[r * dim + i] = s;
      mean += s;
    }
    mean /= dim;
    let v = 0;
    for (let i = 0; i < dim; i++) v += (sum[r * dim + i] - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = (sum[r * dim + i] - mean) * rstd * gamma[i] + (beta ? beta[i] : 0);
  }
  return { y, sum };
}
