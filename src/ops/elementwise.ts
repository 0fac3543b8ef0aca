/** Elementwise ops between the big kernels: GELU (erf form), QuickGELU, add with row broadcast. */
import { expectTensor } from '../check';
import { rangeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';

async function unary(op: 'gelu' | 'quick_gelu', x: Tensor): Promise<Tensor> {
  expectTensor('x', x, 'float32');
  const y = new Float32Array(x.size);
  await native().unary({ op, x: x.data, y });
  return new Tensor(y, x.shape);
}

/** x·Φ(x), Φ the standard normal CDF (PyTorch's default `gelu`, not the tanh approximation). */
export const gelu = (x: Tensor) => unary('gelu', x);
/** x·σ(1.702·x), OpenAI CLIP's activation. */
export const quickGelu = (x: Tensor) => unary('quick_gelu', x);

/** a + b, where b has a's shape or is a trailing slice of it (e.g. a bias [D] over [..., D]). */
export async function add(a: Tensor, b: Tensor): Promise<Tensor> {
  expectTensor('a', a, 'float32');
  expectTensor('b', b, 'float32');
  const tail = a.shape.slice(a.shape.length - b.shape.length);
  if (b.shape.length > a.shape.length || tail.some((d, i) => d !== b.shape[i]))
    throw rangeError('E_SHAPE', `Expected b of shape [${a.shape.join(', ')}] or a trailing part of it but received [${b.shape.join(', ')}]`);
  const y = new Float32Array(a.size);
  await native().add({ a: a.data, b: b.data, y });
  return new Tensor(y, a.shape);
}
