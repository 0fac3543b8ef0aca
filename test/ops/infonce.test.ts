import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { infonce, infonceLoss, setThreads, Tensor } from '../../src';
import { native } from '../../src/native';
import { assertClose, isas, normal, onIsa, rejects, rng } from '../helpers';
import { centralDiff, infonceLossRefF64, infonceRefF64 } from '../ref/infonce';
import { logitsRefF64 } from '../ref/logits';

const Infonce = suite('infonce');

const maxAbs = (x: ArrayLike<number>) => Array.prototype.reduce.call(x, (m: number, v: number) => Math.max(m, Math.abs(v)), 0) as number;

/** Indices to check by finite differences: all of them when few, else `count` random ones. */
function sample(len: number, count: number, seed: number): number[] {
  if (len <= count) return Array.from({ length: len }, (_, i) => i);
  const r = rng(seed);
  return Array.from({ length: count }, () => Math.floor(r() * len));
}

// Gradients are checked against central differences (h = 1e-5, float64 reference; its own error is
// < 1e-8 here). Bound for the float32 kernel: |got − fd| <= 1e-4·max|fd| + 1e-3·|fd|; observed
// < 1e-6·max|fd| (n=63, d=512, scale 100), dominated by the float32 rounding of logits up to ±scale.
function finiteDiffs(f: (x: Float64Array) => number, x: ArrayLike<number>, idx: number[]): number[] {
  return idx.map((i) => centralDiff(f, x, i, 1e-5));
}
function checkGrad(got: ArrayLike<number>, fd: number[], idx: number[], name: string) {
  const scale = Math.max(maxAbs(fd), 1e-12);
  assertClose(idx.map((i) => got[i]), fd, { atol: 1e-4 * scale, rtol: 1e-3, name });
}

// Loss bound: logsumexp in double from float32 logits; observed relative error < 1e-7.
const LOSS_TOL = (scale: number) => ({ atol: 1e-6 * Math.max(1, scale), rtol: 1e-6 });

for (const [n, spread] of [[1, 1], [7, 3], [63, 20], [200, 100]] as const)
  Infonce(`loss from logits n=${n} spread=${spread}`, async () => {
    const x = normal(n * n, n + 11, spread);
    for (let i = 0; i < n; i++) x[i * n + i] += spread; // matched pairs score higher, as in training
    const want = infonceLossRefF64(x, n);
    const idx = sample(n * n, 400, n), fd = finiteDiffs((y) => infonceLossRefF64(y, n), x, idx);
    for (const isa of isas)
      await onIsa(isa, async () => {
        const { loss, dLogits } = await infonceLoss(new Tensor(x, [n, n]));
        assertClose([loss], [want], { ...LOSS_TOL(spread), name: `loss (${isa})` });
        checkGrad(dLogits.data, fd, idx, `dLogits (${isa})`);
      });
  });

Infonce('extreme logits stay finite', async () => {
  const n = 9, x = normal(n * n, 5, 1000);
  for (const isa of isas)
    await onIsa(isa, async () => {
      const { loss, dLogits } = await infonceLoss(new Tensor(x, [n, n]));
      assertClose([loss], [infonceLossRefF64(x, n)], { atol: 1e-3, rtol: 1e-6, name: `loss (${isa})` });
      assert.ok(dLogits.data.every(Number.isFinite), 'finite gradient');
    });
});

const FULL: [n: number, d: number, scale: number][] = [
  [1, 8, 100],
  [7, 17, 1],
  [7, 64, 100],
  [33, 40, 14.3],
  [63, 512, 100],
];
for (const [n, d, scale] of FULL)
  Infonce(`full n=${n} d=${d} scale=${scale}`, async () => {
    const a = normal(n * d, n * 7 + d, 1.5, 0.05), b = normal(n * d, n * 13 + d, 0.7);
    for (let i = 0; i < n * d; i++) b[i] += 0.02 * a[i]; // weakly correlated pairs: no softmax saturates at scale 100
    const wantLoss = infonceRefF64(a, b, n, d, scale);
    const wantLogits = logitsRefF64(a, b, n, n, d, scale);
    const idx = sample(n * d, 40, d);
    const fdA = finiteDiffs((x) => infonceRefF64(x, b, n, d, scale), a, idx);
    const fdB = finiteDiffs((x) => infonceRefF64(a, x, n, d, scale), b, idx);
    const fdScale = finiteDiffs((x) => infonceRefF64(a, b, n, d, x[0]), [scale], [0]);
    const logScale = Math.log(scale);
    const fdLogScale = finiteDiffs((x) => infonceRefF64(a, b, n, d, Math.exp(x[0])), [logScale], [0]);
    for (const isa of isas)
      await onIsa(isa, async () => {
        const r = await infonce(new Tensor(a, [n, d]), new Tensor(b, [n, d]), scale);
        assertClose([r.loss], [wantLoss], { ...LOSS_TOL(scale), name: `loss (${isa})` });
        assertClose(r.logits.data, wantLogits, { atol: 2e-6 * scale, rtol: 1e-5, name: `logits (${isa})` });
        const gi = sample(n * n, 400, n);
        checkGrad(r.dLogits.data, finiteDiffs((x) => infonceLossRefF64(x, n), r.logits.data, gi), gi, `dLogits (${isa})`);
        checkGrad(r.dA.data, fdA, idx, `dA (${isa})`);
        checkGrad(r.dB.data, fdB, idx, `dB (${isa})`);
        checkGrad([r.dScale], fdScale, [0], `dScale (${isa})`);
        checkGrad([r.dLogScale], fdLogScale, [0], `dLogScale (${isa})`);
        const viaLog = await infonce(new Tensor(a, [n, d]), new Tensor(b, [n, d]), { logScale });
        assertClose([viaLog.loss, viaLog.dLogScale], [r.loss, r.dLogScale], { atol: 1e-5, rtol: 1e-5, name: 'logScale option' });
      });
  });

