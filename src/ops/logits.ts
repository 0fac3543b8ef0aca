/** Normalised matmul logits (CLIP's image–text similarity). */
import { expectPositive, expectShape, expectTensor } from '../check';
import { rangeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';

/**
 * scale · Â·B̂ᵀ, where Â and B̂ are the rows of a and b divided by their L2 norms (a zero row gives
 * zeros, never NaN). `scale` is the multiplier (CLIP: exp(logit_scale) ≈ 100), > 0.
 * a: [n, d], b: [m, d] → [n, m].
 */
export async function logits(a: Tensor, b: Tensor, scale: number): Promise<Tensor> {
  const [n, d] = expectMatrix('a', a);
  const [m] = expectShape('b', expectTensor('b', b, 'float32'), [-1, d]);
  const s = expectScale('scale', scale);
  const out = new Float32Array(n * m);
  await native().logits({ a: a.data, b: b.data, out, n, m, dim: d, scale: s });
  return new Tensor(out, [n, m]);
}

export function expectMatrix(name: string, t: Tensor): readonly number[] {
  expectTensor(name, t, 'float32');
  if (t.rank !== 2) throw rangeError('E_SHAPE', `Expected ${name} of shape [rows, dim] but received [${t.shape.join(', ')}]`);
  return t.shape;
}

/** A positive, finite multiplier that stays positive and finite in float32. */
export function expectScale(name: string, v: unknown): number {
  const s = expectPositive(name, v);
  const f = Math.fround(s);
  if (!(f > 0) || !Number.isFinite(f))
    throw rangeError('E_ARG', `Expected ${name} to be a positive float32 (between 1.4e-45 and 3.4e38) but received ${s}`);
  return s;
}
