/**
 * Malformed calls of the public API: every function is called with random junk in each argument
 * position, one to three at a time, around a valid call. Every refusal must be an error with a
 * clipkit code (E_…), never a raw TypeError / RangeError from inside ("shape.entries is not a
 * function", "Invalid typed array length"), a crash or a hang. Once 848 of 7 536 such calls threw
 * without a code.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ck from '../../src';
import { modelDir } from '../models/reference';
import { REF_IMAGES } from '../reference_fixtures';
import { normal, rng } from '../helpers';

const Fuzz = suite('public API fuzzing');

const label = (v: unknown): string =>
  v instanceof ck.Tensor ? `Tensor[${v.shape}]` : ArrayBuffer.isView(v) ? `${v.constructor.name}(${(v as Uint8Array).length})` : typeof v === 'symbol' ? 'Symbol' : typeof v === 'function' ? 'fn' : Array.isArray(v) ? `[${v.length}]` : typeof v === 'object' && v ? 'object' : String(v);
const f = (shape: number[], seed = 1) => new ck.Tensor(normal(shape.reduce((a, b) => a * b, 1), seed), shape);

Fuzz('junk arguments to every public function are refused with a code', async () => {
  const model = await ck.loadModel(modelDir('chinese_clip_tiny'), { batchSize: 2 });
  const pre = ck.readPreprocessConfig(modelDir('chinese_clip_tiny'));
  const tok = ck.loadTokenizer(modelDir('chinese_clip_tiny'));
  const w = await ck.packWeight(f([4, 8]));
  const pw = await ck.packPatchWeight(f([4, 3, 2, 2]));
  const img = { data: new Uint8Array(4 * 4 * 3).fill(100), width: 4, height: 4, channels: 3 };
  const image = `${REF_IMAGES}/tiny.png`;
  const e64 = () => new Float32Array(64).fill(0.125);
  // name → a valid argument list (a function, so each call gets fresh tensors) and the call.
  const calls: Record<string, [() => unknown[], (...a: any[]) => unknown]> = {
    Tensor: [() => [new Float32Array(6), [2, 3]], (d, s, t) => new ck.Tensor(d, s, t)],
    zeros: [() => [[2, 3]], (s) => ck.zeros(s)],
    fromArray: [() => [[1, 2, 3], [3]], (d, s) => ck.fromArray(d, s)],
    layerNorm: [() => [f([2, 4]), f([4]), f([4]), { eps: 1e-5 }], (x, g, b, o) => ck.layerNorm(x, g, b, o)],
    gelu: [() => [f([2, 3])], (x) => ck.gelu(x)],
    quickGelu: [() => [f([2, 3])], (x) => ck.quickGelu(x)],
    add: [() => [f([2, 3]), f([3])], (a, b) => ck.add(a, b)],
    softmax: [() => [f([2, 3]), { scale: 1 }], (x, o) => ck.softmax(x, o)],
    l2Normalize: [() => [f([2, 3])], (x) => ck.l2Normalize(x)],
    packWeight: [() => [f([4, 8]), {}], (x, o) => ck.packWeight(x, o)],
    linear: [() => [f([2, 8]), w, { bias: f([4]) }], (x, ww, o) => ck.linear(x, ww, o)],
    matmul: [() => [f([2, 3]), f([3, 2]), {}], (a, b, o) => ck.matmul(a, b, o)],
    attention: [() => [f([1, 3, 4]), f([1, 3, 4]), f([1, 3, 4]), { heads: 2 }], (q, k, v, o) => ck.attention(q, k, v, o)],
    attentionPacked: [() => [f([1, 3, 12]), { heads: 2 }], (x, o) => ck.attentionPacked(x, o)],
    logits: [() => [f([2, 4]), f([3, 4]), 10], (a, b, s) => ck.logits(a, b, s)],
    infonce: [() => [f([3, 4]), f([3, 4], 2), 10], (a, b, s) => ck.infonce(a, b, s)],
    infonceLoss: [() => [f([3, 3])], (x) => ck.infonceLoss(x)],
    gatherRows: [() => [f([3, 4]), [0, 2]], (x, i) => ck.gatherRows(x, i)],
    patchEmbed: [() => [f([1, 3, 4, 4]), { conv: pw, classEmb: f([4]), posEmb: f([5, 4]) }], (x, ww) => ck.patchEmbed(x, ww)],
    resizeU8: [() => [img, 2, 2, {}], (a, b, c, o) => ck.resizeU8(a, b, c, o)],
    centerCrop: [() => [img, 2, 2], (a, b, c) => ck.centerCrop(a, b, c)],
    toRgb: [() => [img], (a) => ck.toRgb(a)],
    normalizeToChw: [() => [img, pre], (a, c) => ck.normalizeToChw(a, c)],
    preprocess: [() => [image, pre], (a, c) => ck.preprocess(a, c)],
    decodeImage: [() => [image], (a) => ck.decodeImage(a)],
    'tokenizer.encode': [() => [['猫', 'a dog']], (t) => tok.encode(t)],
    'tokenizer.tokenize': [() => [['猫']], (t) => tok.tokenize(t)],
    encodeText: [() => [['猫'], {}], (t, o) => model.encodeText(t, o)],
    encodeImage: [() => [image, {}], (i, o) => model.encodeImage(i, o)],
    encodeTokens: [() => [model.tokenize(['猫']), 1], (i, n) => model.encodeTokens(i, n)],
    encodePixels: [() => [new Float32Array(3 * 96 * 96), 1], (p, n) => model.encodePixels(p, n)],
    similarity: [() => [[e64()], [e64()]], (a, b) => model.similarity(a, b)],
    infoNCE: [() => [[e64()], [e64()]], (a, b) => model.infoNCE(a, b)],
    classify: [() => [image, ['猫', '狗']], (i, l) => model.classify(i, l)],
    classifyEmbeddings: [() => [[e64()], ['猫', '狗']], (e, l) => model.classifyEmbeddings(e, l)],
  };

  const r = rng(20261207);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const junk = (): unknown =>
    pick<() => unknown>([
      () => pick([0, -0, 1, -1, 2.5, NaN, Infinity, 2 ** 32, 2 ** 53, -(2 ** 31)]),
      () => pick(['', 'x', 'float32', '猫', 'a\0b']),
      () => pick([null, undefined, true, false]),
      () => pick([{}, [], { length: 3 }, { shape: [2] }, () => 0, Symbol('s')]),
      () => pick([new Float32Array(3), new Float64Array(6), new Int32Array(4), new Uint8Array(5), new Float32Array(new SharedArrayBuffer(16))]),
      () => pick([[1, 2], [[1]], ['a'], new Array(5), [NaN]]),
      () => f(pick([[1], [2, 3], [3, 4], [0, 4], [1, 3, 4]])),
      () => new ck.Tensor(new Int32Array(4), [4], 'int32'),
      () => pick([w, pw, pre, img, tok]),
    ])();

  const uncoded: string[] = [];
  let total = 0;
  for (const [name, [valid, call]] of Object.entries(calls)) {
    const n = valid().length;
    for (let trial = 0; trial < 60; trial++) {
      const args = valid();
      const broken = 1 + Math.floor(r() * Math.min(3, n));
      for (let b = 0; b < broken; b++) args[Math.floor(r() * n)] = junk();
      total++;
      try {
        let timer: NodeJS.Timeout | undefined;
        const hung = new Promise((_, reject) => (timer = setTimeout(() => reject(Object.assign(new Error(`did not settle in 10 s with ${args.map(label).join(', ')}`), { code: 'HANG' })), 10_000)));
        try {
          await Promise.race([Promise.resolve().then(() => call(...args)), hung]);
        } finally {
          clearTimeout(timer);
        }
      } catch (err) {
        const code = (err as { code?: unknown })?.code;
        if (!(typeof code === 'string' && code.startsWith('E_'))) {
          const msg = `${name}: ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`;
          if (!uncoded.includes(msg)) uncoded.push(msg);
        }
      }
    }
  }
  assert.ok(total > 2000, `${total} calls`);
  assert.equal(uncoded, [], `calls that threw without a clipkit code:\n${uncoded.join('\n')}`);
});

Fuzz.run();
