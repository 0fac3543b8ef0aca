import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { linear, matmul, packWeight, packWeightParts, PackedWeight, setThreads, Tensor } from '../../src';
import { native } from '../../src/native';
import { isas, normal, onIsa, rejects, uniform } from '../helpers';
import { assertScaledClose, gemmRefF64, RefEpilogue, transpose } from '../ref/gemm';
import { geluF64, quickGeluF64 } from '../ref/elementwise';

const Gemm = suite('gemm');

// Bound: |y - ref| <= TOL(k)·scale + 1e-6·|ref|, scale = |alpha|·Σ|x·w| + |bias| + |residual| (the summed
// terms). fp32 products, fp32 accumulation in KC=256 blocks: the worst case is ~k·2^-24, random signs
// give ~√k·2^-24 at most; we allow 4·√k·2^-24 (observed max 0.05·√k·2^-24, ~9e-8·scale at k = 769).
// GELU / QuickGELU (slope <= 1.13)
// add their own ~2e-7 relative error, covered by the 1e-6·|ref| term.
const tolF32 = (k: number) => 4 * Math.sqrt(Math.max(k, 1)) * 2 ** -24;

interface Case {
  m: number;
  n: number;
  k: number;
  epilogue: RefEpilogue;
  bias: boolean;
  alpha: number;
}

const EPILOGUES: RefEpilogue[] = ['none', 'gelu', 'quick_gelu', 'residual'];
const NK: [number, number][] = [[1, 1], [7, 17], [17, 7], [63, 63], [769, 17], [17, 769], [63, 769], [769, 63]];
const cases: Case[] = [];
let idx = 0;
for (const m of [1, 7, 63, 197])
  for (const [n, k] of NK) {
    cases.push({ m, n, k, epilogue: EPILOGUES[idx % 4], bias: idx % 3 !== 1, alpha: [1, 0.37, -1.5][idx % 3] });
    idx++;
  }
// Real CLIP shapes: ViT-B/16 QKV (197×768→2304), text MLP up (52×512→2048), ViT MLP down (197×3072→768).
cases.push({ m: 197, n: 2304, k: 768, epilogue: 'none', bias: true, alpha: 1 });
cases.push({ m: 52, n: 2048, k: 512, epilogue: 'quick_gelu', bias: true, alpha: 1 });
cases.push({ m: 197, n: 768, k: 3072, epilogue: 'residual', bias: true, alpha: 1 });
// Rows cut into 10-row micro-panels on AVX-512 (50: 5 × 10; 77: 7 × 10 + 7) and a 10-row panel alone.
cases.push({ m: 50, n: 100, k: 769, epilogue: 'gelu', bias: true, alpha: 1 });
cases.push({ m: 77, n: 63, k: 197, epilogue: 'residual', bias: false, alpha: 0.37 });
cases.push({ m: 10, n: 33, k: 63, epilogue: 'quick_gelu', bias: true, alpha: 1 });
// Rows that the 13-row AVX-512 tile cuts better than the 12-row one (gemm_driver's tile_cost): 52 as
// 4 × 13; 21 as 13 + an 8-row kernel; 121 as 9 × 13 + a 4-row kernel; 416 (8 texts of 52 tokens) as
// 208 + 208 rows for two threads, 16 × 13 each.
cases.push({ m: 52, n: 769, k: 63, epilogue: 'residual', bias: true, alpha: 1 });
cases.push({ m: 21, n: 33, k: 769, epilogue: 'gelu', bias: true, alpha: 0.37 });
cases.push({ m: 121, n: 40, k: 100, epilogue: 'none', bias: false, alpha: -1.5 });
cases.push({ m: 416, n: 70, k: 769, epilogue: 'quick_gelu', bias: true, alpha: 1 });
// Rows enough for several M blocks (each thread takes its own rows): 1003×1543→70.
cases.push({ m: 1003, n: 70, k: 1543, epilogue: 'residual', bias: true, alpha: -0.5 });

