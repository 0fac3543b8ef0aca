/**
 * Float storage casts for writing checkpoints: the raw little-endian bytes of an F64, F32, F16 or
 * BF16 tensor as F32, F16 or BF16 bytes, rounded as torch's `tensor.to(dtype)` rounds them.
 *
 * - Widening (F16 / BF16 → F32) is exact.
 * - Narrowing rounds to nearest, ties to even. Magnitudes past the target's largest finite value
 *   become ±inf; values below half its smallest subnormal become ±0.
 * - NaN stays NaN: F16 gives sign | 0x7e00 (as c10::Half), BF16 gives 0x7fc0 (as c10::BFloat16).
 * - F64 is rounded to F32 first, then narrowed (torch converts double to half through float too).
 */
import { ClipkitError } from '../errors';
import { bf16ToF32, f16ToF32, LITTLE_ENDIAN, StorageDType } from './dtype';

/** The dtypes a cast can produce. */
export const CAST_TARGETS = ['F32', 'F16', 'BF16'] as const;
export type CastTarget = (typeof CAST_TARGETS)[number];

/** `bytes` (little-endian `from` values) as little-endian `to` values; the same array when from === to. */
export function castFloatBytes(bytes: Uint8Array, from: StorageDType, to: CastTarget, name = 'tensor'): Uint8Array {
  if (from === to) return bytes;
  const f32 = widenToF32(bytes, from, name);
  switch (to) {
    case 'F32':
      return leBytes(new Uint32Array(f32.buffer, f32.byteOffset, f32.length));
    case 'F16':
      return leBytes(narrow(f32, f32BitsToF16Bits));
    case 'BF16':
      return leBytes(narrow(f32, f32BitsToBf16Bits));
  }
}

/** float32 bits → binary16 bits, round to nearest even (see the file comment for inf and NaN). */
export function f32BitsToF16Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | (mant ? 0x7e00 : 0x7c00);
  const e = exp - 127 + 15; // the binary16 exponent field this value would have
  if (e >= 0x1f) return sign | 0x7c00;
  if (e >= 1) {
    // Normal: keep 10 of the 23 mantissa bits. A carry out of the mantissa bumps the exponent,
    // and out of exponent 30 gives 0x7c00 (inf), which is the correct rounding.
    const kept = (e << 10) | (mant >>> 13);
    return sign | roundHalfEven(kept, mant & 0x1fff, 0x1000);
  }
  // Subnormal result m·2^-24: the full significand (implicit 1 included) shifted right by 14 - e.
  const shift = 14 - e;
  if (shift > 24) return sign; // below 2^-25: rounds to zero
  const full = mant | 0x800000;
  return sign | roundHalfEven(full >>> shift, full & ((1 << shift) - 1), 1 << (shift - 1));
}

/** float32 bits → bfloat16 bits (the top half), round to nearest even; NaN → 0x7fc0. */
export function f32BitsToBf16Bits(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** `kept` plus one when the dropped bits `rest` are above half of `half * 2`, or exactly half and `kept` is odd. */
function roundHalfEven(kept: number, rest: number, half: number): number {
  return rest > half || (rest === half && (kept & 1) === 1) ? kept + 1 : kept;
}

function widenToF32(b: Uint8Array, from: StorageDType, name: string): Float32Array {
  switch (from) {
    case 'F32':
      return new Float32Array(words32(b).buffer);
    case 'F16':
      return f16ToF32(words16(b));
    case 'BF16':
      return bf16ToF32(words16(b));
    case 'F64': {
      const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
      const out = new Float32Array(b.byteLength / 8);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true); // Math.fround: nearest, ties to even
      return out;
    }
    default:
      throw new ClipkitError('E_DTYPE', `Cannot cast ${name} from ${from}: only F64, F32, F16 and BF16 tensors are floats`);
  }
}

function narrow(f32: Float32Array, toBits: (u: number) => number): Uint16Array {
  const bits = new Uint32Array(f32.buffer, f32.byteOffset, f32.length);
  const out = new Uint16Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = toBits(bits[i]);
  return out;
}

/** Little-endian 16-bit words of `b` in host order (a fresh array). */
function words16(b: Uint8Array): Uint16Array {
  const out = new Uint16Array(b.length / 2);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(b);
  else for (let i = 0; i < out.length; i++) out[i] = b[2 * i] | (b[2 * i + 1] << 8);
  return out;
}

/** Little-endian 32-bit words of `b` in host order (a fresh array). */
function words32(b: Uint8Array): Uint32Array {
  const out = new Uint32Array(b.length / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(b);
  else for (let i = 0; i < out.length; i++) out[i] = (b[4 * i] | (b[4 * i + 1] << 8) | (b[4 * i + 2] << 16) | (b[4 * i + 3] << 24)) >>> 0;
  return out;
}

/** Host-order words as little-endian bytes. */
function leBytes(words: Uint16Array | Uint32Array): Uint8Array {
  const bytes = new Uint8Array(words.buffer, words.byteOffset, words.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const out = new Uint8Array(bytes.length);
  const size = words.BYTES_PER_ELEMENT;
  for (let i = 0; i < bytes.length; i += size) for (let k = 0; k < size; k++) out[i + k] = bytes[i + size - 1 - k];
  return out;
}
