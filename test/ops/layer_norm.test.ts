import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { layerNorm, Tensor } from '../../src';
import { assertClose, isas, normal, onIsa, rejects, uniform } from '../helpers';
import { layerNormRefF64 } from '../ref/layer_norm';

const LayerNorm = suite('layer_norm');
// Bound: float32 storage and accumulation over up to 769 terms; observed < 2e-6 relative.
const TOL = { atol: 1e-5, rtol: 1e-5 };

for (const isa of isas)
  for (const [rows, dim] of [[1, 1], [3, 7], [2, 17], [5, 63], [197, 768], [7, 769], [1, 197]] as const) {
    LayerNorm(`${isa} ${rows}x${dim}`, () =>
      onIsa(isa, async () => {
        const seed = rows * 1000 + dim;
        const x = normal(rows * dim, seed, 2, 0.5), g = uniform(dim, seed + 1, 0.5, 1.5), b = uniform(dim, seed + 2);
        const y = await layerNorm(new Tensor(x, [rows, dim]), new Tensor(g, [dim]), new Tensor(b, [dim]), { eps: 1e-5 });
        assertClose(y.data, layerNormRefF64(x, g, b, rows, dim, 1e-5).y, { ...TOL, name: 'y' });
      }),
    );
    LayerNorm(`${isa} ${rows}x${dim} fused residual`, () =>
      onIsa(isa, async () => {
        const seed = rows * 7 + dim;
        const x = normal(rows * dim, seed), res = normal(rows * dim, seed + 9, 3), g = uniform(dim, seed + 1, 0.5, 1.5);
        const out = await layerNorm(new Tensor(x, [rows, dim]), new Tensor(g, [dim]), null, {
          eps: 1e-12,
          residual: new Tensor(res, [rows, dim]),
        });
        const ref = layerNormRefF64(x, g, null, rows, dim, 1e-12, res);
        assertClose(out.sum.data, ref.sum, { atol: 0, rtol: 1e-7, name: 'sum' });
        assertClose(out.y.data, ref.y, { ...TOL, name: 'y' });
      }),
    );
  }

LayerNorm('large mean, small spread stays accurate', async () => {
  const dim = 768;
  const x = normal(dim, 5, 0.01, 100);
  const g = uniform(dim, 6, 0.5, 1.5);
  for (const isa of isas)
    await onIsa(isa, async () => {
      const y = await layerNorm(new Tensor(x, [1, dim]), new Tensor(g, [dim]), null);
      assertClose(y.data, layerNormRefF64(x, g, null, 1, dim, 1e-5).y, { atol: 2e-3, rtol: 2e-3, name: `y (${isa})` });
    });
});

LayerNorm('out: the result is written into the given tensor, checked for shape and overlap', async () => {
  const [rows, dim] = [7, 63];
  const x = new Tensor(normal(rows * dim, 93), [rows, dim]);
  const g = new Tensor(normal(dim, 94), [dim]), b = new Tensor(normal(dim, 95), [dim]);
  const want = await layerNorm(x, g, b, { eps: 1e-5 });
  const out = new Tensor(new Float32Array(rows * dim).fill(Number.NaN), [rows, dim]);
  const got = await layerNorm(x, g, b, { eps: 1e-5, out });
  assert.is(got, out);
  assert.equal(out.data, want.data);
  await rejects(layerNorm(x, g, b, { out: new Tensor(new Float32Array(dim), [1, dim]) }), RangeError, /out/);
  await rejects(layerNorm(x, g, b, { out: x }), RangeError, /share storage/);
});

LayerNorm('bad arguments name the argument', async () => {
  const x = new Tensor(uniform(6, 1), [2, 3]);
  await rejects(layerNorm(x, new Tensor(uniform(4, 2), [4]), null), RangeError, /gamma of shape \[3\] but received \[4\]/);
  await rejects(layerNorm(x, new Tensor(uniform(3, 2), [3]), null, { eps: NaN }), RangeError, /finite number for eps/);
  await rejects(layerNorm(new Float32Array(6) as never, new Tensor(uniform(3, 2), [3]), null), TypeError, /Tensor for x/);
  await rejects(
    layerNorm(x, new Tensor(uniform(3, 2), [3]), null, { residual: new Tensor(uniform(3, 3), [1, 3]) }),
    RangeError,
    /residual of shape \[2, 3\]/,
  );
});

LayerNorm.run();
