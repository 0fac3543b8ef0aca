/** float64 references for gemm / linear / matmul, with the epilogues and bf16 rounding. */
import { geluF64, quickGeluF64 } from './elementwise';

export type RefEpilogue = 'none' | 'gelu' | 'quick_gelu' | 'residual';

export interface GemmRefOptions {
  bias?: ArrayLike<number> | null; // [n]
  epilogue?: RefEpilogue;
  residual?: ArrayLike<number> | null; // [m, n]
  alpha?: number;
}

/**
 * y[i,j] = act(alpha·Σ_k x[i,k]·w[j,k] + bias[j]) (+ residual[i,j]) in float64; x [m,k], w [n,k].
 * Also returns scale[i,j] = |alpha|·Σ_k |x[i,k]·w[j,k]| + |bias[j]| + |residual[i,j]|, the size of the
 * terms summed, which bounds the rounding error of any summation order (|err| <= c·scale).
 */
export function gemmRefF64(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
  o: GemmRefOptions = {},
): { y: Float64Array; scale: Float64Array } {
  const alpha = o.alpha ?? 1, epi = o.epilogue ?? 'none';
  const y = new Float64Array(m * n), scale = new Float64Array(m * n);
  const xr = Float64Array.from(x), wr = Float64Array.from(w);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0, a = 0;
      const xo = i * k, wo = j * k;
      for (let t = 0; t < k; t++) {
        const p = xr[xo + t] * wr[wo + t];
        s += p;
        a += Math.abs(p);
      }
      let v = alpha * s, sc = Math.abs(alpha) * a;
      if (o.bias) (v += o.bias[j]), (sc += Math.abs(o.bias[j]));
      if (epi === 'gelu') v = geluF64(v);
      else if (epi === 'quick_gelu') v = quickGeluF64(v);
      else if (epi === 'residual') (v += o.residual![i * n + j]), (sc += Math.abs(o.residual![i * n + j]));
      y[i * n + j] = v;
      scale[i * n + j] = sc;
    }
  return { y, scale };
}

/** Rounds each value to the nearest bfloat16 (ties to even), returned as float32 values. */
export function roundBf16(a: Float32Array): Float32Array {
  const out = new Float32Array(a);
  const u = new Uint32Array(out.buffer);
  for (let i = 0; i < u.length; i++) {
    const b = u[i];
    u[i] = ((b + 0x7fff + ((b >>> 16) & 1)) & 0xffff0000) >>> 0;
  }
  return out;
}

/** The transpose of b [rows, cols]. */
export function transpose(b: ArrayLike<number>, rows: number, cols: number): Float32Array {
  const t = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = b[r * cols + c];
  return t;
}

/**
 * Asserts |got - want| <= tol·scale + rtol·|want| elementwise (tol relative to the summed terms, so
 * cancellation does not make the bound meaningless). Returns the largest |got - want| / scale seen.
 */
export function assertScaledClose(
  got: ArrayLike<number>,
  want: ArrayLike<number>,
  scale: ArrayLike<number>,
  tol: number,
  rtol: number,
  name: string,
): number {
  let worst = 0, nbad = 0;
  const bad: string[] = [];
  if (got.length !== want.length) throw new Error(`${name}: length ${got.length} != ${want.length}`);
  for (let i = 0; i < want.length; i++) {
    const d = Math.abs(got[i] - want[i]);
    const bound = tol * scale[i] + rtol * Math.abs(want[i]) + 1e-30;
    if (scale[i] > 0) worst = Math.max(worst, d / scale[i]);
    if (!(d <= bound)) {
      if (bad.length < 10) bad.push(`  [${i}] got ${got[i]} want ${want[i]} (diff ${d.toExponential(2)}, bound ${bound.toExponential(2)})`);
      nbad++;
    }
  }
  if (nbad) throw new Error(`${name}: ${nbad} of ${want.length} values off by more than ${tol}·scale + ${rtol}·|want|\n${bad.join('\n')}`);
  return worst;
}