for (const c of cases) {
  const name = `${c.m}x${c.k}->${c.n} ${c.epilogue}${c.bias ? ' +bias' : ''}${c.alpha !== 1 ? ` alpha=${c.alpha}` : ''}`;
  Gemm(name, async () => {
    const seed = c.m * 7919 + c.n * 104729 + c.k;
    const x = normal(c.m * c.k, seed), w = normal(c.n * c.k, seed + 1, 1 / Math.sqrt(c.k));
    const bias = c.bias ? uniform(c.n, seed + 2) : undefined;
    const residual = c.epilogue === 'residual' ? normal(c.m * c.n, seed + 3) : undefined;
    const ref = gemmRefF64(x, w, c.m, c.n, c.k, { bias, epilogue: c.epilogue, residual, alpha: c.alpha });
    const packed = await packWeight(new Tensor(w, [c.n, c.k]));
    for (const isa of isas)
      await onIsa(isa, async () => {
        const y = await linear(new Tensor(x, [c.m, c.k]), packed, {
          bias: bias && new Tensor(bias, [c.n]),
          activation: c.epilogue === 'gelu' || c.epilogue === 'quick_gelu' ? c.epilogue : undefined,
          residual: residual && new Tensor(residual, [c.m, c.n]),
          alpha: c.alpha,
        });
        assert.equal(y.shape, [c.m, c.n]);
        assertScaledClose(y.data, ref.y, ref.scale, tolF32(c.k), 1e-6, `y (${isa})`);
      });
  });
}

// inputActivation: y = act(x)·Wᵀ + bias (+ residual), x itself unchanged. act(x) in fp32 adds up to
// ~1e-6 relative per element of x, so ~1e-6·scale (scale = Σ|act(x)·w| + …) on top of the GEMM's own bound.
// Sizes across the K blocks (769 > AVX2's 384 and AVX-512's 768) and the M micro-panels' edge rows.
for (const [m, n, k, act, residual] of [
  [1, 17, 7, 'gelu', false],
  [13, 33, 769, 'gelu', true],
  [197, 63, 63, 'quick_gelu', false],
  [63, 769, 1543, 'quick_gelu', true],
] as const)
  Gemm(`inputActivation ${act}: ${m}x${k}->${n}${residual ? ' residual' : ''}`, async () => {
    const seed = m * 31 + n * 7 + k;
    const x = normal(m * k, seed, 2), w = normal(n * k, seed + 1, 1 / Math.sqrt(k)), b = uniform(n, seed + 2);
    const h = residual ? normal(m * n, seed + 3) : undefined;
    const xa = Float64Array.from(x, act === 'gelu' ? geluF64 : quickGeluF64);
    const ref = gemmRefF64(xa, w, m, n, k, { bias: b, epilogue: residual ? 'residual' : 'none', residual: h });
    const packed = await packWeight(new Tensor(w, [n, k]));
    const x0 = new Float32Array(x);
    for (const isa of isas)
      await onIsa(isa, async () => {
        const opts = { bias: new Tensor(b, [n]), inputActivation: act, residual: h && new Tensor(h, [m, n]) };
        const y = await linear(new Tensor(x, [m, k]), packed, opts);
        assertScaledClose(y.data, ref.y, ref.scale, tolF32(k) + 2e-6, 1e-6, `y (${isa})`);
        assert.equal(x, x0, 'x is not changed');
      });
  });

Gemm('leading axes are flattened: x [2, 3, 17] -> [2, 3, 9]', async () => {
  const x = normal(2 * 3 * 17, 11), w = normal(9 * 17, 12);
  const y = await linear(new Tensor(x, [2, 3, 17]), await packWeight(new Tensor(w, [9, 17])));
  assert.equal(y.shape, [2, 3, 9]);
  const ref = gemmRefF64(x, w, 6, 9, 17);
  assertScaledClose(y.data, ref.y, ref.scale, tolF32(17), 0, 'y');
});

