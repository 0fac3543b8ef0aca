/** float64 reference: rows of x [rows, d] divided by their L2 norms (a zero row stays zero). */
export function normalizeRowsF64(x: ArrayLike<number>, rows: number, d: number): { hat: Float64Array; norm: Float64Array } {
  const hat = new Float64Array(rows * d), norm = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let c = 0; c < d; c++) s += x[r * d + c] ** 2;
    norm[r] = Math.sqrt(s);
    const inv = norm[r] > 0 ? 1 / norm[r] : 0;
    for (let c = 0; c < d; c++) hat[r * d + c] = x[r * d + c] * inv;
  }
  return { hat, norm };
}

/** float64 reference: scale · Â·B̂ᵀ, a: [n, d], b: [m, d] → [n, m]. */
export function logitsRefF64(a: ArrayLike<number>, b: ArrayLike<number>, n: number, m: number, d: number, scale: number): Float64Array {
  const ah = normalizeRowsF64(a, n, d).hat, bh = normalizeRowsF64(b, m, d).hat;
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++)
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let c = 0; c < d; c++) s += ah[i * d + c] * bh[j * d + c];
      out[i * m + j] = scale * s;
    }
  return out;
}
