import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { linear, packWeight, setThreads, Tensor } from '../../src';
import { isas, normal, onIsa, uniform } from '../helpers';
import { assertScaledClose, gemmRefF64, RefEpilogue, roundBf16 } from '../ref/gemm';
import { geluF64, quickGeluF64 } from '../ref/elementwise';

const Bf16 = suite('gemm_bf16');

// Two bounds, both relative to scale = |alpha|·Σ|x·w| + |bias| + |residual|:
//  - against the float64 product of the bf16-ROUNDED inputs: the fp32 accumulation only, 4·√k·2^-24
//    (the same bound as the fp32 GEMM);
//  - against the float64 product of the UNROUNDED inputs: each product x·w is off by at most
//    (1 + 2^-9)² - 1 ≈ 2^-8 relative, so |err| <= 2^-8·scale (+ the fp32 part); observed ~2^-11.
const tolRounded = (k: number) => 4 * Math.sqrt(Math.max(k, 1)) * 2 ** -24;
const TOL_UNROUNDED = 2 ** -8;

const CASES: [number, number, number, RefEpilogue][] = [
  [1, 1, 1, 'none'],
  [7, 17, 7, 'gelu'],
  [63, 7, 17, 'quick_gelu'],
  [197, 63, 63, 'residual'],
  [7, 769, 63, 'none'],
  [63, 17, 769, 'gelu'],
  [1, 63, 769, 'residual'],
  [197, 769, 17, 'quick_gelu'],
  [52, 2048, 512, 'quick_gelu'],
  // 10-row micro-panels on AVX-512: 50 = 5 × 10, 77 = 7 × 10 + 7; a 10-row panel alone.
  [50, 100, 769, 'gelu'],
  [77, 63, 197, 'residual'],
  [10, 33, 63, 'none'],
];

for (const [m, n, k, epilogue] of CASES)
  Bf16(`${m}x${k}->${n} ${epilogue}`, async () => {
    const seed = m * 131 + n * 17 + k;
    const x = normal(m * k, seed), w = normal(n * k, seed + 1, 1 / Math.sqrt(k)), bias = uniform(n, seed + 2);
    const residual = epilogue === 'residual' ? normal(m * n, seed + 3) : undefined;
    const alpha = m === 7 ? 0.37 : 1;
    const o = { bias, epilogue, residual, alpha };
    const rounded = gemmRefF64(roundBf16(x), roundBf16(w), m, n, k, o);
    const exact = gemmRefF64(x, w, m, n, k, o);
    const packed = await packWeight(new Tensor(w, [n, k]), { dtype: 'bfloat16' });
    assert.is(packed.dtype, 'bfloat16');
    for (const isa of isas)
      await onIsa(isa, async () => {
        const y = await linear(new Tensor(x, [m, k]), packed, {
          bias: new Tensor(bias, [n]),
          activation: epilogue === 'gelu' || epilogue === 'quick_gelu' ? epilogue : undefined,
          residual: residual && new Tensor(residual, [m, n]),
          alpha,
        });
        assertScaledClose(y.data, rounded.y, rounded.scale, tolRounded(k), 1e-6, `vs rounded inputs (${isa})`);
        assertScaledClose(y.data, exact.y, exact.scale, TOL_UNROUNDED, 1e-6, `vs unrounded inputs (${isa})`);
      });
  });

// inputActivation: act(x) is what gets rounded to bf16; against act(x)·Wᵀ in float64 from unrounded inputs.
for (const [m, n, k, act] of [[13, 33, 769, 'gelu'], [52, 64, 512, 'quick_gelu']] as const)
  Bf16(`inputActivation ${act}: ${m}x${k}->${n}`, async () => {
    const seed = m * 7 + n * 3 + k;
    const x = normal(m * k, seed, 2), w = normal(n * k, seed + 1, 1 / Math.sqrt(k)), bias = uniform(n, seed + 2);
    const exact = gemmRefF64(Float64Array.from(x, act === 'gelu' ? geluF64 : quickGeluF64), w, m, n, k, { bias });
    const packed = await packWeight(new Tensor(w, [n, k]), { dtype: 'bfloat16' });
    for (const isa of isas)
      await onIsa(isa, async () => {
        const y = await linear(new Tensor(x, [m, k]), packed, { bias: new Tensor(bias, [n]), inputActivation: act });
        assertScaledClose(y.data, exact.y, exact.scale, TOL_UNROUNDED, 1e-6, `vs unrounded inputs (${isa})`);
      });
  });