Gemm('residual may be the output (in-place residual stream)', async () => {
  const m = 63, n = 769, k = 63;
  const x = normal(m * k, 21), w = normal(n * k, 22), b = uniform(n, 23), h = normal(m * n, 24);
  const ref = gemmRefF64(x, w, m, n, k, { bias: b, epilogue: 'residual', residual: h, alpha: 0.5 });
  const packed = await packWeight(new Tensor(w, [n, k]));
  for (const isa of isas)
    await onIsa(isa, async () => {
      const stream = new Tensor(new Float32Array(h), [m, n]);
      const out = await linear(new Tensor(x, [m, k]), packed, { bias: new Tensor(b, [n]), residual: stream, out: stream, alpha: 0.5 });
      assert.ok(out === stream);
      assertScaledClose(stream.data, ref.y, ref.scale, tolF32(k), 0, `stream (${isa})`);
    });
});

Gemm('k = 0 gives the bias; m = 0 gives an empty result', async () => {
  const packed = await packWeight(new Tensor(new Float32Array(0), [5, 0]));
  const b = uniform(5, 31);
  const y = await linear(new Tensor(new Float32Array(0), [3, 0]), packed, { bias: new Tensor(b, [5]), activation: 'gelu' });
  const ref = gemmRefF64([], [], 3, 5, 0, { bias: b, epilogue: 'gelu' });
  assertScaledClose(y.data, ref.y, ref.scale, 0, 1e-6, 'y');
  const yx = await linear(new Tensor(new Float32Array(0), [3, 0]), packed, { bias: new Tensor(b, [5]), inputActivation: 'gelu' });
  assertScaledClose(yx.data, gemmRefF64([], [], 3, 5, 0, { bias: b }).y, ref.scale, 0, 1e-6, 'y (inputActivation)');
  const empty = await linear(new Tensor(new Float32Array(0), [0, 7]), await packWeight(new Tensor(normal(21, 32), [3, 7])));
  assert.equal(empty.shape, [0, 3]);
});

// 197 rows: one M block, the threads split its N tiles. 1003 rows: several M blocks, each thread
// takes its own rows (the split falls inside a micro-panel), across K blocks, through an input
// activation. 416 rows: one M block each, all of K at once; 2100 × 3000: several M blocks and K
// blocks each, N tiles inner; 200 × 3072: one M block, its N tiles split, K blocks, N tiles inner
// (threads that finish early take units of the others, in K order).
for (const [m, n, k, act] of [[197, 769, 300, 'none'], [1003, 70, 1543, 'quick_gelu'], [416, 100, 768, 'gelu'], [2100, 200, 3000, 'gelu'], [200, 300, 3072, 'quick_gelu']] as const)
  Gemm(`1 thread and all threads give identical results; a weight packed under one ISA runs under all (${m}x${k}->${n})`, async () => {
    const x = normal(m * k, 41), w = normal(n * k, 42, 0.1), b = uniform(n, 43);
    const packed = await onIsa(isas[0], () => packWeight(new Tensor(w, [n, k])));
    const opts = act === 'none' ? { bias: new Tensor(b, [n]), activation: 'gelu' as const } : { bias: new Tensor(b, [n]), inputActivation: act };
    for (const isa of isas)
      await onIsa(isa, async () => {
        try {
          setThreads(1);
          const y1 = await linear(new Tensor(x, [m, k]), packed, opts);
          setThreads(0);
          const yn = await linear(new Tensor(x, [m, k]), packed, opts);
          // Each element is summed in the same order whatever the split: bitwise equal.
          assert.ok(y1.data.every((v, i) => Object.is(v, yn.data[i])), `1 vs N threads differ (${isa})`);
          // More threads than cores: the OS holds threads up, and the others take over their work.
          setThreads(3);
          for (let r = 0; r < 3; r++) {
            const y3 = await linear(new Tensor(x, [m, k]), packed, opts);
            assert.ok(y1.data.every((v, i) => Object.is(v, y3.data[i])), `1 vs 3 threads differ (${isa})`);
          }
        } finally {
          setThreads(0);
        }
      });
  });

