/**
 * lastLayerQkv: a last layer that needs some rows only projects k and v for every row and q for
 * those rows alone. Each value is the one the whole q | k | v projection gives, bit for bit; a width
 * that is not a multiple of 16 runs the whole projection instead, and query still holds the q rows.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { linear, Tensor } from '../../src';
import { lastLayerQkv } from '../../src/models/blocks';
import { OpQueue } from '../../src/models/op_queue';
import { packQkv } from '../../src/models/packing';
import { Workspace } from '../../src/models/workspace';
import { normal } from '../helpers';

const LastLayer = suite('last layer q | k | v');

for (const [width, dtype] of [[24, 'float32'], [32, 'float32'], [128, 'float32'], [64, 'bfloat16']] as const) {
  LastLayer(`width ${width} ${dtype}`, async () => {
    const lin = (seed: number) => ({ weight: new Tensor(normal(width * width, seed), [width, width]), bias: new Tensor(normal(width, seed + 1), [width]) });
    const l = await packQkv(lin(1), lin(3), lin(5), { dtype, inPlace: false });
    const rows = 11, index = [0, 4, 10];
    const h = new Tensor(normal(rows * width, 7), [rows, width]);
    const full = await linear(h, l.weight, { bias: l.bias });
    const q = new OpQueue();
    const got = lastLayerQkv(h, l, index, new Workspace(), q);
    await q.done();
    assert.equal(got.qkv.shape, [rows, 3 * width]);
    assert.equal(got.picked.data, Float32Array.from(index.flatMap((r) => [...h.data.subarray(r * width, (r + 1) * width)])));
    for (let r = 0; r < rows; r++) {
      const row = (t: Tensor, c0: number, c1: number) => t.data.subarray(r * 3 * width + c0, r * 3 * width + c1);
      assert.equal(row(got.qkv, width, 3 * width), row(full, width, 3 * width), `k | v of row ${r}`);
      if (width % 16 !== 0) assert.equal(row(got.qkv, 0, width), row(full, 0, width), `q of row ${r}`);
    }
    assert.equal(got.query.shape, [index.length, width]);
    index.forEach((r, i) =>
      assert.equal(got.query.data.subarray(i * width, (i + 1) * width), full.data.subarray(r * 3 * width, r * 3 * width + width), `q of row ${r}`));
  });
}

LastLayer('a weight that is not q | k | v of the width is refused', async () => {
  const width = 16, lin = (seed: number) => ({ weight: new Tensor(normal(width * width, seed), [width, width]), bias: new Tensor(normal(width, seed + 1), [width]) });
  const l = await packQkv(lin(1), lin(3), lin(5), { dtype: 'float32', inPlace: false });
  const h = new Tensor(normal(4 * 32, 7), [4, 32]);
  assert.throws(() => lastLayerQkv(h, l, [0], new Workspace(), new OpQueue()), (e: Error & { code?: string }) => e.code === 'E_SHAPE' && /96 rows for width 32 but received 48/.test(e.message));
});

LastLayer.run();
