/** Products of two activations (logits, gradients): neither side is a pre-packed weight. */
import { expectFinite, expectShape, expectTensor, expectOptions, OptionKeys } from '../check';
import { rangeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';

export interface MatmulOptions {
  /** b is stored [N, K] and used transposed (a·bᵀ). */
  transposeB?: boolean;
  alpha?: number; // default 1
}

/** c[M, N] = alpha · a[M, K] · b[K, N]   (or a · bᵀ with b [N, K] when transposeB). */
export async function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Promise<Tensor> {
  expectOptions('matmul', opts, { transposeB: true, alpha: true } satisfies OptionKeys<MatmulOptions>);
  const [m, k] = expectShape('a', expectTensor('a', a, 'float32'), [-1, -1]);
  const transposeB = opts.transposeB ?? false;
  const bShape = expectShape('b', expectTensor('b', b, 'float32'), [-1, -1]);
  const kb = transposeB ? bShape[1] : bShape[0];
  const n = transposeB ? bShape[0] : bShape[1];
  if (kb !== k)
    throw rangeError(
      'E_SHAPE',
      `Expected b of shape [${transposeB ? `*, ${k}` : `${k}, *`}] (a is [${m}, ${k}]) but received [${bShape.join(', ')}]`,
    );
  const alpha = expectFinite('alpha', opts.alpha ?? 1);
  const c = new Float32Array(m * n);
  await native().matmul({ a: a.data, b: b.data, m, n, k, bIsNk: transposeB, c, alpha });
  return new Tensor(c, [m, n]);
}