for (const [m, n, k] of [[1, 1, 1], [7, 17, 63], [63, 7, 769], [197, 63, 17], [52, 130, 512]] as const)
  Gemm(`matmul ${m}x${k} · ${k}x${n} (both layouts of b)`, async () => {
    const a = normal(m * k, m + n + k), bkn = normal(k * n, m * n * k + 1);
    const bnk = transpose(bkn, k, n);
    const ref = gemmRefF64(a, bnk, m, n, k, { alpha: 0.25 });
    for (const isa of isas)
      await onIsa(isa, async () => {
        const c1 = await matmul(new Tensor(a, [m, k]), new Tensor(bkn, [k, n]), { alpha: 0.25 });
        const c2 = await matmul(new Tensor(a, [m, k]), new Tensor(bnk, [n, k]), { transposeB: true, alpha: 0.25 });
        assert.equal(c1.shape, [m, n]);
        assertScaledClose(c1.data, ref.y, ref.scale, tolF32(k), 0, `b [k,n] (${isa})`);
        assertScaledClose(c2.data, ref.y, ref.scale, tolF32(k), 0, `b [n,k] (${isa})`);
      });
  });

Gemm('bad arguments name the argument', async () => {
  const w = await packWeight(new Tensor(normal(12, 1), [3, 4]));
  const x = new Tensor(normal(8, 2), [2, 4]);
  await rejects(linear(new Tensor(normal(6, 3), [2, 3]), w), RangeError, /last dimension 4/);
  await rejects(linear(new Tensor(new Int32Array(8), [2, 4], 'int32') as never, w), TypeError, /float32 for x/);
  await rejects(linear(new Float32Array(8) as never, w), TypeError, /Tensor for x/);
  await rejects(linear(x, {} as never), TypeError, /PackedWeight .* for w/);
  await rejects(linear(x, w, { bias: new Tensor(normal(4, 4), [4]) }), RangeError, /bias of shape \[3\]/);
  await rejects(linear(x, w, { alpha: NaN }), RangeError, /finite number for alpha/);
  await rejects(linear(x, w, { activation: 'relu' as never }), RangeError, /activation/);
  await rejects(linear(x, w, { inputActivation: 'tanh' as never }), RangeError, /inputActivation/);
  await rejects(linear(x, w, { residual: new Tensor(normal(6, 5), [2, 3]), activation: 'gelu' }), RangeError, /either activation or residual/);
  await rejects(linear(x, w, { residual: new Tensor(normal(4, 5), [2, 2]) }), RangeError, /residual of shape \[2, 3\]/);
  await rejects(linear(x, w, { out: new Tensor(x.data.subarray(0, 6), [2, 3]) }), RangeError, /out not to share storage with x/);
  await rejects(packWeight(new Tensor(normal(4, 6), [4])), RangeError, /w of shape \[\*, \*\]/);
  await rejects(packWeight(new Tensor(normal(4, 6), [2, 2]), { dtype: 'float16' as never }), RangeError, /dtype/);
  await rejects(matmul(x, new Tensor(normal(6, 7), [3, 2])), RangeError, /b of shape \[4, \*\]/);
  // A forged PackedWeight (right class, wrong handle) reaches the binding, which rejects the handle.
  const forged = Object.assign(Object.create(PackedWeight.prototype), { handle: { n: 3 }, n: 3, k: 4, dtype: 'float32' });
  await rejects(linear(x, forged), TypeError, /packed weight/);
  // The binding re-checks lengths on its own.
  const g = native().gemm as (a: object) => Promise<void>;
  await rejects(() => g({ x: x.data, m: 2, k: 4, w: w.handle, y: new Float32Array(5) }), RangeError, /y of length 6/);
  await rejects(() => g({ x: x.data.subarray(1), m: 2, k: 4, w: w.handle, y: new Float32Array(6) }), RangeError, /x of length 8/);
  await rejects(() => g({ x: x.data, m: 2, k: 5, w: w.handle, y: new Float32Array(6) }), RangeError, /k 4/);
  await rejects(() => g({ x: x.data, m: 2, k: 4, w: w.handle, y: new Float32Array(6), epilogue: 'residual' }), TypeError, /residual/);
  await rejects(() => g({ x: x.data, m: 2 ** 62, k: 4, w: w.handle, y: new Float32Array(6) }), RangeError, /./);
  await rejects(() => g({ x: x.data, m: 2, k: 4, w: {}, y: new Float32Array(6) }), TypeError, /packed weight/);
  await rejects(() => g({ x: x.data, m: 2, k: 4, w: w.handle, y: new Float32Array(6), alpha: Infinity }), RangeError, /alpha/);
});

