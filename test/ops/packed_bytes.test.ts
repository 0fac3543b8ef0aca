/**
 * A packed weight's bytes as one block (the packed-weight cache): copyPacked writes the panels one
 * after another, adoptPacked makes a weight over such bytes without copying them (in memory, or in a
 * mapped file), and linear() on it gives bit for bit what the original weight gives, on every ISA,
 * whether that weight was packed as a copy, in place or in parts. The bytes are the same whatever ISA
 * packed them (why packedLayoutId() names none), and an adopted weight keeps its memory alive.
 * packInto writes those same bytes straight into a buffer, for the weight cache's streaming build.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { linear, packWeight, packWeightParts, PackedWeight, Tensor } from '../../src';
import { mapFile } from '../../src/io/mapped';
import { native } from '../../src/native';
import { adoptPacked, copyPacked, packedBytes, packedBytesFor, packedLayoutId, packInto, panelWidth, WeightDType } from '../../src/ops/gemm';
import { isas, normal, onIsa, tempDir, throwsCode, rejectsCode, uniform } from '../helpers';

const Packed = suite('packed bytes');
const dir = tempDir('clipkit-packed-');

const NS = [16, 48, 768 + 16];
const KS = [1, 7, 63, 197, 769];
const DTYPES: WeightDType[] = ['float32', 'bfloat16'];
type Mode = 'copy' | 'inPlace' | 'parts';
const MODES: Mode[] = ['copy', 'inPlace', 'parts'];

/** The layout stated independently: 16-column panels, fp32 [k][16], bf16 [k/2][16][2] with k padded to even. */
function expectedBytes(n: number, k: number, dtype: WeightDType): number {
  const cols = Math.ceil(n / 16) * 16;
  return dtype === 'float32' ? cols * k * 4 : cols * Math.ceil(k / 2) * 2 * 2;
}

/** Packs a weight [n, k] (parts: q | k | v of n rows each, lying apart and out of order in one buffer). */
async function packed(mode: Mode, n: number, k: number, dtype: WeightDType, seed: number): Promise<PackedWeight> {
  if (mode !== 'parts') return packWeight(new Tensor(normal(n * k, seed, 0.3), [n, k]), { dtype, inPlace: mode === 'inPlace' });
  const shared = new Float32Array(3 * n * k + 48);
  const at = [n * k + 16, 2 * n * k + 48, 0];
  const parts = at.map((a, i) => {
    const v = shared.subarray(a, a + n * k);
    v.set(normal(n * k, seed + i, 0.3));
    return new Tensor(v, [n, k]);
  });
  return packWeightParts(parts, { dtype, inPlace: true });
}

/**
 * The first offset into buf where `packedBytesFor(n, k, dtype)` bytes start at a 64-byte-aligned
 * address. JavaScript cannot see addresses, so each of the 64 offsets is tried with adoptPacked,
 * which checks the alignment.
 */
function alignedOffset(buf: ArrayBuffer, n: number, k: number, dtype: WeightDType): number {
  const bytes = packedBytesFor(n, k, dtype);
  for (let off = 0; off < 64; off++) {
    try {
      adoptPacked(new Uint8Array(buf, off, bytes), n, k, dtype);
      return off;
    } catch (err) {
      if ((err as { code?: string }).code !== 'E_ARG') throw err;
    }
  }
  throw new Error('no 64-byte-aligned offset in the buffer');
}

/** A fresh view, 64-byte aligned, of the packed size of [n, k]. */
function alignedView(n: number, k: number, dtype: WeightDType): Uint8Array {
  const bytes = packedBytesFor(n, k, dtype), buf = new ArrayBuffer(bytes + 64);
  return new Uint8Array(buf, alignedOffset(buf, n, k, dtype), bytes);
}

