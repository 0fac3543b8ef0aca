/**
 * Linear layers on packed weights: y = alpha·x·Wᵀ (+ bias) then GELU / QuickGELU, or + residual.
 * A weight [N, K] is packed once (at model load) into the micro-kernel's panels, in fp32 or in bf16
 * (the opt-in fast mode: weights and activations rounded to bf16, products accumulated in fp32).
 */
import { expectFinite, expectOneOf, expectRankAtLeast, expectShape, expectTensor, describe, rowsOf, overlaps } from '../check';
import { rangeError, typeError } from '../errors';
import { native, PackedHandle } from '../native';
import { Tensor } from '../tensor';

export type WeightDType = 'float32' | 'bfloat16';

/** A weight [n, k] packed in native memory for `linear`. Freed when garbage-collected. */
export class PackedWeight {
  /** @internal */
  constructor(
    readonly handle: PackedHandle,
    readonly n: number, // output features
    readonly k: number, // input features
    readonly dtype: WeightDType,
  ) {}
}

/** Packs w [N, K] (row-major, like a PyTorch nn.Linear weight) for `linear`. */
export async function packWeight(w: Tensor, opts: { dtype?: WeightDType } = {}): Promise<PackedWeight> {
  expectTensor('w', w, 'float32');
  const [n, k] = expectShape('w', w, [-1, -1]);
  const dtype = expectOneOf('dtype', opts.dtype ?? 'float32', ['float32', 'bfloat16'] as const);
  const handle = (await native().packWeight({ w: w.data, n, k, dtype })) as PackedHandle;
  return new PackedWeight(handle, n, k, dtype);
}

export type Activation = 'gelu' | 'quick_gelu';

export interface LinearOptions {
  bias?: Tensor; // [N]
  /** Applied after the bias: GELU (erf form) or QuickGELU x·σ(1.702x). Not with `residual`. */
  activation?: Activation;
  /** Added after the bias: y = alpha·x·Wᵀ + bias + residual. Shape [..., N]. */
  residual?: Tensor;
  alpha?: number; // scales x·Wᵀ only; default 1
  /** Writes the result here instead of a new tensor; may be `residual` itself (in-place residual add). */
  out?: Tensor;
}

/** y[..., N] = activation(alpha · x[..., K] · Wᵀ + bias) (+ residual). */
export async function linear(x: Tensor, w: PackedWeight, opts: LinearOptions = {}): Promise<Tensor> {
  expectTensor('x', x, 'float32');
  expectRankAtLeast('x', x, 1);
  expectPacked('w', w);
  const k = x.shape[x.shape.length - 1];
  if (k !== w.k)
    throw rangeError('E_SHAPE', `Expected x with last dimension ${w.k} (the weight's K) but received [${x.shape.join(', ')}]`);
  const m = rowsOf(x.shape);
  const yShape = [...x.shape.slice(0, -1), w.n];
  if (opts.bias !== undefined) expectShape('bias', expectTensor('bias', opts.bias, 'float32'), [w.n]);
  const alpha = expectFinite('alpha', opts.alpha ?? 1);
  const activation = opts.activation === undefined ? undefined : expectOneOf('activation', opts.activation, ['gelu', 'quick_gelu'] as const);
  const residual = opts.residual;
  if (residual !== undefined) {
    expectShape('residual', expectTensor('residual', residual, 'float32'), yShape);
    if (activation) throw rangeError('E_ARG', `Expected either activation or residual but received both (activation ${activation})`);
  }
  let y: Float32Array;
  if (opts.out !== undefined) {
    expectShape('out', expectTensor('out', opts.out, 'float32'), yShape);
    y = opts.out.data;
    if (overlaps(y, x.data)) throw rangeError('E_ARG', 'Expected out not to share storage with x');
    if (residual && residual.data !== y && overlaps(y, residual.data))
      throw rangeError('E_ARG', 'Expected out to be residual itself or not to share storage with it');
  } else {
    y = new Float32Array(m * w.n);
  }
  const epilogue = residual ? 'residual' : (activation ?? 'none');
  await native().gemm({ x: x.data, m, k, w: w.handle, bias: opts.bias?.data, epilogue, residual: residual?.data, y, alpha });
  return opts.out ?? new Tensor(y, yShape);
}

function expectPacked(name: string, w: unknown): asserts w is PackedWeight {
  if (!(w instanceof PackedWeight))
    throw typeError('E_ARG', `Expected a PackedWeight (from packWeight) for ${name} but received ${describe(w)}`);
}

/** @internal */
export function checkPacked(name: string, w: unknown): PackedWeight {
  expectPacked(name, w);
  return w;
}
