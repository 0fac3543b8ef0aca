/**
 * float_cast: round to nearest even at every boundary (ties, subnormals, overflow), NaN and inf as
 * torch writes them, every binary16 / bfloat16 value surviving a round trip through float32, and
 * castFloatBytes between storage dtypes.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { castFloatBytes, f32BitsToBf16Bits, f32BitsToF16Bits } from '../../src/io/float_cast';
import { f16ToF32Bits } from '../../src/io/dtype';

const test = suite('float_cast');

const bitsOf = (x: number) => new Uint32Array(Float32Array.of(x).buffer)[0];
const hex = (n: number) => '0x' + n.toString(16);

test('f32 → f16: exact values, ties to even, subnormals, overflow, inf and NaN', () => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [65504, 0x7bff], // largest finite
    [65519.99609375, 0x7bff], // just below the tie with 65536
    [65520, 0x7c00], // the tie: 0x7bff is odd, so it rounds up to inf
    [1e5, 0x7c00],
    [1 + 2 ** -11, 0x3c00], // tie between 0x3c00 and 0x3c01: even
    [1 + 3 * 2 ** -11, 0x3c02], // tie between 0x3c01 and 0x3c02: even
    [1 + 2 ** -11 + 2 ** -23, 0x3c01], // just above the tie
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // tie between 0 and the smallest subnormal: even
    [2 ** -25 + 2 ** -40, 0x0001],
    [3 * 2 ** -25, 0x0002], // tie between 1 and 2 subnormal steps
    [1023 * 2 ** -24, 0x03ff], // largest subnormal
    [1023.5 * 2 ** -24, 0x0400], // tie with the smallest normal: even
    [2 ** -14, 0x0400],
    [1e-10, 0x0000],
    [-1e-10, 0x8000],
    [-0, 0x8000],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];
  for (const [x, want] of cases) assert.is(hex(f32BitsToF16Bits(bitsOf(x))), hex(want), `f16(${x})`);
  assert.is(hex(f32BitsToF16Bits(0x7fc00000)), '0x7e00', 'NaN');
  assert.is(hex(f32BitsToF16Bits(0xffc00001)), '0xfe00', '-NaN keeps its sign');
  assert.is(hex(f32BitsToF16Bits(0x00000001)), '0x0', 'float32 subnormal');
});

test('f32 → bf16: ties to even, overflow to inf, NaN → 0x7fc0', () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [1 + 2 ** -8, 0x3f80], // tie: even
    [1 + 3 * 2 ** -8, 0x3f82], // tie: even
    [1 + 2 ** -8 + 2 ** -20, 0x3f81],
    [-3.5, 0xc060],
    [Infinity, 0x7f80],
    [-Infinity, 0xff80],
  ];
  for (const [x, want] of cases) assert.is(hex(f32BitsToBf16Bits(bitsOf(x))), hex(want), `bf16(${x})`);
  assert.is(hex(f32BitsToBf16Bits(0x7f7fffff)), '0x7f80', 'largest float rounds to inf');
  assert.is(hex(f32BitsToBf16Bits(0xff800001)), '0x7fc0', 'NaN');
});

test('every f16 and bf16 value survives f32 and back', () => {
  for (let h = 0; h < 65536; h++) {
    const nanF16 = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    const back = f32BitsToF16Bits(f16ToF32Bits(h));
    if (back !== (nanF16 ? (h & 0x8000) | 0x7e00 : h)) assert.unreachable(`f16 ${hex(h)} came back as ${hex(back)}`);
    const nanBf16 = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    const backBf = f32BitsToBf16Bits((h << 16) >>> 0);
    if (backBf !== (nanBf16 ? 0x7fc0 : h)) assert.unreachable(`bf16 ${hex(h)} came back as ${hex(backBf)}`);
  }
});

test('castFloatBytes between storage dtypes', () => {
  const f64 = new Uint8Array(Float64Array.of(1 / 3, 1e300, -2.5, 2 ** -30).buffer);
  assert.equal(new Float32Array(castFloatBytes(f64, 'F64', 'F32').slice().buffer), Float32Array.of(1 / 3, Infinity, -2.5, 2 ** -30));
  assert.equal(new Uint16Array(castFloatBytes(f64, 'F64', 'F16').slice().buffer), Uint16Array.of(0x3555, 0x7c00, 0xc100, 0x0000));
  assert.equal(new Uint16Array(castFloatBytes(f64, 'F64', 'BF16').slice().buffer), Uint16Array.of(0x3eab, 0x7f80, 0xc020, 0x3080));

  const bf16 = new Uint8Array(Uint16Array.of(0x3f80, 0xc020, 0x0001).buffer);
  assert.equal(new Float32Array(castFloatBytes(bf16, 'BF16', 'F32').slice().buffer), Float32Array.of(1, -2.5, 2 ** -133));
  assert.equal(new Uint16Array(castFloatBytes(bf16, 'BF16', 'F16').slice().buffer), Uint16Array.of(0x3c00, 0xc100, 0x0000));
  assert.ok(castFloatBytes(bf16, 'BF16', 'BF16') === bf16, 'same dtype: the same bytes');

  const odd = new Uint8Array(9).subarray(1); // unaligned F32 input
  odd.set(new Uint8Array(Float32Array.of(0.1, -0.0).buffer));
  assert.equal(new Uint16Array(castFloatBytes(odd, 'F32', 'F16').slice().buffer), Uint16Array.of(0x2e66, 0x8000));
  assert.throws(() => castFloatBytes(new Uint8Array(8), 'I64', 'F32', 'position_ids'), /Cannot cast position_ids from I64/);
});

test.run();
