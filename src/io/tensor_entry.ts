/**
 * Tensor entries that any checkpoint reader can hand to the model loader: the SafetensorsTensor
 * interface (name, storage dtype, shape, raw little-endian bytes, float32 data) built from a
 * function that returns the bytes, plus the few lazy transforms that checkpoint layouts need
 * (a block of rows, a 2-d transpose, a strided gather, a new name or shape).
 *
 * Nothing is copied until it is used: bytes() of a row block is a subarray of its source; a
 * transpose or a gather is computed on the first bytes() and kept. data() decodes as the
 * safetensors reader does: aligned F32 is a Float32Array over the bytes (no copy), F16 and BF16 are
 * widened bit-exactly on first use, and every other dtype (F64, I64, ...) refuses with E_DTYPE;
 * their values stay readable through bytes().
 */
import { ClipkitError } from '../errors';
import { Tensor } from '../tensor';
import { bf16ToF32, copyF32, ELEMENT_BYTES, f16ToF32, FLOAT_DTYPES, LITTLE_ENDIAN, StorageDType, u16View } from './dtype';
import { SafetensorsTensor } from './safetensors';

/** One tensor of a checkpoint, whatever the file format. */
export type TensorEntry = SafetensorsTensor;

/** Product of a shape, or Infinity when it passes 2^53 (no real tensor is that large). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (d === 0) return 0;
    n *= d;
    if (n > Number.MAX_SAFE_INTEGER) return Infinity;
  }
  return n;
}

/**
 * An entry whose raw bytes come from `bytes` (called once, on first use, and kept). `source` names
 * the file in error messages. The byte length must be elementCount(shape) × element size.
 */
export function lazyTensorEntry(
  name: string,
  dtype: StorageDType,
  shape: readonly number[],
  bytes: () => Uint8Array,
  source: string,
): TensorEntry {
  const frozenShape = Object.freeze(shape.slice());
  const byteLength = elementCount(shape) * ELEMENT_BYTES[dtype];
  let raw: Uint8Array | undefined;
  const getBytes = (): Uint8Array => {
    if (raw) return raw;
    const b = bytes();
    if (b.length !== byteLength)
      throw new ClipkitError('E_FORMAT', `Tensor ${JSON.stringify(name)} in ${source}: expected ${byteLength} bytes for ${dtype} [${shape.join(', ')}] but found ${b.length}`);
    return (raw = b);
  };
  let decoded: Float32Array | undefined;
  const data = (): Float32Array => (decoded ??= decodeFloat32(name, dtype, getBytes(), source));
  return {
    name,
    dtype,
    shape: frozenShape,
    byteLength,
    bytes: getBytes,
    data,
    tensor: () => new Tensor(data(), frozenShape, 'float32'),
  };
}

/** float32 values of raw little-endian bytes: a view for aligned F32, else a widened copy. */
function decodeFloat32(name: string, dtype: StorageDType, b: Uint8Array, source: string): Float32Array {
  switch (dtype) {
    case 'F32':
      return LITTLE_ENDIAN && b.byteOffset % 4 === 0 ? new Float32Array(b.buffer, b.byteOffset, b.length / 4) : copyF32(b);
    case 'F16':
      return f16ToF32(u16View(b));
    case 'BF16':
      return bf16ToF32(u16View(b));
    default:
      throw new ClipkitError(
        'E_DTYPE',
        `Tensor ${JSON.stringify(name)} in ${source} has dtype ${dtype}; clipkit reads only ${FLOAT_DTYPES.join(', ')} tensors as float32 (bytes() gives the raw values)`,
      );
  }
}

/**
 * Gathers a strided view into contiguous row-major bytes: element (i0, i1, ...) of the result is
 * element `offset + Σ ik·strides[k]` of `src` (offset and strides in elements). The caller has
 * checked that every index lies inside `src`.
 */
