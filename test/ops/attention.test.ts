import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { attention, attentionPacked, attentionRagged, setThreads, Tensor } from '../../src';
import { native } from '../../src/native';
import { assertClose, isas, normal, onIsa, rejects, rng } from '../helpers';
import { attentionRefF64, AttentionRefOptions, packQkv } from '../ref/attention';

const Attention = suite('attention');
// Bound: float32 dot products over headDim and float32 running sums over up to 769 keys, exp within
// 2 ulp; outputs are convex combinations of v (|v| ≲ 4). Observed: < 1e-6 absolute for unit-spread q, k;
// 1.2e-5 with sigma 4, where scores reach ~±100 and their float32 rounding alone is ~1e-5.
const TOL = { atol: 2e-5, rtol: 1e-4 };

interface Case extends AttentionRefOptions {
  sigma?: number; // spread of q and k: larger gives peakier softmax rows
  mask?: 'u8' | 'i32';
  packed?: boolean;
}

function inputs(c: Case, seed: number) {
  const n = c.batch * c.seq * c.heads * c.headDim;
  const q = normal(n, seed, c.sigma ?? 1), k = normal(n, seed + 1, c.sigma ?? 1), v = normal(n, seed + 2);
  let keyMask: Uint8Array | Int32Array | undefined;
  if (c.mask) {
    // Each batch keeps a random-length prefix (>= 1 key) plus a few random holes.
    const r = rng(seed + 3);
    keyMask = c.mask === 'u8' ? new Uint8Array(c.batch * c.seq) : new Int32Array(c.batch * c.seq);
    for (let b = 0; b < c.batch; b++) {
      const len = 1 + Math.floor(r() * c.seq);
      for (let j = 0; j < c.seq; j++) keyMask[b * c.seq + j] = j < len && (j === 0 || r() > 0.1) ? 1 + Math.floor(r() * 3) : 0;
    }
  }
  return { q, k, v, keyMask };
}

async function run(c: Case, x: ReturnType<typeof inputs>): Promise<Tensor> {
  const width = c.heads * c.headDim;
  const opts = { heads: c.heads, causal: c.causal, keyMask: x.keyMask, qRows: c.qRows, scale: c.scale };
  if (c.packed)
    return attentionPacked(new Tensor(packQkv(x.q, x.k, x.v, c.batch * c.seq, width), [c.batch, c.seq, 3 * width]), opts);
  const shape = [c.batch, c.seq, width];
  return attention(new Tensor(x.q, shape), new Tensor(x.k, shape), new Tensor(x.v, shape), opts);
}

const name = (c: Case) =>
  `b${c.batch} s${c.seq} ${c.heads}x${c.headDim}` +
  (c.packed ? ' packed' : '') + (c.mask ? ` mask:${c.mask}` : '') + (c.causal ? ' causal' : '') +
  (c.qRows !== undefined ? ` qRows=${c.qRows}` : '') + (c.sigma ? ` sigma=${c.sigma}` : '') + (c.scale ? ` scale=${c.scale}` : '');

const CASES: Case[] = [
  { batch: 1, seq: 1, heads: 1, headDim: 64 },
  { batch: 3, seq: 7, heads: 12, headDim: 17 },
  { batch: 1, seq: 63, heads: 1, headDim: 40, packed: true },
  { batch: 1, seq: 197, heads: 12, headDim: 64 },
  { batch: 1, seq: 197, heads: 12, headDim: 64, packed: true, qRows: 1 },
  { batch: 1, seq: 769, heads: 1, headDim: 64 },
  { batch: 1, seq: 769, heads: 1, headDim: 40, causal: true, mask: 'u8' },
  { batch: 3, seq: 52, heads: 8, headDim: 64, mask: 'i32' },
  { batch: 3, seq: 52, heads: 8, headDim: 64, mask: 'u8', causal: true, packed: true },
  { batch: 2, seq: 130, heads: 2, headDim: 17, causal: true },
  { batch: 2, seq: 130, heads: 2, headDim: 17, causal: true, qRows: 5 },
  { batch: 3, seq: 63, heads: 2, headDim: 40, sigma: 4, mask: 'u8' },
  { batch: 1, seq: 7, heads: 2, headDim: 8, scale: 0.05 },
  { batch: 2, seq: 15, heads: 3, headDim: 1, qRows: 3 },
];