Gemm('inPlace: packed over the weight\'s own storage, the same results as a packed copy, on every ISA', async () => {
  for (const [m, n, k] of [[1, 16, 7], [7, 48, 63], [63, 2304, 197], [197, 64, 769]]) {
    const x = new Tensor(normal(m * k, m + k), [m, k]), bias = new Tensor(normal(n, n), [n]);
    const wData = normal(n * k, n + k);
    const ref = await packWeight(new Tensor(wData, [n, k]));
    const own = wData.slice();
    const inPlace = await packWeight(new Tensor(own, [n, k]), { inPlace: true });
    assert.not.equal(own, wData, 'the storage now holds panels');
    for (const isa of isas)
      await onIsa(isa, async () => {
        const want = await linear(x, ref, { bias, activation: 'gelu' });
        assert.equal((await linear(x, inPlace, { bias, activation: 'gelu' })).data, want.data, `${m}x${n}x${k} ${isa}`);
      });
  }
  // n not a multiple of 16, or bf16: packed as a copy, the weight untouched.
  for (const [n, dtype] of [[17, 'float32'], [32, 'bfloat16']] as const) {
    const w = normal(n * 9, 4), copy = w.slice();
    await packWeight(new Tensor(w, [n, 9]), { inPlace: true, dtype });
    assert.equal(w, copy);
  }
  await rejects(packWeight(new Tensor(normal(32, 1), [16, 2]), { inPlace: 'yes' as never }), TypeError, /inPlace/);
});

Gemm('inPlace: the packed weight keeps its storage alive after every JS reference to it is gone', async () => {
  const [m, n, k] = [5, 64, 33];
  const x = new Tensor(normal(m * k, 7), [m, k]);
  const wData = normal(n * k, 8);
  const want = await linear(x, await packWeight(new Tensor(wData.slice(), [n, k])));
  const w = await (async () => packWeight(new Tensor(wData.slice(), [n, k]), { inPlace: true }))();
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 4; i++) {
    new Float32Array(1 << 22).fill(i); // churn, so a freed buffer would be reused and overwritten
    gc?.();
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal((await linear(x, w)).data, want.data);
});

