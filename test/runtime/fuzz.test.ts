/**
 * Nothing JavaScript passes can crash the process: every native op is called with thousands of
 * random argument objects (typed arrays of every kind and awkward lengths, negative, fractional,
 * huge and non-finite numbers, strings, plain objects in place of packed weights) and each call must
 * either throw, reject, or resolve — never abort, hang or corrupt memory. The final checks run real
 * ops after the barrage and compare them with the same ops run before it.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { layerNorm, linear, packWeight, softmax, Tensor } from '../../src';
import { native } from '../../src/native';
import { normal, rng } from '../helpers';

const Fuzz = suite('argument fuzzing');

/** A valid call of each op at a small shape, which the fuzzer then breaks one to three fields at a time. */
function templates(handle: unknown): Record<string, () => Record<string, unknown>> {
  const f = (n: number) => normal(n, n + 1);
  return {
    layerNorm: () => ({ x: f(12), gamma: f(4), beta: f(4), y: new Float32Array(12), rows: 3, dim: 4, eps: 1e-5 }),
    softmax: () => ({ x: f(12), y: new Float32Array(12), rows: 3, dim: 4, scale: 1 }),
    l2Normalize: () => ({ x: f(12), y: new Float32Array(12), rows: 3, dim: 4 }),
    unary: () => ({ op: 'gelu', x: f(12), y: new Float32Array(12) }),
    add: () => ({ a: f(12), b: f(4), y: new Float32Array(12) }),
    embedding: () => ({ ids: Int32Array.of(0, 1, 2, 1), tokens: f(12), vocab: 3, positions: f(8), maxPositions: 2, batch: 2, seq: 2, dim: 4, y: new Float32Array(16) }),
    gatherRows: () => ({ x: f(12), rows: 3, dim: 4, index: Int32Array.of(2, 0), y: new Float32Array(8) }),
    packWeight: () => ({ w: f(12), n: 3, k: 4, dtype: 'float32' }),
    gemm: () => ({ x: f(16), m: 2, k: 8, w: handle, y: new Float32Array(6), epilogue: 'none', alpha: 1 }),
    matmul: () => ({ a: f(8), b: f(12), c: new Float32Array(6), m: 2, n: 3, k: 4, bIsNk: true }),
    attention: () => ({ q: f(16), k: f(16), v: f(16), out: new Float32Array(16), batch: 1, seq: 4, heads: 2, headDim: 2, qRows: 4, scale: 0.5, causal: false }),
    logits: () => ({ a: f(8), b: f(12), out: new Float32Array(6), n: 2, m: 3, dim: 4, scale: 10 }),
    infonceLoss: () => ({ logits: f(9), dLogits: new Float32Array(9), n: 3 }),
    infonce: () => ({ a: f(12), b: f(12), n: 3, dim: 4, scale: 10, logits: new Float32Array(9), dLogits: new Float32Array(9), dA: new Float32Array(12), dB: new Float32Array(12) }),
    patchEmbed: () => ({ pixels: f(2 * 4 * 4), batch: 1, channels: 2, height: 4, width: 4, patch: 2, w: handle, classEmb: f(3), posEmb: f(15), y: new Float32Array(15) }),
  };
}

Fuzz('random arguments to every op throw or settle, never crash', async () => {
  const r = rng(20261123);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const handle = await native().packWeight({ w: normal(24, 1), n: 3, k: 8, dtype: 'float32' });
  const lengths = [0, 1, 2, 3, 4, 6, 7, 8, 9, 12, 15, 16, 24, 48];
  const junk = (): unknown => {
    switch (Math.floor(r() * 12)) {
      case 0: return new Float32Array(pick(lengths)).map(() => r() * 4 - 2);
      case 1: return Int32Array.from({ length: pick(lengths) }, () => Math.floor(r() * 10) - 2);
      case 2: return new Uint8Array(pick(lengths)).fill(1);
      case 3: return new Uint16Array(pick(lengths));
      case 4: return new Float64Array(pick(lengths));
      case 5: return pick([0, 1, 2, 3, 4, 6, 8, 16]);
      case 6: return pick([-1, 0.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 31, 2 ** 32 + 3, 2 ** 64, 1e300, -0]);
      case 7: return pick(['gelu', 'quick_gelu', 'none', 'residual', 'float32', 'bfloat16', '', 'x'.repeat(100)]);
      case 8: return pick([true, false, null, undefined]);
      case 9: return pick([{}, [], { length: 5 }, () => 0]);
      case 10: return handle;
      default: return new Float32Array(new SharedArrayBuffer(64));
    }
  };
  const ops = templates(handle);
  const names = Object.keys(ops);
  let calls = 0, settled = 0, resolved = 0, valid = 0, validResolved = 0;
  for (let i = 0; i < 6000; i++) {
    const op = pick(names);
    const args = ops[op]();
    const fields = Object.keys(args);
    const breaks = i % 10 === 0 ? 0 : 1 + Math.floor(r() * 3);  // every tenth call stays valid
    for (let b = 0; b < breaks; b++) {
      if (r() < 0.1) delete args[pick(fields)];
      else args[pick(fields)] = junk();
    }
    if (breaks === 0) valid++;
    try {
      const p = (native() as any)[op](args);
      calls++;
      await Promise.resolve(p).then(
        () => {
          settled++;
          resolved++;
          if (breaks === 0) validResolved++;
        },
        () => settled++,
      );
    } catch (err) {
      assert.ok(err instanceof Error, String(err));
      if (breaks === 0) assert.unreachable(`a valid ${op} call threw: ${(err as Error).message}`);
    }
  }
  for (const op of names) for (const bad of [undefined, null, 3, 'x', []]) {
    try {
      await (native() as any)[op](bad);
    } catch {
      // refused, as it should be
    }
  }
  assert.is(settled, calls);
  assert.is(validResolved, valid, 'every unbroken template call must succeed (else the templates are stale)');
  if (process.env.CLIPKIT_FUZZ_STATS) console.log({ calls, resolved });
});

Fuzz('the pool still computes right after the barrage', async () => {
  const x = new Tensor(normal(7 * 33, 3), [7, 33]);
  const before = await softmax(x);
  const w = await packWeight(new Tensor(normal(5 * 33, 4), [5, 33]));
  const y1 = await linear(x, w);
  const n1 = await layerNorm(x, new Tensor(normal(33, 5), [33]), null);
  assert.equal(Array.from((await softmax(x)).data), Array.from(before.data));
  assert.equal(Array.from((await linear(x, w)).data), Array.from(y1.data));
  assert.equal(Array.from((await layerNorm(x, new Tensor(normal(33, 5), [33]), null)).data), Array.from(n1.data));
});

Fuzz.run();