CASES.forEach((c, idx) => {
  Attention(name(c), async () => {
    const x = inputs(c, 100 * idx + c.seq);
    const want = attentionRefF64(x.q, x.k, x.v, { ...c, keyMask: x.keyMask });
    for (const isa of isas)
      await onIsa(isa, async () => {
        const got = await run(c, x);
        assert.equal(got.shape, [c.batch, c.qRows ?? c.seq, c.heads * c.headDim]);
        assertClose(got.data, want, { ...TOL, name: `out (${isa})` });
      });
  });
});

Attention('padding gives bit-identical outputs for the real tokens', async () => {
  const heads = 8, headDim = 64, width = heads * headDim, padded = 77, lengths = [52, 13, 77, 64, 65];
  const batch = lengths.length;
  const q = normal(batch * padded * width, 7), k = normal(batch * padded * width, 8), v = normal(batch * padded * width, 9);
  const keyMask = new Int32Array(batch * padded);
  lengths.forEach((len, b) => keyMask.fill(1, b * padded, b * padded + len));
  const shape = [batch, padded, width];
  for (const isa of isas)
    for (const causal of [false, true])
      await onIsa(isa, async () => {
        const all = await attention(new Tensor(q, shape), new Tensor(k, shape), new Tensor(v, shape), { heads, keyMask, causal });
        for (const [b, len] of lengths.entries()) {
          const part = (x: Float32Array) => new Tensor(x.slice(b * padded * width, (b * padded + len) * width), [1, len, width]);
          const alone = await attention(part(q), part(k), part(v), { heads, causal });
          const real = all.data.subarray(b * padded * width, (b * padded + len) * width);
          for (let i = 0; i < real.length; i++)
            if (real[i] !== alone.data[i])
              assert.unreachable(`${isa} causal=${causal} batch ${b} (length ${len}): [${i}] padded ${real[i]} != unpadded ${alone.data[i]}`);
        }
      });
});

Attention('rows whose keys are all masked are 0, not NaN', async () => {
  const c: Case = { batch: 3, seq: 70, heads: 2, headDim: 17 };
  const x = inputs(c, 31);
  const keyMask = new Uint8Array(c.batch * c.seq).fill(1);
  keyMask.fill(0, 70, 140); // batch 1: every key masked
  keyMask.fill(0, 140, 141); // batch 2: key 0 masked, so with causal, query 0 sees nothing
  for (const isa of isas)
    for (const causal of [false, true])
      await onIsa(isa, async () => {
        const got = await run({ ...c, causal }, { ...x, keyMask });
        const want = attentionRefF64(x.q, x.k, x.v, { ...c, causal, keyMask });
        assertClose(got.data, want, { ...TOL, name: `out (${isa}, causal=${causal})` });
        const width = c.heads * c.headDim;
        assert.ok(got.data.subarray(70 * width, 140 * width).every((y) => y === 0), 'batch 1 is all 0');
        if (causal) assert.ok(got.data.subarray(140 * width, 141 * width).every((y) => y === 0), 'batch 2 query 0 is 0');
      });
});

Attention('1 thread and all threads agree', async () => {
  const c: Case = { batch: 1, seq: 197, heads: 3, headDim: 64, mask: 'u8' };
  const x = inputs(c, 5);
  for (const isa of isas)
    await onIsa(isa, async () => {
      try {
        setThreads(1);
        const one = await run(c, x);
        setThreads(0);
        const all = await run(c, x);
        assertClose(all.data, one.data, { atol: 1e-6, rtol: 1e-6, name: `threads (${isa})` });
      } finally {
        setThreads(0);
      }
    });
});

