/**
 * A small tensor: a typed array, a shape and a dtype. Row-major and contiguous; the shape's product
 * equals the storage length. Kernels read and write the storage directly (no copies).
 */
import { rangeError, typeError } from './errors';

export type DType = 'float32' | 'int32' | 'bfloat16';
type Storage<D extends DType> = D extends 'float32' ? Float32Array : D extends 'int32' ? Int32Array : Uint16Array;

const storageOf: Record<DType, { ctor: new (n: number) => Float32Array | Int32Array | Uint16Array; name: string }> = {
  float32: { ctor: Float32Array, name: 'Float32Array' },
  int32: { ctor: Int32Array, name: 'Int32Array' },
  bfloat16: { ctor: Uint16Array, name: 'Uint16Array' },
};

export class Tensor<D extends DType = 'float32'> {
  readonly data: Storage<D>;
  readonly shape: readonly number[];
  readonly dtype: D;

  constructor(data: Storage<D>, shape: readonly number[], dtype: D = 'float32' as D) {
    const spec = storageOf[dtype];
    if (!spec) throw typeError('E_DTYPE', `Expected dtype float32, int32 or bfloat16 but received ${String(dtype)}`);
    if (!(data instanceof spec.ctor)) throw typeError('E_DTYPE', `Expected ${spec.name} storage for a ${dtype} tensor`);
    for (const [i, d] of shape.entries())
      if (!Number.isSafeInteger(d) || d < 0) throw rangeError('E_SHAPE', `Expected shape[${i}] to be a non-negative integer but received ${d}`);
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length)
      throw rangeError('E_SHAPE', `Expected storage of length ${size} for shape [${shape.join(', ')}] but received length ${data.length}`);
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
  }

  get size(): number {
    return this.data.length;
  }
  get rank(): number {
    return this.shape.length;
  }
  /** Same storage, new shape (same number of elements). */
  reshape(shape: readonly number[]): Tensor<D> {
    return new Tensor(this.data, shape, this.dtype);
  }
}

export function zeros(shape: readonly number[]): Tensor<'float32'> {
  return new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, 'float32');
}

export function fromArray(data: ArrayLike<number>, shape: readonly number[]): Tensor<'float32'> {
  return new Tensor(Float32Array.from(data), shape, 'float32');
}
