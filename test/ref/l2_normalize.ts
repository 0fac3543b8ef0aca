/** float64 reference: each row of x [rows, dim] divided by its L2 norm; a zero row stays 0. */
export function l2NormalizeRefF64(x: ArrayLike<number>, rows: number, dim: number): Float64Array {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let q = 0;
    for (let i = 0; i < dim; i++) q += x[r * dim + i] ** 2;
    const n = Math.sqrt(q);
    for (let i = 0; i < dim; i++) y[r * dim + i] = n > 0 ? x[r * dim + i] / n : 0;
  }
  return y;
}