export function gatherStrided(src: Uint8Array, elemBytes: number, offset: number, shape: readonly number[], strides: readonly number[]): Uint8Array {
  const count = elementCount(shape);
  const out = new Uint8Array(count * elemBytes);
  if (count === 0) return out;
  const rank = shape.length;
  if (rank === 0) {
    out.set(src.subarray(offset * elemBytes, (offset + 1) * elemBytes));
    return out;
  }
  const inner = shape[rank - 1], innerStride = strides[rank - 1] * elemBytes;
  const index = new Array<number>(rank - 1).fill(0); // odometer over the outer dimensions
  let o = 0;
  for (let row = 0, rows = count / inner; row < rows; row++) {
    let s = offset;
    for (let k = 0; k < rank - 1; k++) s += index[k] * strides[k];
    s *= elemBytes;
    for (let j = 0; j < inner; j++, s += innerStride) for (let b = 0; b < elemBytes; b++) out[o++] = src[s + b];
    for (let k = rank - 2; k >= 0; k--) {
      if (++index[k] < shape[k]) break;
      index[k] = 0;
    }
  }
  return out;
}

/** Names the origin of a derived entry in error messages. */
const derivedFrom = (entry: TensorEntry, source: string) => `${source || 'checkpoint'} (from ${JSON.stringify(entry.name)})`;

/**
 * The same values under another name and/or shape (same element count). With the same shape the
 * result shares the entry's decoded data; with another shape it is a new view of the same bytes.
 */
export function viewAs(entry: TensorEntry, name: string, shape: readonly number[] = entry.shape, source = ''): TensorEntry {
  if (elementCount(shape) !== elementCount(entry.shape))
    throw new ClipkitError('E_SHAPE', `Cannot view ${JSON.stringify(entry.name)} [${entry.shape.join(', ')}] as [${shape.join(', ')}]${source && ` in ${source}`}`);
  if (shape.length === entry.shape.length && shape.every((d, i) => d === entry.shape[i]))
    return {
      name,
      dtype: entry.dtype,
      shape: entry.shape,
      byteLength: entry.byteLength,
      bytes: () => entry.bytes(),
      data: () => entry.data(),
      tensor: () => entry.tensor(),
    };
  return lazyTensorEntry(name, entry.dtype, shape, () => entry.bytes(), derivedFrom(entry, source));
}

/** Rows [start, start + count) of a tensor of rank >= 1: a subarray of its bytes, no copy. */
export function rowBlock(entry: TensorEntry, start: number, count: number, name: string, source = ''): TensorEntry {
  const [rows, ...rest] = entry.shape;
  if (rows === undefined || start < 0 || count < 0 || start + count > rows)
    throw new ClipkitError('E_SHAPE', `Cannot take rows [${start}, ${start + count}) of ${JSON.stringify(entry.name)} [${entry.shape.join(', ')}]${source && ` in ${source}`}`);
  const rowBytes = elementCount(rest) * ELEMENT_BYTES[entry.dtype];
  return lazyTensorEntry(name, entry.dtype, [count, ...rest], () => entry.bytes().subarray(start * rowBytes, (start + count) * rowBytes), derivedFrom(entry, source));
}

/** The transpose of a 2-d tensor [r, c] -> [c, r], computed on first use. */
export function transposed(entry: TensorEntry, name: string, source = ''): TensorEntry {
  if (entry.shape.length !== 2)
    throw new ClipkitError('E_SHAPE', `Expected a 2-d tensor to transpose for ${JSON.stringify(entry.name)} but its shape is [${entry.shape.join(', ')}]${source && ` in ${source}`}`);
  const [r, c] = entry.shape;
  return lazyTensorEntry(name, entry.dtype, [c, r], () => gatherStrided(entry.bytes(), ELEMENT_BYTES[entry.dtype], 0, [c, r], [1, c]), derivedFrom(entry, source));
}

/** A float32 entry holding `values` (for a parameter a layout defines instead of storing). */
export function constantF32(name: string, shape: readonly number[], values: readonly number[]): TensorEntry {
  const f = Float32Array.from(values);
  return lazyTensorEntry(name, 'F32', shape, () => new Uint8Array(f.buffer), name);
}