const bitsEqual = (a: Float32Array, b: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** linear() on `got` gives bit for bit linear() on `want`, on every ISA, with a bias and an activation. */
async function sameResults(got: PackedWeight, want: PackedWeight, what: string): Promise<void> {
  const m = 5, x = new Tensor(normal(m * want.k, want.n + want.k, 1), [m, want.k]);
  const bias = new Tensor(uniform(want.n, want.k), [want.n]);
  for (const isa of isas)
    await onIsa(isa, async () => {
      const a = await linear(x, want, { bias, activation: 'gelu' }), b = await linear(x, got, { bias, activation: 'gelu' });
      assert.ok(bitsEqual(a.data, b.data), `${what} (${isa}): results differ`);
    });
}

/** Writes the blocks into a new file at offsets that are multiples of 4096 after a 4096-byte header; returns the offsets. */
function writeAligned(file: string, blocks: Uint8Array[]): number[] {
  const fd = openSync(file, 'w');
  const header = new Uint8Array(4096).fill(0xa5);
  writeSync(fd, header, 0, header.length, 0);
  let at = 4096;
  const offsets = blocks.map((b) => {
    writeSync(fd, b, 0, b.length, at);
    const off = at;
    at = Math.ceil((at + b.length + 1) / 4096) * 4096;
    return off;
  });
  writeSync(fd, header, 0, 1, at); // past the last block, so every block lies inside the file
  closeSync(fd);
  return offsets;
}

Packed('packedLayoutId names the layout version and the panel width, and stays the same', () => {
  const id = packedLayoutId();
  assert.match(id, /^v\d+\.p16\.f32-kp\.bf16-kp2\.(le|be)$/);
  assert.is(native().packedLayoutId(), id);
  assert.is(panelWidth(), 16);
});

Packed('packedBytes: the panels one after another, for a weight packed as a copy, in place or in parts', async () => {
  for (const dtype of DTYPES)
    for (const mode of MODES)
      for (const [n, k] of [[16, 1], [48, 7], [784, 197]]) {
        const w = await packed(mode, n, k, dtype, n + k);
        const rows = mode === 'parts' ? 3 * n : n;
        assert.is(packedBytes(w), expectedBytes(rows, k, dtype), `${mode} ${dtype} ${n}x${k}`);
        assert.is(packedBytesFor(rows, k, dtype), expectedBytes(rows, k, dtype));
      }
  // n not a multiple of 16 and odd k: the padding counts.
  for (const [n, k] of [[1, 1], [17, 7], [33, 769]]) {
    for (const dtype of DTYPES) assert.is(packedBytes(await packWeight(new Tensor(normal(n * k, 3), [n, k]), { dtype })), expectedBytes(n, k, dtype));
  }
  assert.is(packedBytesFor(0, 5), 0);
  assert.is(packedBytesFor(16, 0, 'bfloat16'), 0);
});

for (const dtype of DTYPES)
  for (const mode of MODES)
    Packed(`round trip ${dtype} ${mode}: copyPacked → a new aligned buffer → adoptPacked gives the same results on every ISA`, async () => {
      for (const n of NS)
        for (const k of KS) {
          const w = await packed(mode, n, k, dtype, 7 * n + k);
          const view = alignedView(w.n, k, dtype);
          view.fill(0xcd); // whatever was there before is overwritten
          await copyPacked(w, view);
          const adopted = adoptPacked(view, w.n, k, dtype);
          assert.equal([adopted.n, adopted.k, adopted.dtype], [w.n, k, dtype]);
          await sameResults(adopted, w, `${mode} ${dtype} ${w.n}x${k}`);
          // The adopted weight's bytes copy out unchanged, and a rows() view of it works as one of the original.
          const again = alignedView(w.n, k, dtype);
          await copyPacked(adopted, again);
          assert.ok(Buffer.from(again).equals(Buffer.from(view)), 'copy of the adopted weight');
          if (w.n > 16) await sameResults(adopted.rows(16, w.n), w.rows(16, w.n), `rows(16, ${w.n}) ${mode} ${dtype}`);
        }
    });

Packed('the packed bytes are the same whatever ISA packed them (ties, denormals and extremes included)', async () => {
  for (const dtype of DTYPES)
    for (const mode of MODES)
      for (const [n, k] of [[48, 63], [16, 769]]) {
        const seen: Buffer[] = [];
        for (const isa of isas)
          await onIsa(isa, async () => {
            const w = await packed(mode, n, k, dtype, 99);
            const view = alignedView(w.n, k, dtype);
            await copyPacked(w, view);
            seen.push(Buffer.from(view));
          });
        for (let i = 1; i < seen.length; i++) assert.ok(seen[i].equals(seen[0]), `${mode} ${dtype} ${n}x${k}: ${isas[i]} packs other bytes than ${isas[0]}`);
      }
  // bf16 rounding cases: ties to even (1 + 2^-8, 1 + 3·2^-8), a denormal, the largest floats, a NaN.
  const special = [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8), 1e-40, -3.4e38, 3.3e38, NaN, 2 ** -126, 0.1];
  const w = normal(32 * 37, 5);
  special.forEach((v, i) => (w[i * 101] = v));
  const seen: Buffer[] = [];
  for (const isa of isas)
    await onIsa(isa, async () => {
      const p = await packWeight(new Tensor(w, [32, 37]), { dtype: 'bfloat16' });
      const view = alignedView(32, 37, 'bfloat16');
      await copyPacked(p, view);
      seen.push(Buffer.from(view));
    });
  for (let i = 1; i < seen.length; i++) assert.ok(seen[i].equals(seen[0]), `bf16 specials: ${isas[i]} rounds otherwise than ${isas[0]}`);
});

