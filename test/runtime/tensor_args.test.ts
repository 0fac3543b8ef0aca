/**
 * Malformed tensors and names from files: every refusal carries a code, none hangs.
 * - shapes that are not arrays, too long (new Array(2 ** 32 - 1) once hung zeros() for over a
 *   minute), or too large to allocate (once a raw "Invalid typed array length");
 * - SharedArrayBuffer storage (once an uncoded "Invalid argument" from the addon);
 * - `__proto__` as a name in a file: it stays a name (once it replaced the prototype of the object
 *   the names were gathered in, and the entry was lost).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { fromArray, readSafetensors, softmax, Tensor, zeros } from '../../src';
import { writeSafetensors } from '../../src/io/safetensors_writer';
import { f32Bytes, rawFile } from '../io/safetensors_writer';
import { f32Bytes as torchF32, PickleWriter, torchZip, writeTensor } from '../io/torch_writer';
import { parseTorchCheckpoint } from '../../src/io/pytorch';
import { tempDir } from '../helpers';

const Args = suite('tensor arguments and names from files');

function code(call: () => unknown): string {
  try {
    call();
  } catch (err) {
    return String((err as { code?: unknown }).code ?? `no code: ${(err as Error).message}`);
  }
  return 'no error';
}

Args('bad shapes are refused with a code, at once', () => {
  const t0 = performance.now();
  assert.is(code(() => zeros(new Array(2 ** 32 - 1))), 'E_SHAPE');
  assert.is(code(() => new Tensor(new Float32Array(1), new Array(2 ** 32 - 1))), 'E_SHAPE');
  assert.ok(performance.now() - t0 < 1000, 'refused without walking the shape');
  for (const shape of ['abc', null, undefined, { length: 2 }, 5, [1, 'a'], [-1], [1.5], [NaN], [2 ** 31, 2 ** 31, 2 ** 31]])
    assert.is(code(() => zeros(shape as number[])), 'E_SHAPE', `zeros(${JSON.stringify(shape)})`);
  assert.is(code(() => zeros([2 ** 40])), 'E_LIMIT', 'more elements than a typed array holds');
  assert.is(code(() => new Tensor(new Float32Array(4), 'abcd' as unknown as number[])), 'E_SHAPE');
  assert.is(code(() => new Tensor([1, 2] as unknown as Float32Array, [2])), 'E_DTYPE');
  assert.is(code(() => fromArray(null as unknown as number[], [1])), 'E_ARG');
  assert.is(code(() => fromArray([1, 2], [3])), 'E_SHAPE');
  assert.equal(Array.from(fromArray([1, 2, 3, 4], [2, 2]).data), [1, 2, 3, 4]);
  assert.equal(zeros([2, 0, 3]).shape, [2, 0, 3]);
});

Args('SharedArrayBuffer storage is refused with E_ARG, before any op sees it', async () => {
  const shared = new Float32Array(new SharedArrayBuffer(16));
  assert.is(code(() => new Tensor(shared, [4])), 'E_ARG');
  const y = await softmax(new Tensor(Float32Array.of(0, 0, 0, 0), [1, 4]));
  assert.equal(Array.from(y.data), [0.25, 0.25, 0.25, 0.25]);
});

Args('__proto__ is a name like any other in a safetensors header and in a written file', () => {
  const dir = tempDir('clipkit-proto-');
  const file = join(dir, 'm.safetensors');
  // Written as text: in an object literal `__proto__:` would set the prototype, not a key.
  const header = '{"__metadata__":{"__proto__":"kept","format":"pt"},"__proto__":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}';
  writeFileSync(file, rawFile(header.padEnd(Math.ceil(header.length / 8) * 8, ' '), f32Bytes([1, 2])));
  const st = readSafetensors(file);
  assert.is(Object.getPrototypeOf(st.metadata), Object.prototype, 'the prototype is not replaced');
  assert.is(Object.getOwnPropertyDescriptor(st.metadata, '__proto__')?.value, 'kept');
  assert.is(st.metadata.format, 'pt');
  assert.equal(Array.from(st.tensors.get('__proto__')!.data()), [1, 2]);

  const written = join(dir, 'w.safetensors');
  const tensors = JSON.parse('{"__proto__": 0, "b": 0}') as Record<string, unknown>; // two own keys
  tensors['b'] = { dtype: 'F32', shape: [1], data: Float32Array.of(5) };
  Object.defineProperty(tensors, '__proto__', { value: { dtype: 'F32', shape: [2], data: Float32Array.of(3, 4) }, enumerable: true });
  writeFileSync(written, writeSafetensors(tensors as Parameters<typeof writeSafetensors>[0]));
  const back = readSafetensors(written);
  assert.equal([...back.tensors.keys()].sort(), ['__proto__', 'b'], 'the tensor named __proto__ was written');
  assert.equal(Array.from(back.tensors.get('__proto__')!.data()), [3, 4]);
});

Args('__proto__ as a state-dict key of a PyTorch checkpoint stays a key', () => {
  const p = new PickleWriter().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  writeTensor(p.str('w'), { storage: { type: 'FloatStorage', key: '0', numel: 4 }, size: [4] });
  p.str('__proto__').int(7);
  const ck = parseTorchCheckpoint(torchZip(p.setitems().stop().bytes(), { '0': torchF32([1, 2, 3, 4]) }), 'proto.pt');
  assert.equal(Array.from(ck.tensors.get('w')!.data()), [1, 2, 3, 4]);
  assert.is(Object.getPrototypeOf(ck.extra), Object.prototype, 'the prototype is not replaced');
  assert.is(Object.getOwnPropertyDescriptor(ck.extra, '__proto__')?.value, 7);
});

Args.run();
