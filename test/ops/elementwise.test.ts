import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { add, gelu, quickGelu, Tensor } from '../../src';
import { assertClose, AWKWARD, isas, normal, onIsa, rejects, uniform } from '../helpers';
import { erfcF64, geluF64, quickGeluF64 } from '../ref/elementwise';

const Elementwise = suite('elementwise');

Elementwise('the float64 erfc reference is itself right', () => {
  // Known values: erfc(0)=1, erfc(1)=0.157299207050285, erfc(3)=2.20904969985854e-5, erfc(6)=2.15197367124989e-17
  assertClose([erfcF64(0), erfcF64(1), erfcF64(3), erfcF64(6), erfcF64(-1)],
    [1, 0.157299207050285, 2.20904969985854e-5, 2.15197367124989e-17, 1.842700792949715], { atol: 0, rtol: 1e-12, name: 'erfc' });
});

// Bounds: gelu's erfc fit is good to ~1.2e-7 relative, plus float rounding of x²: rtol 2e-6 over
// x ∈ [-16, 16] (the far negative tail included, where gelu is ~1e-50 and must not turn into noise).
for (const isa of isas)
  for (const n of [...AWKWARD, 4096 + 3, 70000]) {
    Elementwise(`${isa} gelu / quick_gelu n=${n}`, () =>
      onIsa(isa, async () => {
        const x = normal(n, n, 4);
        if (n > 2) (x[0] = -16), (x[1] = 16), (x[2] = 0);
        const g = await gelu(new Tensor(x, [n]));
        assertClose(g.data, Array.from(x, geluF64), { atol: 1e-37, rtol: 2e-6, name: 'gelu' });
        const q = await quickGelu(new Tensor(x, [n]));
        assertClose(q.data, Array.from(x, quickGeluF64), { atol: 1e-37, rtol: 2e-6, name: 'quick_gelu' });
      }),
    );
    Elementwise(`${isa} add n=${n} (full and row-broadcast)`, () =>
      onIsa(isa, async () => {
        const a = normal(n, n + 1), b = normal(n, n + 2);
        const y = await add(new Tensor(a, [n]), new Tensor(b, [n]));
        assertClose(y.data, Array.from(a, (v, i) => v + b[i]), { atol: 0, rtol: 6e-8, name: 'a+b' });
        const rows = 3, bias = uniform(n, n + 3);
        const ar = normal(rows * n, n + 4);
        const yr = await add(new Tensor(ar, [rows, n]), new Tensor(bias, [n]));
        assertClose(yr.data, Array.from(ar, (v, i) => v + bias[i % n]), { atol: 0, rtol: 6e-8, name: 'a+bias' });
      }),
    );
  }

Elementwise('bad arguments', async () => {
  await rejects(add(new Tensor(uniform(6, 1), [2, 3]), new Tensor(uniform(2, 1), [2])), RangeError, /b of shape \[2, 3\] or a trailing part/);
  await rejects(gelu(new Tensor(new Int32Array(3), [3], 'int32') as never), TypeError, /float32 for x but received int32/);
  assert.throws(() => new Tensor(new Float32Array(5), [2, 3]), /length 6 for shape \[2, 3\] but received length 5/);
});

Elementwise.run();
