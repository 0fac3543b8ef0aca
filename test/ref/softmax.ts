/** float64 reference: softmax over each row of x [rows, dim] of scale·x; a row all -Infinity stays 0. */
export function softmaxRefF64(x: ArrayLike<number>, rows: number, dim: number, scale = 1): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let i = 0; i < dim; i++) m = Math.max(m, scale * x[r * dim + i]);
    if (m === -Infinity) continue;
    let s = 0;
    for (let i = 0; i < dim; i++) s += y[r * dim + i] = Math.exp(scale * x[r * dim + i] - m);
    for (let i = 0; i < dim; i++) y[r * dim + i] /= s;
  }
  return y;
}
