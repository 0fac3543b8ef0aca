import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { embedding, gatherRows, Tensor } from '../../src';
import { assertClose, isas, normal, onIsa, rejects, rng } from '../helpers';

const Embedding = suite('embedding / gather_rows');

function ids(n: number, limit: number, seed: number): Int32Array {
  const r = rng(seed);
  return Int32Array.from({ length: n }, () => Math.floor(r() * limit));
}

for (const isa of isas)
  for (const [batch, seq, dim] of [[1, 1, 1], [2, 7, 17], [3, 52, 768], [1, 77, 63]] as const) {
    Embedding(`${isa} token + type + position ${batch}x${seq}x${dim}`, () =>
      onIsa(isa, async () => {
        const vocab = 97, maxPos = seq + 5, nTypes = 2;
        const tok = normal(vocab * dim, 1), pos = normal(maxPos * dim, 2), typ = normal(nTypes * dim, 3);
        const id = ids(batch * seq, vocab, seq), tid = ids(batch * seq, nTypes, seq + 1);
        const y = await embedding(
          new Tensor(id, [batch, seq], 'int32'),
          { tokens: new Tensor(tok, [vocab, dim]), positions: new Tensor(pos, [maxPos, dim]), types: new Tensor(typ, [nTypes, dim]) },
          { typeIds: new Tensor(tid, [batch, seq], 'int32'), positionOffset: 2 },
        );
        const want = new Float64Array(batch * seq * dim);
        for (let r = 0; r < batch * seq; r++)
          for (let i = 0; i < dim; i++)
            want[r * dim + i] = Math.fround(tok[id[r] * dim + i] + typ[tid[r] * dim + i]) + pos[(2 + (r % seq)) * dim + i];
        assertClose(y.data, want, { atol: 0, rtol: 6e-8, name: 'embedding' });
      }),
    );
  }

Embedding('explicit position ids, no type table', async () => {
  const dim = 9, vocab = 11, maxPos = 8;
  const tok = normal(vocab * dim, 4), pos = normal(maxPos * dim, 5);
  const id = Int32Array.of(1, 10, 0, 5), pid = Int32Array.of(2, 3, 7, 0);
  const y = await embedding(new Tensor(id, [2, 2], 'int32'), { tokens: new Tensor(tok, [vocab, dim]), positions: new Tensor(pos, [maxPos, dim]) },
    { positionIds: new Tensor(pid, [2, 2], 'int32') });
  const want = Array.from({ length: 4 * dim }, (_, j) => tok[id[Math.floor(j / dim)] * dim + (j % dim)] + pos[pid[Math.floor(j / dim)] * dim + (j % dim)]);
  assertClose(y.data, want, { atol: 0, rtol: 6e-8, name: 'embedding' });
});

Embedding('gatherRows picks rows', async () => {
  const x = normal(5 * 13, 6);
  const y = await gatherRows(new Tensor(x, [5, 13]), [4, 0, 4]);
  assert.equal(Array.from(y.data.subarray(0, 13)), Array.from(x.subarray(52, 65)));
  assert.equal(Array.from(y.data.subarray(13, 26)), Array.from(x.subarray(0, 13)));
  assert.equal(y.shape, [3, 13]);
});

Embedding('out-of-range indices are refused, naming the index', async () => {
  const tables = { tokens: new Tensor(normal(4 * 3, 1), [4, 3]), positions: new Tensor(normal(2 * 3, 1), [2, 3]) };
  await rejects(embedding(new Tensor(Int32Array.of(0, 4), [1, 2], 'int32'), tables), RangeError, /ids\[1\] = 4 is outside the vocabulary \[0, 4\)/);
  await rejects(embedding(new Tensor(Int32Array.of(0, -1), [1, 2], 'int32'), tables), RangeError, /ids\[1\] = -1/);
  await rejects(embedding(new Tensor(Int32Array.of(0, 1, 2), [1, 3], 'int32'), tables), RangeError, /exceed the position table/);
  await rejects(gatherRows(new Tensor(normal(6, 1), [2, 3]), [2]), RangeError, /index\[0\]/);
  await rejects(embedding(new Tensor(Float32Array.of(0, 1), [1, 2]) as never, tables), TypeError, /int32 for ids but received float32/);
});

Embedding.run();
