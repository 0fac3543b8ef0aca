/** Softmax over the last axis. */
import { expectFinite, expectRankAtLeast, expectTensor, rowsOf, expectOptions } from '../check';
import { native } from '../native';
import { Tensor } from '../tensor';

/** softmax(scale·x) over the last axis; -Infinity entries get exactly 0, an all -Infinity row gives zeros. */
export async function softmax(x: Tensor, opts: { scale?: number } = {}): Promise<Tensor> {
  expectOptions('softmax', opts, { scale: true });
  expectTensor('x', x, 'float32');
  expectRankAtLeast('x', x, 1);
  const scale = expectFinite('scale', opts.scale ?? 1);
  const y = new Float32Array(x.size);
  await native().softmax({ x: x.data, y, rows: rowsOf(x.shape), dim: x.shape[x.shape.length - 1], scale });
  return new Tensor(y, x.shape);
}