for (const dtype of DTYPES)
  Packed(`through a file (${dtype}): the bytes written at 4096-aligned offsets, mapped, adopted from views of the mapping`, async () => {
    const weights: PackedWeight[] = [];
    for (const mode of MODES) for (const n of NS) for (const k of [1, 63, 769]) weights.push(await packed(mode, n, k, dtype, n * k + 1));
    const blocks = await Promise.all(
      weights.map(async (w) => {
        const b = new Uint8Array(packedBytes(w));
        await copyPacked(w, b); // dst needs no alignment; only adopted bytes do
        return b;
      }),
    );
    const file = join(dir, `weights-${dtype}.bin`);
    const offsets = writeAligned(file, blocks);
    for (const populate of [false, true]) {
      const mapped = await mapFile(file, { populate });
      for (let i = 0; i < weights.length; i++) {
        const w = weights[i];
        const adopted = adoptPacked(new Uint8Array(mapped, offsets[i], blocks[i].length), w.n, w.k, dtype);
        await sameResults(adopted, w, `mapped ${dtype} ${w.n}x${w.k} populate=${populate}`);
      }
    }
  });

Packed('packInto: the bytes copyPacked gives for the same weight packed, one weight or stacked parts, on every ISA', async () => {
  for (const isa of isas)
    await onIsa(isa, async () => {
      for (const dtype of DTYPES)
        for (const k of KS) {
          // One weight, n not a multiple of the panel width among them.
          for (const n of [1, 7, ...NS]) {
            const w = new Tensor(normal(n * k, n + k, 0.3), [n, k]);
            const want = new Uint8Array(packedBytesFor(n, k, dtype));
            await copyPacked(await packWeight(w, { dtype }), want);
            const got = new Uint8Array(want.length).fill(0xa5);
            await packInto([w], got, dtype);
            assert.ok(Buffer.from(got).equals(Buffer.from(want)), `${isa} ${dtype} ${n}x${k}`);
          }
          // q | k | v: parts of a panel multiple are packed where they lie, others stacked first.
          for (const n of [16, 7, 48]) {
            const parts = [0, 1, 2].map((i) => new Tensor(normal(n * k, 7 * n + k + i, 0.3), [n, k]));
            const want = new Uint8Array(packedBytesFor(3 * n, k, dtype));
            await copyPacked(await packWeightParts(parts, { dtype }), want);
            const got = new Uint8Array(want.length).fill(0x5a);
            await packInto(parts, got, dtype);
            assert.ok(Buffer.from(got).equals(Buffer.from(want)), `${isa} ${dtype} parts 3x${n}x${k}`);
          }
        }
    });
});