Infonce('a zero embedding row gives zero gradient, never NaN', async () => {
  const n = 6, d = 24;
  const a = normal(n * d, 1), b = normal(n * d, 2);
  a.fill(0, d, 2 * d);
  for (const isa of isas)
    await onIsa(isa, async () => {
      const r = await infonce(new Tensor(a, [n, d]), new Tensor(b, [n, d]), 50);
      for (const [k, t] of Object.entries({ logits: r.logits, dLogits: r.dLogits, dA: r.dA, dB: r.dB }))
        assert.ok(t.data.every(Number.isFinite), `${k} finite (${isa})`);
      assert.ok(r.dA.data.subarray(d, 2 * d).every((v) => v === 0), 'zero row has zero gradient');
      assertClose([r.loss], [infonceRefF64(a, b, n, d, 50)], { atol: 5e-5, rtol: 1e-6, name: 'loss' });
    });
});

Infonce('1 thread and all threads agree', async () => {
  const n = 150, d = 256;
  const a = new Tensor(normal(n * d, 1), [n, d]), b = new Tensor(normal(n * d, 2), [n, d]);
  try {
    setThreads(1);
    const one = await infonce(a, b, 100);
    setThreads(0);
    const all = await infonce(a, b, 100);
    assertClose([all.loss, all.dScale], [one.loss, one.dScale], { atol: 1e-6, rtol: 1e-6, name: 'loss, dScale' });
    for (const k of ['logits', 'dLogits', 'dA', 'dB'] as const)
      assertClose(all[k].data, one[k].data, { atol: 1e-6 * maxAbs(one[k].data), rtol: 1e-5, name: k });
  } finally {
    setThreads(0);
  }
});

Infonce('bad arguments name the argument', async () => {
  const t = (shape: number[]) => new Tensor(normal(shape.reduce((x, y) => x * y, 1), 1), shape);
  await rejects(infonceLoss(t([3, 4])), RangeError, /logits of shape \[n, n\]/);
  await rejects(infonceLoss(t([0, 0])), RangeError, /n >= 1/);
  await rejects(infonceLoss(t([9])), RangeError, /logits of shape \[rows, dim\]/);
  await rejects(infonceLoss(new Float32Array(9) as never), TypeError, /Tensor for logits/);
  const a = t([4, 8]);
  await rejects(infonce(a, t([3, 8]), 1), RangeError, /b of shape \[4, 8\]/);
  await rejects(infonce(a, t([4, 7]), 1), RangeError, /b of shape \[4, 8\]/);
  await rejects(infonce(t([0, 8]), t([0, 8]), 1), RangeError, /at least one row/);
  for (const s of [NaN, Infinity, 0, -1]) await rejects(infonce(a, a, s), RangeError, /scale/);
  for (const s of [NaN, Infinity, -Infinity]) await rejects(infonce(a, a, { logScale: s }), RangeError, /logScale/);
  await rejects(infonce(a, a, { logScale: 1000 }), RangeError, /exp\(logScale\)/);
  await rejects(infonce(a, a, { scale: 2, logScale: 1 } as never), TypeError, /one of scale or logScale/);
  await rejects(infonce(a, a, '1' as never), TypeError, /scale/);
  await rejects(infonce(a, a, undefined as never), TypeError, /scale/);
  const f = (k: number) => new Float32Array(k);
  const call = (o: object) => () =>
    native().infonce({ a: f(32), b: f(32), logits: f(16), dLogits: f(16), dA: f(32), dB: f(32), n: 4, dim: 8, scale: 1, ...o });
  await rejects(call({ dB: f(31) }), RangeError, /dB of length 32/);
  await rejects(call({ logits: f(15) }), RangeError, /logits of length 16/);
  await rejects(call({ scale: Infinity }), RangeError, /scale/);
  await rejects(call({ scale: -1 }), Error, /infonce/); // the kernel refuses it: an error, not a crash
  await rejects(call({ n: 2 ** 40 }), RangeError, /too large|length/);
  await rejects(() => native().infonceLoss({ logits: f(16), n: 5 }), RangeError, /logits of length 25/);
  await rejects(() => native().infonceLoss({ logits: f(0), n: 0 }), Error, /infonceLoss/);
});

Infonce.run();
