import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { l2Normalize, softmax, Tensor } from '../../src';
import { assertClose, isas, normal, onIsa, rejects } from '../helpers';
import { l2NormalizeRefF64 } from '../ref/l2_normalize';
import { softmaxRefF64 } from '../ref/softmax';

const Softmax = suite('softmax / l2_normalize');

// Bounds: exp within 2 ulp, sums over ≤ 769 terms in float: rtol 2e-6; l2: rtol 1e-6.
for (const isa of isas)
  for (const [rows, dim] of [[1, 1], [3, 7], [2, 17], [5, 63], [12, 197], [2, 769]] as const) {
    Softmax(`${isa} softmax ${rows}x${dim}`, () =>
      onIsa(isa, async () => {
        const x = normal(rows * dim, rows * 31 + dim, 5);
        const y = await softmax(new Tensor(x, [rows, dim]), { scale: 0.125 });
        assertClose(y.data, softmaxRefF64(x, rows, dim, 0.125), { atol: 1e-9, rtol: 2e-6, name: 'softmax' });
      }),
    );
    Softmax(`${isa} l2Normalize ${rows}x${dim}`, () =>
      onIsa(isa, async () => {
        const x = normal(rows * dim, rows * 17 + dim, 3, 0.2);
        const y = await l2Normalize(new Tensor(x, [rows, dim]));
        assertClose(y.data, l2NormalizeRefF64(x, rows, dim), { atol: 1e-9, rtol: 1e-6, name: 'l2' });
      }),
    );
  }

Softmax('masked (-Infinity) entries get exactly 0; an all-masked row gives zeros', async () => {
  for (const isa of isas)
    await onIsa(isa, async () => {
      const dim = 19;
      const x = normal(2 * dim, 3);
      for (let i = 0; i < dim; i += 3) x[i] = -Infinity;
      for (let i = dim; i < 2 * dim; i++) x[i] = -Infinity;
      const y = await softmax(new Tensor(x, [2, dim]));
      for (let i = 0; i < dim; i += 3) assert.is(y.data[i], 0);
      for (let i = dim; i < 2 * dim; i++) assert.is(y.data[i], 0);
      assertClose(y.data, softmaxRefF64(x, 2, dim), { atol: 1e-9, rtol: 2e-6, name: `softmax (${isa})` });
    });
});

Softmax('a zero row normalises to zeros, not NaN', async () => {
  const y = await l2Normalize(new Tensor(new Float32Array(10), [2, 5]));
  assert.ok(y.data.every((v) => v === 0));
});

Softmax('bad arguments', async () => {
  await rejects(softmax(new Tensor(normal(4, 1), [4]), { scale: Infinity }), RangeError, /finite number for scale/);
  await rejects(l2Normalize({ data: new Float32Array(4), shape: [4] } as never), TypeError, /Tensor for x but received Object/);
});

Softmax.run();