Gemm('packWeightParts: q | k | v packed where each part lies (any order in memory) equals the concatenated weight', async () => {
  for (const [m, width, k] of [[1, 16, 7], [7, 48, 63], [197, 64, 769]]) {
    const parts = [0, 1, 2].map((i) => normal(width * k, 10 * i + width));
    const x = new Tensor(normal(m * k, 3), [m, k]);
    const cat = new Float32Array(3 * width * k);
    parts.forEach((p, i) => cat.set(p, i * width * k));
    const ref = await packWeight(new Tensor(cat, [3 * width, k]));
    // The parts live in one buffer in the order v, q, k, with a gap: panel pointers go backwards too.
    const shared = new Float32Array(3 * width * k + 5 * 16);
    const at = [width * k + 16, 2 * width * k + 80, 0];
    const views = parts.map((p, i) => {
      const v = shared.subarray(at[i], at[i] + width * k);
      v.set(p);
      return new Tensor(v, [width, k]);
    });
    const w = await packWeightParts(views, { inPlace: true });
    assert.equal([w.n, w.k], [3 * width, k]);
    const copied = await packWeightParts(parts.map((p) => new Tensor(p.slice(), [width, k])));
    for (const isa of isas)
      await onIsa(isa, async () => {
        const want = await linear(x, ref);
        assert.equal((await linear(x, w)).data, want.data, `parts in place ${m}x${width}x${k} ${isa}`);
        assert.equal((await linear(x, copied)).data, want.data, `parts copied ${isa}`);
      });
  }
  // A part whose n is not a multiple of 16: concatenated and packed as one copy.
  const odd = [normal(9 * 5, 1), normal(9 * 5, 2)];
  const w = await packWeightParts(odd.map((p) => new Tensor(p, [9, 5])), { inPlace: true });
  const x = new Tensor(normal(3 * 5, 4), [3, 5]);
  const cat = new Float32Array(18 * 5);
  cat.set(odd[0]);
  cat.set(odd[1], 45);
  assert.equal((await linear(x, w)).data, (await linear(x, await packWeight(new Tensor(cat, [18, 5])))).data);
  await rejects(packWeightParts([]), TypeError, /non-empty array/);
  await rejects(packWeightParts([new Tensor(normal(10, 1), [2, 5]), new Tensor(normal(12, 1), [2, 6])]), RangeError, /parts\[1\]/);
  const f = (n: number) => new Float32Array(n);
  await rejects(() => native().packWeight({ parts: [f(32), f(32)], ns: [16, 16], k: 2 }), RangeError, /in place only/);
  await rejects(() => native().packWeight({ parts: [f(32), f(30)], ns: [16, 16], k: 2, inPlace: true }), RangeError, /part 1 of length 32/);
  await rejects(() => native().packWeight({ parts: [f(18)], ns: [9], k: 2, inPlace: true }), RangeError, /multiple of 16/);
  await rejects(() => native().packWeight({ parts: [new Int32Array(32)], ns: [16], k: 2, inPlace: true }), TypeError, /Float32Array/);
});

Gemm('outColumn: y goes into a column slice of out, the other columns untouched', async () => {
  const [m, n, k, width] = [7, 16, 9, 50];
  const x = new Tensor(normal(m * k, 1), [m, k]), w = await packWeight(new Tensor(normal(n * k, 2), [n, k]));
  const bias = new Tensor(normal(n, 3), [n]);
  const want = await linear(x, w, { bias, activation: 'quick_gelu' });
  for (const col of [0, 13, width - n]) {
    const out = new Tensor(new Float32Array(m * width).fill(-7), [m, width]);
    assert.is(await linear(x, w, { bias, activation: 'quick_gelu', out, outColumn: col }), out);
    for (let r = 0; r < m; r++)
      for (let c = 0; c < width; c++) {
        const v = out.data[r * width + c];
        if (c >= col && c < col + n) assert.is(v, want.data[r * n + c - col]);
        else assert.is(v, -7);
      }
  }
  const out = new Tensor(new Float32Array(m * width), [m, width]);
  await rejects(linear(x, w, { outColumn: 0 }), RangeError, /out with outColumn/);
  await rejects(linear(x, w, { out, outColumn: width - n + 1 }), RangeError, /outColumn/);
  await rejects(linear(x, w, { out: new Tensor(new Float32Array(m * 8), [m, 8]), outColumn: 0 }), RangeError, /at least 16 columns/);
  await rejects(linear(x, w, { out, outColumn: 0, residual: new Tensor(new Float32Array(m * n), [m, n]) }), RangeError, /outColumn or residual/);
  await rejects(linear(x, w, { out: new Tensor(new Float32Array(6 * width), [6, width]), outColumn: 0 }), RangeError, /out of shape/);
  const f = (l: number) => new Float32Array(l);
  await rejects(() => native().gemm({ x: f(m * k), m, k, w: w.handle, y: f((m - 1) * width + n - 1), ldy: width }), RangeError, /at least/);
  await rejects(() => native().gemm({ x: f(m * k), m, k, w: w.handle, y: f(m * width), ldy: 8 }), RangeError, /ldy >= n/);
});

