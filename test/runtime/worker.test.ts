/**
 * clipkit in worker threads: results come back, and terminating a worker while its kernel runs
 * neither crashes the process nor lets the kernel write into the worker's freed buffers.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { softmax, Tensor } from '../../src';
import { normal } from '../helpers';

const Workers = suite('worker threads');
const src = path.join(__dirname, '..', '..', 'src');

function worker(body: string): Worker {
  return new Worker(
    `require('tsx/cjs'); const ck = require(${JSON.stringify(src)}); const { parentPort } = require('node:worker_threads');
     (async () => { ${body} })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));`,
    { eval: true },
  );
}

function message(w: Worker): Promise<any> {
  return new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
}

Workers('a worker computes the same softmax as the main thread', async () => {
  const x = normal(5 * 33, 7);
  const w = worker(`
    const x = new Float32Array(${JSON.stringify(Array.from(x))});
    const y = await ck.softmax(new ck.Tensor(x, [5, 33]));
    parentPort.postMessage({ y: Array.from(y.data) });`);
  const got = await message(w);
  await w.terminate();
  assert.not.ok(got.error, got.error);
  const want = await softmax(new Tensor(x, [5, 33]));
  assert.equal(got.y, Array.from(want.data));
});

Workers('terminating a worker mid-GEMM is safe', async () => {
  for (let round = 0; round < 3; round++) {
    const w = worker(`
      const n = 1024, k = 1024, m = 1024;
      const wt = await ck.packWeight(new ck.Tensor(new Float32Array(n * k).fill(0.5), [n, k]));
      const x = new ck.Tensor(new Float32Array(m * k).fill(0.25), [m, k]);
      parentPort.postMessage({ started: true });
      for (;;) await Promise.all([ck.linear(x, wt), ck.linear(x, wt), ck.linear(x, wt)]);`);
    const first = await message(w);
    assert.not.ok(first.error, first.error);
    await new Promise((r) => setTimeout(r, 15 + 20 * round));
    await w.terminate();
  }
  // The process is alive and the pool still works.
  const y = await softmax(new Tensor(Float32Array.of(0, 0), [2]));
  assert.equal(Array.from(y.data), [0.5, 0.5]);
});

Workers.run();
