/**
 * OpQueue submits a forward pass's ops quietly: an op that finishes while a later op of the same
 * JS thread is still queued is handed back with the next one that is handed back (the queue's
 * fence at the latest), so the JS thread wakes once per pass, not once per op. These tests check
 * that it does wait, that it never waits forever, that failures still reach done(), and that two
 * JS threads' quiet ops are handed back each to their own thread.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { linear, packWeight, softmax, Tensor } from '../../src';
import { OpQueue } from '../../src/models/op_queue';
import { native } from '../../src/native';
import { uniform } from '../helpers';

const Queue = suite('op queue');

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: not settled after ${ms} ms`)), ms))]);
}

Queue('a quiet op is handed back with the op queued after it, not on its own', async () => {
  const n = 1024, k = 1024, m = 1024;
  const w = await packWeight(new Tensor(uniform(n * k, 1), [n, k]));
  const x = new Tensor(uniform(m * k, 2), [m, k]);
  const y1 = new Tensor(new Float32Array(m * n), [m, n]), y2 = new Tensor(new Float32Array(m * n), [m, n]);
  // One GEMM alone, awaited: how long the second one of the queue runs after the first is done.
  await linear(x, w, { out: y1 });
  let t = performance.now();
  for (let i = 0; i < 3; i++) await linear(x, w, { out: y1 });
  const single = (performance.now() - t) / 3;

  const q = new OpQueue(), settled: number[] = [];
  t = performance.now();
  for (const y of [y1, y2]) q.add(() => linear(x, w, { out: y }).then(() => void settled.push(performance.now() - t)));
  await within(q.done(), 60000, 'the queue');
  assert.is(settled.length, 2);
  // Handed back on its own, the first would settle about one GEMM before the second.
  assert.ok(settled[1] - settled[0] < single / 3, `the first GEMM settled ${(settled[1] - settled[0]).toFixed(1)} ms before the second (one GEMM: ${single.toFixed(1)} ms)`);
  assert.equal(y2.data, y1.data);
});

Queue('an op submitted after a nested add still goes quietly (the quiet setting is restored, not reset)', async () => {
  const addon = native();
  const real = addon.setQuiet;
  let current = false;
  addon.setQuiet = (on: boolean) => {
    current = on;
    real.call(addon, on);
  };
  const x = new Tensor(Float32Array.of(0, 0, 0, 0), [4]);
  const q = new OpQueue();
  let outerQuiet: boolean | undefined;
  try {
    // As vit.ts does: q.add(() => attentionPacked(preNormQkv(…, q))), an add inside an add.
    q.add(() => {
      q.add(() => softmax(x));
      outerQuiet = current;
      return softmax(x);
    });
    assert.is(current, false, 'loud again once the outer add returns');
    await within(q.done(), 10000, 'the nested queue');
  } finally {
    addon.setQuiet = real;
  }
  assert.is(outerQuiet, true, 'the outer op, submitted after the inner add, was quiet');
});

Queue('a quiet op with nothing queued after it is handed back on its own', async () => {
  const addon = native();
  addon.setQuiet(true);
  let p: Promise<Tensor>;
  try {
    p = softmax(new Tensor(Float32Array.of(0, 0, 0, 0), [4]));
  } finally {
    addon.setQuiet(false);
  }
  const y = await within(p, 10000, 'a lone quiet op');
  assert.equal(Array.from(y.data), [0.25, 0.25, 0.25, 0.25]);
});

Queue('done() rejects with the first failure in queue order and still runs the rest', async () => {
  const w = await packWeight(new Tensor(uniform(32 * 16, 3), [32, 16]));
  const x = new Tensor(uniform(4 * 16, 4), [4, 16]);
  const y = new Tensor(new Float32Array(4 * 32).fill(NaN), [4, 32]);
  const q = new OpQueue();
  q.add(() => linear(new Tensor(new Float32Array(4 * 15), [4, 15]), w)); // K 15 against the weight's 16
  q.add(() => linear(x, w, { bias: new Tensor(new Float32Array(31), [31]) })); // bias of 31 for N 32
  q.add(() => linear(x, w, { out: y }));
  try {
    await within(q.done(), 10000, 'the queue');
    assert.unreachable('done() resolved');
  } catch (e) {
    assert.match(String((e as Error).message), /last dimension 16/);
  }
  assert.ok(y.data.every(Number.isFinite), 'the op after the failures did not run');
});

Queue("two JavaScript threads' quiet ops are each handed back to their own thread", async () => {
  const src = path.join(__dirname, '..', '..', 'src');
  const worker = new Worker(
    `require('tsx/cjs'); const ck = require(${JSON.stringify(src)}); const { OpQueue } = require(${JSON.stringify(path.join(src, 'models', 'op_queue'))});
     const { parentPort } = require('node:worker_threads');
     (async () => {
       const sums = [];
       for (let i = 0; i < 40; i++) {
         const q = new OpQueue(), outs = [];
         for (let j = 0; j < 5; j++) q.add(() => ck.softmax(new ck.Tensor(Float32Array.of(i, j, 0), [3])).then((y) => outs.push(y.data[0])));
         await q.done();
         sums.push(outs.length);
       }
       parentPort.postMessage(sums);
     })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));`,
    { eval: true },
  );
  const fromWorker = new Promise<unknown>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const mine: number[] = [];
  for (let i = 0; i < 40; i++) {
    const q = new OpQueue();
    let count = 0;
    for (let j = 0; j < 5; j++) q.add(() => softmax(new Tensor(Float32Array.of(j, i), [2])).then(() => void count++));
    await within(q.done(), 10000, `main thread pass ${i}`);
    mine.push(count);
  }
  const theirs = await within(fromWorker, 60000, 'the worker');
  await worker.terminate();
  assert.equal(mine, new Array(40).fill(5));
  assert.equal(theirs, new Array(40).fill(5));
});

Queue.run();