Gemm('rows(): a range of W\'s rows runs as a weight of its own, bit for bit the same columns', async () => {
  const [m, k] = [13, 37];
  const x = new Tensor(normal(m * k, 11), [m, k]);
  const columns = (y: Tensor, n: number, c0: number, c1: number) => {
    const out = new Float32Array(m * (c1 - c0));
    for (let r = 0; r < m; r++) out.set(y.data.subarray(r * n + c0, r * n + c1), r * (c1 - c0));
    return out;
  };
  // One packed copy (fp32, bf16), and q | k | v parts packed where they lie (each panel by pointer).
  const n = 3 * 32;
  const parts = [0, 1, 2].map((i) => normal(32 * k, 20 + i));
  const cat = new Float32Array(n * k);
  parts.forEach((p, i) => cat.set(p, i * 32 * k));
  const bias = new Tensor(normal(n, 5), [n]);
  const weights: [string, PackedWeight][] = [
    ['fp32', await packWeight(new Tensor(cat, [n, k]))],
    ['bf16', await packWeight(new Tensor(cat, [n, k]), { dtype: 'bfloat16' })],
    ['parts', await packWeightParts(parts.map((p) => new Tensor(p.slice(), [32, k])), { inPlace: true })],
  ];
  for (const [label, w] of weights)
    for (const isa of isas)
      await onIsa(isa, async () => {
        const full = await linear(x, w, { bias });
        for (const [c0, c1] of [[0, 32], [32, 96], [16, 48], [80, 96], [0, 96]]) {
          const view = w.rows(c0, c1);
          assert.equal([view.n, view.k, view.dtype], [c1 - c0, k, w.dtype]);
          const got = await linear(x, view, { bias: new Tensor(bias.data.subarray(c0, c1), [c1 - c0]) });
          assert.equal(got.data, columns(full, n, c0, c1), `${label} rows [${c0}, ${c1}) ${isa}`);
        }
        // A view of a view counts from the first one's start.
        const twice = await linear(x, w.rows(32, 96).rows(16, 48));
        assert.equal(twice.data, columns(await linear(x, w), n, 48, 80), `${label} view of a view ${isa}`);
      });
  // A weight whose n is not a multiple of 16: a range may end at n.
  const odd = await packWeight(new Tensor(normal(40 * k, 7), [40, k]));
  assert.equal((await linear(x, odd.rows(32, 40))).data, columns(await linear(x, odd), 40, 32, 40));
  const w = weights[0][1];
  assert.throws(() => w.rows(8, 32), /multiples of 16/);
  assert.throws(() => w.rows(0, 33), /multiples of 16/);
  assert.throws(() => w.rows(32, 16), /end/);
  assert.throws(() => w.rows(0, 112), /end/);
  // The binding checks the range on its own.
  const f = (l: number) => new Float32Array(l);
  const g = (o: object) => () => native().gemm({ x: x.data, m, k, w: w.handle, y: f(m * 32), ...o });
  await g({ wRow0: 64, wRows: 32 })();
  await rejects(g({ wRow0: 8, wRows: 32 }), RangeError, /wRow0 a multiple of 16/);
  await rejects(g({ wRow0: 112, wRows: 0 }), RangeError, /wRow0/);
  await rejects(g({ wRow0: 80, wRows: 32 }), RangeError, /wRows/);
  await rejects(g({ wRow0: 0, wRows: 24 }), RangeError, /wRows/);
  await rejects(g({ wRow0: 0, wRows: 16 }), RangeError, /y of length 208/);
});

Gemm.run();