Attention('bad arguments name the argument', async () => {
  const t = (shape: number[]) => new Tensor(normal(shape.reduce((a, b) => a * b, 1), 1), shape);
  const q = t([2, 5, 8]);
  await rejects(attention(q, t([2, 5, 8]), t([2, 4, 8]), { heads: 2 }), RangeError, /v of shape \[2, 5, 8\]/);
  await rejects(attention(t([5, 8]), t([5, 8]), t([5, 8]), { heads: 2 }), RangeError, /q of shape \[batch, seq/);
  await rejects(attention(q, q, q, { heads: 3 }), RangeError, /multiple of heads/);
  await rejects(attention(q, q, q, { heads: 0 }), RangeError, /heads/);
  await rejects(attention(q, q, q, {} as never), TypeError, /heads/);
  await rejects(attention(q, q, q, null as never), TypeError, /options/);
  for (const scale of [NaN, Infinity, 0, -1]) await rejects(attention(q, q, q, { heads: 2, scale }), RangeError, /scale/);
  await rejects(attention(q, q, q, { heads: 2, scale: '1' as never }), TypeError, /scale/);
  await rejects(attention(q, q, q, { heads: 2, qRows: 6 }), RangeError, /qRows/);
  await rejects(attention(q, q, q, { heads: 2, qRows: 1.5 }), RangeError, /qRows/);
  await rejects(attention(q, q, q, { heads: 2, causal: 1 as never }), TypeError, /causal/);
  await rejects(attention(q, q, q, { heads: 2, keyMask: new Float32Array(10) as never }), TypeError, /keyMask/);
  await rejects(attention(q, q, q, { heads: 2, keyMask: new Int32Array(9) }), RangeError, /keyMask of length 10/);
  await rejects(attention(q, q, q, { heads: 2, keyMask: new Tensor(new Int32Array(10), [5, 2], 'int32') }), RangeError, /keyMask of shape \[2, 5\]/);
  await rejects(attention(new Float32Array(80) as never, q, q, { heads: 2 }), TypeError, /Tensor for q/);
  await rejects(attention(new Tensor(new Int32Array(80), [2, 5, 8], 'int32') as never, q, q, { heads: 2 }), TypeError, /float32 for q/);
  await rejects(attentionPacked(t([2, 5, 8]), { heads: 2 }), RangeError, /qkv of shape/);
  // The binding re-checks lengths, so a direct call with inconsistent sizes is an error, not a crash.
  const f = (n: number) => new Float32Array(n);
  const call = (o: object) => () => native().attention({ batch: 2, seq: 5, heads: 2, headDim: 4, qRows: 5, scale: 0.5, q: f(80), k: f(80), v: f(80), out: f(80), ...o });
  await rejects(call({ k: f(79) }), RangeError, /k of length 80/);
  await rejects(call({ out: f(40) }), RangeError, /out of length 80/);
  await rejects(call({ qRows: 6 }), RangeError, /qRows/);
  await rejects(call({ qkv: f(200) }), RangeError, /qkv of length 240/);
  await rejects(call({ keyMask: new Uint8Array(9) }), RangeError, /keyMask of length 10/);
  await rejects(call({ keyMask: new Uint16Array(10) }), TypeError, /keyMask/);
  await rejects(call({ v: new Float64Array(80) }), TypeError, /Float32Array for v/);
  await rejects(call({ heads: 2 ** 40, headDim: 2 ** 40 }), RangeError, /too large|length/);
  await rejects(call({ scale: NaN }), RangeError, /scale/);
});

Attention('empty shapes', async () => {
  const e = new Tensor(new Float32Array(0), [0, 4, 8]);
  assert.equal((await attention(e, e, e, { heads: 2 })).shape, [0, 4, 8]);
  const z = new Tensor(new Float32Array(0), [2, 0, 8]);
  assert.equal((await attention(z, z, z, { heads: 2 })).shape, [2, 0, 8]);
});

Attention('out: the result is written into the given tensor, checked for shape and overlap', async () => {
  const [b, seq, heads, hd] = [2, 7, 3, 5], width = heads * hd;
  const qkv = new Tensor(normal(b * seq * 3 * width, 91), [b, seq, 3 * width]);
  const keyMask = Int32Array.from({ length: b * seq }, (_, i) => (i % seq < 5 ? 1 : 0));
  const want = await attentionPacked(qkv, { heads, keyMask });
  const out = new Tensor(new Float32Array(b * seq * width).fill(Number.NaN), [b, seq, width]);
  const got = await attentionPacked(qkv, { heads, out, keyMask });
  assert.is(got, out);
  assert.equal(out.data, want.data);
  const first = new Tensor(new Float32Array(b * width), [b, 1, width]);
  await attentionPacked(qkv, { heads, keyMask, qRows: 1, out: first });
  for (let i = 0; i < b; i++) assert.equal(first.data.subarray(i * width, (i + 1) * width), want.data.subarray(i * seq * width, i * seq * width + width));
  const q = new Tensor(normal(b * seq * width, 92), [b, seq, width]);
  const sep = new Tensor(new Float32Array(b * seq * width), [b, seq, width]);
  assert.equal((await attention(q, q, q, { heads, out: sep })).data, (await attention(q, q, q, { heads })).data);
  await rejects(attentionPacked(qkv, { heads, out: new Tensor(new Float32Array(b * width), [b, 1, width]) }), RangeError, /out/);
  await rejects(attention(q, q, q, { heads, out: q }), RangeError, /share storage/);
});

// Ragged batches: each sequence is checked against the float64 reference run on it alone.
const RAGGED: { lengths: number[]; heads: number; headDim: number; causal?: boolean; mask?: boolean; firstRowOnly?: boolean }[] = [
  { lengths: [1], heads: 1, headDim: 64 },
  { lengths: [7, 1, 63], heads: 12, headDim: 17 },
  { lengths: [16, 31, 22, 25, 18, 1, 52, 20], heads: 12, headDim: 64 },
  { lengths: [16, 31, 22, 25, 18, 1, 52, 20], heads: 12, headDim: 64, firstRowOnly: true },
  { lengths: [77, 14, 20, 9], heads: 8, headDim: 64, causal: true },
  { lengths: [197, 7, 130], heads: 2, headDim: 40, mask: true },
  { lengths: [769, 3], heads: 1, headDim: 40, causal: true, mask: true },
  { lengths: [5, 63, 2], heads: 3, headDim: 8, mask: true, firstRowOnly: true },
];

RAGGED.forEach((c, idx) => {
  const label = `ragged [${c.lengths.join(', ')}] ${c.heads}x${c.headDim}` + (c.causal ? ' causal' : '') + (c.mask ? ' mask' : '') + (c.firstRowOnly ? ' firstRowOnly' : '');
  Attention(label, async () => {
    const width = c.heads * c.headDim, rows = c.lengths.reduce((a, b) => a + b, 0);
    const starts = new Int32Array(c.lengths.length + 1);
    c.lengths.forEach((len, b) => (starts[b + 1] = starts[b] + len));
    const q = normal(rows * width, 700 + idx), k = normal(rows * width, 800 + idx), v = normal(rows * width, 900 + idx);
    const r = rng(1000 + idx);
    const keyMask = c.mask ? Int32Array.from({ length: rows }, (_, i) => (starts.includes(i) || r() > 0.3 ? 1 : 0)) : undefined;
    const want: number[] = [];
    c.lengths.forEach((len, b) => {
      const part = (x: Float32Array) => x.subarray(starts[b] * width, starts[b + 1] * width);
      const one = attentionRefF64(part(q), part(k), part(v), {
        batch: 1, seq: len, heads: c.heads, headDim: c.headDim, causal: c.causal, qRows: c.firstRowOnly ? 1 : len,
        keyMask: keyMask?.subarray(starts[b], starts[b + 1]),
      });
      want.push(...one);
    });
    const qkv = new Tensor(packQkv(q, k, v, rows, width), [rows, 3 * width]);
    for (const isa of isas)
      await onIsa(isa, async () => {
        const got = await attentionRagged(qkv, { heads: c.heads, seqStarts: starts, causal: c.causal, keyMask, firstRowOnly: c.firstRowOnly });
        assert.equal(got.shape, [c.firstRowOnly ? c.lengths.length : rows, width]);
        assertClose(got.data, want, { ...TOL, name: `out (${isa})` });
      });
  });
});

Attention('ragged batches equal padded ones bit for bit on the real rows', async () => {
  const lengths = [16, 31, 22, 25, 18, 1, 52, 20], heads = 12, hd = 64, width = heads * hd, seq = 52;
  const rows = lengths.reduce((a, b) => a + b, 0);
  const padded = normal(lengths.length * seq * 3 * width, 31);
  const keyMask = new Int32Array(lengths.length * seq);
  const ragged = new Float32Array(rows * 3 * width), starts = new Int32Array(lengths.length + 1);
  lengths.forEach((len, b) => {
    starts[b + 1] = starts[b] + len;
    keyMask.fill(1, b * seq, b * seq + len);
    ragged.set(padded.subarray(b * seq * 3 * width, (b * seq + len) * 3 * width), starts[b] * 3 * width);
  });
  for (const isa of isas)
    await onIsa(isa, async () => {
      for (const causal of [false, true]) {
        const full = await attentionPacked(new Tensor(padded, [lengths.length, seq, 3 * width]), { heads, keyMask, causal });
        const got = await attentionRagged(new Tensor(ragged, [rows, 3 * width]), { heads, seqStarts: starts, causal });
        lengths.forEach((len, b) =>
          assert.equal(got.data.subarray(starts[b] * width, starts[b + 1] * width), full.data.subarray(b * seq * width, (b * seq + len) * width), `${isa} causal=${causal} text ${b}`));
      }
    });
});

// query: the rows computed get their q from a tensor of their own (a last layer projects q for the
// class token alone); qkv's q part is never read, so it is filled with NaN here.
Attention('query: q of the rows computed from its own tensor, bit for bit', async () => {
  const heads = 3, hd = 20, width = heads * hd;
  const lengths = [5, 1, 17, 9], starts = new Int32Array(lengths.length + 1);
  lengths.forEach((len, b) => (starts[b + 1] = starts[b] + len));
  const rows = starts[lengths.length], keyMask = new Uint8Array(rows).fill(1);
  keyMask[3] = keyMask[12] = 0;
  const qkv = normal(rows * 3 * width, 41);
  const noQ = qkv.slice();
  for (let r = 0; r < rows; r++) noQ.fill(NaN, r * 3 * width, r * 3 * width + width);
  const qOf = (row: number) => qkv.subarray(row * 3 * width, row * 3 * width + width);
  // A ragged batch, each sequence's first row.
  const firstRows = new Float32Array(lengths.length * width);
  lengths.forEach((_, b) => firstRows.set(qOf(starts[b]), b * width));
  // Fixed-length sequences, the first qRows rows of each.
  const batch = 3, seq = 11, qRows = 2, packed = normal(batch * seq * 3 * width, 43), packedNoQ = packed.slice();
  const firstPacked = new Float32Array(batch * qRows * width);
  for (let r = 0; r < batch * seq; r++) packedNoQ.fill(NaN, r * 3 * width, r * 3 * width + width);
  for (let b = 0; b < batch; b++)
    for (let i = 0; i < qRows; i++) firstPacked.set(packed.subarray((b * seq + i) * 3 * width, (b * seq + i) * 3 * width + width), (b * qRows + i) * width);
  for (const isa of isas)
    await onIsa(isa, async () => {
      for (const causal of [false, true]) {
        const want = await attentionRagged(new Tensor(qkv, [rows, 3 * width]), { heads, seqStarts: starts, keyMask, causal, firstRowOnly: true });
        const got = await attentionRagged(new Tensor(noQ, [rows, 3 * width]), {
          heads, seqStarts: starts, keyMask, causal, firstRowOnly: true, query: new Tensor(firstRows, [lengths.length, width]),
        });
        assert.equal(got.data, want.data, `ragged ${isa} causal=${causal}`);
        const wantP = await attentionPacked(new Tensor(packed, [batch, seq, 3 * width]), { heads, qRows, causal });
        const gotP = await attentionPacked(new Tensor(packedNoQ, [batch, seq, 3 * width]), {
          heads, qRows, causal, query: new Tensor(firstPacked, [batch, qRows, width]),
        });
        assert.equal(gotP.data, wantP.data, `packed ${isa} causal=${causal}`);
      }
    });
  const t = new Tensor(qkv, [rows, 3 * width]);
  await rejects(attentionRagged(t, { heads, seqStarts: starts, query: new Tensor(firstRows, [lengths.length, width]) }), RangeError, /firstRowOnly with query/);
  await rejects(attentionRagged(t, { heads, seqStarts: starts, firstRowOnly: true, query: new Tensor(firstRows.subarray(width), [3, width]) }), RangeError, /query of shape \[4, 60\]/);
  await rejects(attentionPacked(new Tensor(packed, [batch, seq, 3 * width]), { heads, query: new Tensor(firstPacked, [batch, qRows, width]) }), RangeError, /query of shape \[3, 11, 60\]/);
  const out = new Tensor(new Float32Array(batch * qRows * width), [batch, qRows, width]);
  await rejects(attentionPacked(new Tensor(packed, [batch, seq, 3 * width]), { heads, qRows, query: out, out }), RangeError, /not to share storage/);
  // The binding checks the query's length and, in a ragged batch, that only first rows are asked for.
  const f = (n: number) => new Float32Array(n), ok = Int32Array.of(0, 4, 10);
  const call = (o: object) => () =>
    native().attention({ batch: 2, seq: 6, heads: 2, headDim: 4, qRows: 1, scale: 0.5, qkv: f(240), out: f(16), seqStarts: ok, query: f(16), ...o });
  await call({})();
  await rejects(call({ query: f(15) }), RangeError, /query of length 16/);
  await rejects(call({ qRows: 6, out: f(80) }), RangeError, /query needs qRows = 1/);
});

Attention('ragged: bad seqStarts and masks are errors naming them', async () => {
  const qkv = new Tensor(normal(10 * 24, 5), [10, 24]);
  const ok = Int32Array.of(0, 4, 10);
  await rejects(attentionRagged(qkv, { heads: 2, seqStarts: [0, 10] as never }), TypeError, /seqStarts/);
  await rejects(attentionRagged(qkv, { heads: 2, seqStarts: Int32Array.of(0, 4, 4, 10) }), RangeError, /sequence 1 has 0/);
  await rejects(attentionRagged(qkv, { heads: 2, seqStarts: Int32Array.of(0, 4, 9) }), RangeError, /seqStarts from 0 to the 10 rows/);
  await rejects(attentionRagged(qkv, { heads: 2, seqStarts: Int32Array.of(1, 4, 10) }), RangeError, /seqStarts/);
  await rejects(attentionRagged(qkv, { heads: 2, seqStarts: ok, keyMask: new Int32Array(9) }), RangeError, /keyMask of length 10/);
  await rejects(attentionRagged(new Tensor(normal(2 * 10 * 24, 5), [2, 10, 24]), { heads: 2, seqStarts: ok }), RangeError, /\[rows, 3/);
  // The binding checks the starts too: a direct call cannot read past the buffers.
  const f = (n: number) => new Float32Array(n);
  const call = (o: object) => () =>
    native().attention({ batch: 2, seq: 6, heads: 2, headDim: 4, qRows: 6, scale: 0.5, qkv: f(240), out: f(80), seqStarts: ok, ...o });
  await call({})();
  await rejects(call({ seqStarts: Int32Array.of(0, 4, 11) }), RangeError, /sequence 1/);
  await rejects(call({ seqStarts: Int32Array.of(0, 7, 10) }), RangeError, /sequence 0 holds 7/);
  await rejects(call({ seqStarts: Int32Array.of(0, 10) }), RangeError, /seqStarts of length 3/);
  await rejects(call({ seqStarts: Int32Array.of(2, 4, 10) }), RangeError, /seqStarts\[0\]/);
  await rejects(call({ qRows: 3 }), RangeError, /qRows of 1 or seq/);
  await rejects(call({ qRows: 1 }), RangeError, /out of length 16/);
  await rejects(call({ qkv: f(216) }), RangeError, /qkv of length 240/);
});

Attention.run();