Packed('packInto refusals: a dst of the wrong length (E_SHAPE), misaligned (E_ARG) or over w (E_ARG), parts that do not stack', async () => {
  const [n, k] = [32, 7];
  const w = new Tensor(normal(n * k, 3), [n, k]);
  const bytes = packedBytesFor(n, k);
  await rejectsCode(packInto([w], new Uint8Array(bytes - 4)), 'E_SHAPE', /Expected dst of/, Error);
  await rejectsCode(packInto([w], new Uint8Array(bytes + 4)), 'E_SHAPE', /Expected dst of/, Error);
  await rejectsCode(packInto([w], new Uint8Array(new ArrayBuffer(bytes + 4), 1, bytes)), 'E_ARG', /4-byte-aligned/, Error);
  const shared = new Float32Array(n * k + bytes / 4);
  const inside = new Tensor(shared.subarray(0, n * k), [n, k]);
  await rejectsCode(packInto([inside], new Uint8Array(shared.buffer, 4 * 8, bytes)), 'E_ARG', /not to overlap/, Error);
  await rejectsCode(packInto([], new Uint8Array(bytes)), 'E_ARG', /non-empty array/, Error);
  await rejectsCode(packInto([w, new Tensor(normal(16 * 8, 4), [16, 8])], new Uint8Array(packedBytesFor(48, 7))), 'E_SHAPE', undefined, Error);
  await rejectsCode(packInto([w], new Uint8Array(bytes), 'float16' as never), 'E_ARG', /dtype/, Error);
  await rejectsCode(packInto([w], [] as never), 'E_ARG', /Uint8Array/, Error);
});

Packed('refusals: wrong length (E_SHAPE), misaligned data (E_ARG), rows() views and bad arguments', async () => {
  const [n, k] = [48, 7];
  const w = await packWeight(new Tensor(normal(n * k, 1), [n, k]));
  const view = alignedView(n, k, 'float32');
  await copyPacked(w, view);
  const bytes = view.length;
  throwsCode(() => adoptPacked(view.subarray(0, bytes - 4), n, k), 'E_SHAPE', /1344 bytes/, RangeError);
  throwsCode(() => adoptPacked(view, n, k, 'bfloat16'), 'E_SHAPE', /packed size of \[48, 7\] bfloat16/, RangeError);
  throwsCode(() => adoptPacked(view, n + 1, k), 'E_SHAPE', undefined, RangeError);
  // The native check too, whatever the wrapper does.
  throwsCode(() => native().adoptPackedWeight({ data: view.subarray(0, 64), n, k }), 'E_SHAPE', /length 1344/, RangeError);
  // 1 to 63 bytes past a 64-byte boundary (8, 16, 32: aligned for every element type, still refused).
  const buffer = new ArrayBuffer(bytes + 128), base = alignedOffset(buffer, n, k, 'float32');
  for (const off of [1, 4, 8, 16, 32, 63])
    throwsCode(() => adoptPacked(new Uint8Array(buffer, base + off, bytes), n, k), 'E_ARG', new RegExp(`64-byte-aligned.*${off} bytes past`), RangeError);
  // Views: refused whole-weight operations; rows(0, n) is the whole weight.
  await rejectsCode(copyPacked(w.rows(16, n), view), 'E_ARG', /whole packed weight.*rows \[16, 48\)/, RangeError);
  await rejectsCode(copyPacked(w.rows(0, 32), view.subarray(0, 32 * k * 4)), 'E_ARG', /whole packed weight/, RangeError);
  throwsCode(() => packedBytes(w.rows(16, 32)), 'E_ARG', /whole packed weight/, RangeError);
  assert.is(packedBytes(w.rows(0, n)), bytes);
  // dst: the exact length, a Uint8Array, not the weight's own panels.
  await rejectsCode(copyPacked(w, new Uint8Array(bytes + 1)), 'E_SHAPE', /1344 bytes/, RangeError);
  await rejectsCode(copyPacked(w, new Float32Array(bytes / 4) as never), 'E_ARG', /Uint8Array for dst/, TypeError);
  const adopted = adoptPacked(view, n, k);
  await rejectsCode(copyPacked(adopted, view), 'E_ARG', /overlap/, RangeError);
  await rejectsCode(() => native().copyPackedWeight({ w: w.handle, dst: new Uint8Array(3) }), 'E_SHAPE', /length 1344/, RangeError);
  throwsCode(() => adoptPacked(new Float32Array(bytes / 4) as never, n, k), 'E_ARG', /Uint8Array for data/, TypeError);
  throwsCode(() => adoptPacked(view, n, k, 'float16' as never), 'E_ARG', /dtype/, RangeError);
  throwsCode(() => adoptPacked(view, -1, k), 'E_ARG', /n/, RangeError);
  throwsCode(() => packedBytes({} as never), 'E_ARG', /PackedWeight/, TypeError);
  throwsCode(() => native().packedWeightBytes({} as never), 'E_ARG', /n/, TypeError);
  throwsCode(() => native().adoptPackedWeight({ data: view, n, k, dtype: 'int8' }), 'E_DTYPE', /float32 or bfloat16/, RangeError);
});