Bf16('inputs round to nearest bf16, ties to even', async () => {
  // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties to 1 (even). 1 + 3·2^-8 ties to 1 + 2^-6 (even).
  // 1 + 2^-8 + 2^-20 is just above halfway: rounds up to 1 + 2^-7.
  const x = new Float32Array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20]);
  const w = await packWeight(new Tensor(new Float32Array([1 + 2 ** -8]), [1, 1]), { dtype: 'bfloat16' });
  for (const isa of isas)
    await onIsa(isa, async () => {
      const y = await linear(new Tensor(x, [3, 1]), w);
      assert.equal(Array.from(y.data), [1, 1 + 2 ** -6, 1 + 2 ** -7], isa);
    });
});

// 197 rows: the threads split one M block's N tiles; 1003 rows: each thread takes its own rows.
for (const [m, n, k] of [[197, 63, 769], [1003, 40, 1100]] as const)
  Bf16(`1, 2 and 3 threads give bit-identical products on every ISA (AMX: each pool thread configures its own tiles): ${m}x${k}->${n}`, async () => {
    const x = new Tensor(normal(m * k, 11), [m, k]);
    const w = await packWeight(new Tensor(normal(n * k, 12, 1 / Math.sqrt(k)), [n, k]), { dtype: 'bfloat16' });
    const bias = new Tensor(uniform(n, 13), [n]);
    try {
      for (const isa of isas)
        await onIsa(isa, async () => {
          const runs: Float32Array[] = [];
          for (const t of [1, 2, 3]) {
            setThreads(t);
            runs.push((await linear(x, w, { bias, activation: 'gelu' })).data);
          }
          assert.ok(runs[0].some((v) => v !== 0), isa);
          assert.equal(Array.from(runs[1]), Array.from(runs[0]), `${isa}: 2 threads`);
          assert.equal(Array.from(runs[2]), Array.from(runs[0]), `${isa}: 3 threads`);
        });
    } finally {
      setThreads(0);
    }
  });

Bf16('packing rounds every weight to nearest bf16 (ties to even) under every ISA', async () => {
  // X = the identity reads the packed weight back exactly: y[r, c] = W[c, r], one product per output.
  // Odd k and a part-filled 16-column panel; ties, values just above and below a tie, -0, the top of
  // the fp32 range below bf16's overflow threshold, and random values.
  const n = 17, k = 35;
  const w = normal(n * k, 21, 3);
  const special = [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -8 - 2 ** -20, -0, 3.38e38, -1.5e-30, 65537, 0.1];
  special.forEach((v, i) => (w[i * 7 + (i % 3)] = v));
  const want = roundBf16(w);
  const eye = new Float32Array(k * k);
  for (let i = 0; i < k; i++) eye[i * k + i] = 1;
  for (const isa of isas)
    await onIsa(isa, async () => {
      const packed = await packWeight(new Tensor(w, [n, k]), { dtype: 'bfloat16' });
      const y = await linear(new Tensor(eye, [k, k]), packed);
      const got = new Float32Array(n * k);
      for (let r = 0; r < k; r++) for (let c = 0; c < n; c++) got[c * k + r] = y.data[r * n + c];
      assert.equal(Array.from(got, (v) => Object.is(v, -0) ? 0 : v), Array.from(want, (v) => Object.is(v, -0) ? 0 : v), isa);
    });
});

Bf16.run();
