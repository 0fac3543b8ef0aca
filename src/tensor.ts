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

/** More axes than any tensor here has; a longer "shape" (new Array(2 ** 32 - 1)) is refused before it is walked. */
export const MAX_RANK = 16;

/**
 * A checked copy of a shape: an array of at most MAX_RANK non-negative safe integers whose product
 * is a safe integer. Returns [shape, product].
 */
export function checkShape(shape: unknown, name = 'shape'): [number[], number] {
  if (!Array.isArray(shape)) throw typeError('E_SHAPE', `Expected an array of dimensions for ${name} but received ${shape === null ? 'null' : typeof shape}`);
  if (shape.length > MAX_RANK) throw rangeError('E_SHAPE', `Expected at most ${MAX_RANK} dimensions for ${name} but received ${shape.length}`);
  const dims: number[] = [];
  let size = 1;
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      throw rangeError('E_SHAPE', `Expected ${name}[${i}] to be a non-negative integer but received ${typeof d === 'number' ? d : typeof d}`);
    size *= d;
    dims.push(d);
  }
  if (!Number.isSafeInteger(size)) throw rangeError('E_SHAPE', `The ${name} [${dims.join(', ')}] has more elements than can be counted`);
  return [dims, size];
}

export class Tensor<D extends DType = 'float32'> {
  readonly data: Storage<D>;
  readonly shape: readonly number[];
  readonly dtype: D;

  constructor(data: Storage<D>, shape: readonly number[], dtype: D = 'float32' as D) {
    const spec = storageOf[dtype];
    if (!spec) throw typeError('E_DTYPE', `Expected dtype float32, int32 or bfloat16 but received ${String(dtype)}`);
    if (!(data instanceof spec.ctor)) throw typeError('E_DTYPE', `Expected ${spec.name} storage for a ${dtype} tensor`);
    // Kernels run on other threads while JavaScript may write shared memory: not supported.
    if (typeof SharedArrayBuffer !== 'undefined' && data.buffer instanceof SharedArrayBuffer)
      throw typeError('E_ARG', `Expected ${spec.name} storage on an ArrayBuffer, not a SharedArrayBuffer`);
    const [dims, size] = checkShape(shape);
    if (size !== data.length)
      throw rangeError('E_SHAPE', `Expected storage of length ${size} for shape [${shape.join(', ')}] but received length ${data.length}`);
    this.data = data;
    this.shape = Object.freeze(dims);
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

/** New float32 storage of `size` elements, or E_LIMIT when the runtime cannot make one that long. */
function allocate(size: number, shape: readonly number[]): Float32Array {
  try {
    return new Float32Array(size);
  } catch (err) {
    throw rangeError('E_LIMIT', `Cannot allocate a float32 tensor of shape [${shape.join(', ')}] (${size} elements): ${(err as Error).message}`);
  }
}

export function zeros(shape: readonly number[]): Tensor<'float32'> {
  const [dims, size] = checkShape(shape);
  return new Tensor(allocate(size, dims), dims, 'float32');
}

export function fromArray(data: ArrayLike<number>, shape: readonly number[]): Tensor<'float32'> {
  const [dims, size] = checkShape(shape);
  if (data === null || typeof data !== 'object' || typeof (data as ArrayLike<number>).length !== 'number')
    throw typeError('E_ARG', `Expected an array of numbers for data but received ${data === null ? 'null' : typeof data}`);
  if (data.length !== size) throw rangeError('E_SHAPE', `Expected ${size} values for shape [${dims.join(', ')}] but received ${data.length}`);
  return new Tensor(Float32Array.from(data), dims, 'float32');
}