Packed('lifetime: an adopted weight keeps its buffer and its mapping alive after every JS reference to them is gone', async () => {
  const [n, k] = [64, 33];
  const w = await packWeight(new Tensor(normal(n * k, 8), [n, k]));
  const block = new Uint8Array(packedBytes(w));
  await copyPacked(w, block);
  const file = join(dir, 'lifetime.bin');
  const [offset] = writeAligned(file, [block]);
  // Only the weights survive these scopes: the ArrayBuffers and views are unreachable from JS.
  const fromMap = await (async () => adoptPacked(new Uint8Array(await mapFile(file), offset, block.length), n, k))();
  const fromMemory = await (async () => {
    const v = alignedView(n, k, 'float32');
    await copyPacked(w, v);
    return adoptPacked(v, n, k);
  })();
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 4; i++) {
    new Float32Array(1 << 22).fill(i + 1); // churn, so freed memory would be reused and overwritten
    gc?.();
    await new Promise((r) => setTimeout(r, 10));
  }
  await sameResults(fromMap, w, 'adopted from a mapping');
  await sameResults(fromMemory, w, 'adopted from memory');
});

// With a real collector (a child process with --expose-gc, Linux's /proc/self/maps): the mapping
// outlives its ArrayBuffer while a weight adopted from it lives, and is unmapped once that goes too.
const hasProcMaps = existsSync('/proc/self/maps');
(hasProcMaps ? Packed : Packed.skip)('lifetime under the garbage collector: unmapped only after the ArrayBuffer and the weight are both gone', async () => {
  const [n, k] = [32, 9];
  const w = await packWeight(new Tensor(normal(n * k, 2), [n, k]));
  const block = new Uint8Array(packedBytes(w));
  await copyPacked(w, block);
  const file = join(dir, 'gc-lifetime.bin');
  const [offset] = writeAligned(file, [block]);
  const script = `
    const fs = require('node:fs');
    const { mapFile } = require('./src/io/mapped');
    const { adoptPacked, linear } = require('./src/ops/gemm');
    const { Tensor } = require('./src/tensor');
    const mapped = () => fs.readFileSync('/proc/self/maps', 'utf8').includes(${JSON.stringify(file)});
    const settle = async () => { for (let i = 0; i < 6; i++) { global.gc(); await new Promise((r) => setTimeout(r, 20)); } };
    (async () => {
      let w = await (async () => adoptPacked(new Uint8Array(await mapFile(${JSON.stringify(file)}), ${offset}, ${block.length}), ${n}, ${k}))();
      await settle();
      const whileHeld = mapped();
      const y = await linear(new Tensor(new Float32Array(${k}).fill(0.5), [1, ${k}]), w);
      w = undefined;
      await settle();
      console.log(JSON.stringify({ whileHeld, after: mapped(), y0: y.data[0] }));
    })();`;
  const r = spawnSync(process.execPath, ['--expose-gc', '-r', 'tsx/cjs', '-e', script], { cwd: join(__dirname, '..', '..'), encoding: 'utf8', timeout: 60_000 });
  assert.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.ok(out.whileHeld, 'the mapping was gone while an adopted weight still used it');
  assert.ok(!out.after, 'the mapping stayed after the ArrayBuffer and the weight were collected');
  const want = await linear(new Tensor(new Float32Array(k).fill(0.5), [1, k]), w);
  assert.is(out.y0, want.data[0]);
});

Packed.run();
