/** Row-wise L2 normalisation. */
import { expectRankAtLeast, expectTensor, rowsOf } from '../check';
import { native } from '../native';
import { Tensor } from '../tensor';

/** x / ‖x‖₂ over the last axis; a zero row stays zero (never NaN). */
export async function l2Normalize(x: Tensor): Promise<Tensor> {
  expectTensor('x', x, 'float32');
  expectRankAtLeast('x', x, 1);
  const y = new Float32Array(x.size);
  await native().l2Normalize({ x: x.data, y, rows: rowsOf(x.shape), dim: x.shape[x.shape.length - 1] });
  return new Tensor(y, x.shape);
}
