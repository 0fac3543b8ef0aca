/**
 * clipkit in worker threads: results come back, and terminating a worker while its kernel runs
 * neither crashes the process nor lets the kernel write into the worker's freed buffers; the addon
 * stays loaded when the last worker that loaded it exits (its threads outlive any one worker).
 */
import { spawnSync } from 'node:child_process';
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
  // Termination at varied points of the job stream: inside a kernel, between a job's end and its
  // promise settling, while jobs wait in the queue; every other round with the ops queued quietly
  // (OpQueue), so that some are done and parked, waiting for a later one to carry them back.
  const opQueue = JSON.stringify(path.join(src, 'models', 'op_queue'));
  for (let round = 0; round < 12; round++) {
    const w = worker(`
      const { OpQueue } = require(${opQueue});
      const n = 1024, k = 1024, m = 1024;
      const wt = await ck.packWeight(new ck.Tensor(new Float32Array(n * k).fill(0.5), [n, k]));
      const x = new ck.Tensor(new Float32Array(m * k).fill(0.25), [m, k]);
      parentPort.postMessage({ started: true });
      if (${round % 2}) {
        for (;;) {
          const q = new OpQueue();
          for (let i = 0; i < 3; i++) q.add(() => ck.linear(x, wt));
          await q.done();
        }
      }
      for (;;) await Promise.all([ck.linear(x, wt), ck.linear(x, wt), ck.linear(x, wt)]);`);
    const first = await message(w);
    assert.not.ok(first.error, first.error);
    await new Promise((r) => setTimeout(r, (round * 7) % 60));
    await w.terminate();
  }
  // The process is alive and the pool still works.
  const y = await softmax(new Tensor(Float32Array.of(0, 0), [2]));
  assert.equal(Array.from(y.data), [0.5, 0.5]);
});

Workers('the addon stays loaded after the last worker that loaded it exits', () => {
  if (process.platform !== 'linux') return; // read from /proc/self/maps
  // A process whose main thread never touches clipkit: only its workers load the addon.
  const script = `
    const { Worker } = require('node:worker_threads');
    const fs = require('node:fs');
    const run = () => new Promise((resolve, reject) => {
      const w = new Worker(\`require('tsx/cjs'); const ck = require(\${JSON.stringify(${JSON.stringify(src)})});
        ck.softmax(new ck.Tensor(Float32Array.of(1, 2, 3), [3])).then((y) => require('node:worker_threads').parentPort.postMessage(Array.from(y.data)));\`, { eval: true });
      let got;
      w.on('message', (m) => { got = m; });
      w.on('error', reject);
      w.on('exit', () => resolve(got));
    });
    (async () => {
      const first = await run();
      const mapped = fs.readFileSync('/proc/self/maps', 'utf8').includes('clipkit');
      const second = await run();
      console.log(JSON.stringify({ first, second, mapped }));
    })();`;
  const r = spawnSync(process.execPath, ['-e', script], { cwd: path.join(src, '..'), encoding: 'utf8', timeout: 60000 });
  assert.is(r.status, 0, `child ended with ${r.status ?? r.signal}: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.ok(out.mapped, 'the addon was unloaded when its last worker exited');
  assert.equal(out.second, out.first);
  assert.ok(Math.abs(out.first.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-6);
});

Workers.run();
