/**
 * Storage dtypes of checkpoint tensors, named as safetensors names them (`F32`, `BF16`, `I64`, ...),
 * and the bit-exact widening of F16 and BF16 to float32 that every reader (safetensors, torch) and
 * the casts of convert share. Widening keeps subnormals, ±inf and NaN payloads.
 */

/** Bytes per element of every dtype the safetensors format defines. */
export const ELEMENT_BYTES = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
} as const;
export type StorageDType = keyof typeof ELEMENT_BYTES;

/** The storage dtypes clipkit reads as float32. */
export const FLOAT_DTYPES = ['F32', 'F16', 'BF16'] as const;
export type FloatDType = (typeof FLOAT_DTYPES)[number];

/** Whether this host stores numbers little-endian, as every checkpoint format does. */
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Little-endian 16-bit words of `b`: a view when aligned on a little-endian host, else assembled. */
export function u16View(b: Uint8Array): Uint16Array {
  if (LITTLE_ENDIAN && b.byteOffset % 2 === 0) return new Uint16Array(b.buffer, b.byteOffset, b.length / 2);
  const out = new Uint16Array(b.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = b[2 * i] | (b[2 * i + 1] << 8);
  return out;
}

/** Little-endian float32 values of `b`, copied (for data not aligned to 4 bytes). */
export function copyF32(b: Uint8Array): Float32Array {
  const out = new Float32Array(b.length / 4);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) bits[i] = (b[4 * i] | (b[4 * i + 1] << 8) | (b[4 * i + 2] << 16) | (b[4 * i + 3] << 24)) >>> 0;
  return out;
}

/** BF16 is the top half of a float32: widening is a 16-bit shift of the bits. */
export function bf16ToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i] << 16;
  return out;
}

let f16Table: Uint32Array | undefined;

/** float32 bit pattern of every IEEE binary16 value (computed once, 256 KiB). */
function f16BitsTable(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) t[h] = f16ToF32Bits(h);
  return (f16Table = t);
}

/**
 * binary16 → binary32 bits, exact: normal numbers rebias the exponent (15 → 127); subnormals
 * (exponent 0, value m·2^-24) are normalised; exponent 31 is ±inf (m = 0) or NaN with its payload kept.
 */
export function f16ToF32Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >> 10) & 0x1f;
  let mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp - 15 + 127) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  let e = -14; // subnormal: shift the leading 1 into the implicit bit
  while ((mant & 0x400) === 0) {
    mant <<= 1;
    e--;
  }
  return (sign | ((e + 127) << 23) | ((mant & 0x3ff) << 13)) >>> 0;
}

/** binary16 words → float32 values, exactly (see f16ToF32Bits). */
export function f16ToF32(src: Uint16Array): Float32Array {
  const table = f16BitsTable();
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = table[src[i]];
  return out;
}
