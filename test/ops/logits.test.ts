import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { logits, setThreads, Tensor } from '../../src';
import { native } from '../../src/native';
import { assertClose, isas, normal, onIsa, rejects } from '../helpers';
import { logitsRefF64 } from '../ref/logits';

const Logits = suite('logits');
// Bound: cosines from float32 rows (norms reduced in double, dot products accumulated in float32
// over d <= 769 terms) are within ~1e-6 of float64; times scale. Observed < 2e-7·scale absolute.
const tol = (scale: number) => ({ atol: 2e-6 * scale, rtol: 1e-5 });

const CASES: [n: number, m: number, d: number, scale: number][] = [
  [1, 1, 1, 1],
  [1, 7, 512, 100],
  [7, 7, 17, 1],
  [7, 5, 64, 14.3],
  [63, 63, 512, 100],
  [63, 200, 769, 100],
  [130, 33, 769, 0.5],
];

for (const [n, m, d, scale] of CASES)
  Logits(`${n}x${m} d=${d} scale=${scale}`, async () => {
    const a = normal(n * d, n * 31 + d, 2, 0.1), b = normal(m * d, m * 37 + d, 0.5, -0.2);
    const want = logitsRefF64(a, b, n, m, d, scale);
    for (const isa of isas)
      await onIsa(isa, async () => {
        const got = await logits(new Tensor(a, [n, d]), new Tensor(b, [m, d]), scale);
        assert.equal(got.shape, [n, m]);
        assertClose(got.data, want, { ...tol(scale), name: `logits (${isa})` });
      });
  });

Logits('a zero row gives zeros, never NaN; norms come out', async () => {
  const n = 5, m = 4, d = 33;
  const a = normal(n * d, 3), b = normal(m * d, 4);
  a.fill(0, 2 * d, 3 * d);
  b.fill(0, 0, d);
  const want = logitsRefF64(a, b, n, m, d, 100);
  for (const isa of isas)
    await onIsa(isa, async () => {
      const got = await logits(new Tensor(a, [n, d]), new Tensor(b, [m, d]), 100);
      assert.ok(got.data.every(Number.isFinite), 'finite');
      assertClose(got.data, want, { ...tol(100), name: `logits (${isa})` });
      const aNorm = new Float32Array(n), bNorm = new Float32Array(m), out = new Float32Array(n * m);
      await native().logits({ a, b, out, aNorm, bNorm, n, m, dim: d, scale: 100 });
      assert.is(aNorm[2], 0);
      assert.is(bNorm[0], 0);
      let s = 0;
      for (let c = 0; c < d; c++) s += a[c] ** 2;
      assertClose([aNorm[0]], [Math.sqrt(s)], { atol: 0, rtol: 1e-6, name: 'aNorm[0]' });
    });
});

Logits('1 thread and all threads agree', async () => {
  const n = 200, m = 150, d = 512;
  const a = new Tensor(normal(n * d, 1), [n, d]), b = new Tensor(normal(m * d, 2), [m, d]);
  try {
    setThreads(1);
    const one = await logits(a, b, 100);
    setThreads(0);
    const all = await logits(a, b, 100);
    assertClose(all.data, one.data, { atol: 1e-5, rtol: 1e-6, name: 'threads' });
  } finally {
    setThreads(0);
  }
});

Logits('bad arguments name the argument', async () => {
  const t = (shape: number[]) => new Tensor(normal(shape.reduce((x, y) => x * y, 1), 1), shape);
  const a = t([3, 8]);
  await rejects(logits(a, t([3, 7]), 1), RangeError, /b of shape \[\*, 8\]/);
  await rejects(logits(t([24]), a, 1), RangeError, /a of shape \[rows, dim\]/);
  for (const s of [NaN, Infinity, -Infinity, 0, -2, 1e-50, 1e39]) await rejects(logits(a, a, s), RangeError, /scale/);
  await rejects(logits(a, a, '1' as never), TypeError, /scale/);
  await rejects(logits(new Float32Array(24) as never, a, 1), TypeError, /Tensor for a/);
  const f = (k: number) => new Float32Array(k);
  const call = (o: object) => () => native().logits({ a: f(24), b: f(16), out: f(6), n: 3, m: 2, dim: 8, scale: 1, ...o });
  await rejects(call({ out: f(5) }), RangeError, /out of length 6/);
  await rejects(call({ b: f(15) }), RangeError, /b of length 16/);
  await rejects(call({ aNorm: f(2) }), RangeError, /aNorm of length 3/);
  await rejects(call({ a: new Int32Array(24) }), TypeError, /Float32Array for a/);
  await rejects(call({ n: 2 ** 40, dim: 2 ** 40 }), RangeError, /too large|length/);
  await rejects(call({ n: -1 }), RangeError, /n/);
});

Logits.run();
