/** Layer norm over the last axis, optionally fused with the residual add before it. */
import { expectFinite, expectShape, expectTensor, rowsOf, expectRankAtLeast, overlaps, expectOptions } from '../check';
import { rangeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';

export interface LayerNormOptions {
  eps?: number; // default 1e-5
  /** Added to x before the norm; the sum is returned as well (the residual stream). */
  residual?: Tensor;
}

/**
 * y = (x - mean) / sqrt(var + eps) * gamma + beta over the last axis.        x: [..., D]
 * `out` (same shape as x, not sharing storage with it) receives y instead of a new tensor.
 */
const LAYER_NORM_OPTIONS = { eps: true, residual: true, out: true } as const;

export async function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor | null, opts?: { eps?: number; out?: Tensor }): Promise<Tensor>;
/** With a residual: s = x + residual, returns { sum: s, y: layerNorm(s) }. */
export async function layerNorm(
  x: Tensor,
  gamma: Tensor,
  beta: Tensor | null,
  opts: LayerNormOptions & { residual: Tensor },
): Promise<{ sum: Tensor; y: Tensor }>;
export async function layerNorm(x: Tensor, gamma: Tensor, beta: Tensor | null, opts: LayerNormOptions & { out?: Tensor } = {}) {
  expectOptions('layerNorm', opts, LAYER_NORM_OPTIONS);
  expectTensor('x', x, 'float32');
  expectRankAtLeast('x', x, 1);
  const dim = x.shape[x.shape.length - 1];
  const rows = rowsOf(x.shape);
  expectShape('gamma', expectTensor('gamma', gamma, 'float32'), [dim]);
  if (beta !== null && beta !== undefined) expectShape('beta', expectTensor('beta', beta, 'float32'), [dim]);
  const eps = expectFinite('eps', opts.eps ?? 1e-5);
  const residual = opts.residual;
  if (residual !== undefined) expectShape('residual', expectTensor('residual', residual, 'float32'), x.shape);
  const out = opts.out;
  if (out !== undefined) {
    if (residual) throw rangeError('E_ARG', 'Expected either out or residual but received both');
    expectShape('out', expectTensor('out', out, 'float32'), x.shape);
    if (overlaps(out.data, x.data)) throw rangeError('E_ARG', 'Expected out not to share storage with x');
  }
  const y = out ? out.data : new Float32Array(x.size);
  const sum = residual ? new Float32Array(x.size) : undefined;
  await native().layerNorm({ x: x.data, residual: residual?.data, gamma: gamma.data, beta: beta?.data, y, sum, rows, dim, eps });
  const yt = out ?? new Tensor(y, x.shape);
  return sum ? { sum: new Tensor(sum, x.shape), y: yt } : yt;
}
