/** ISA and thread settings: forcing each ISA, CLIPKIT_ISA at start-up, and 1 vs N threads. */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { availableIsas, cpuInfo, layerNorm, setIsa, setThreads, softmax, Tensor, add, gelu } from '../../src';
import { normal, rejects, uniform } from '../helpers';

const Settings = suite('runtime settings');
const root = path.join(__dirname, '..', '..');

function childInfo(env: Record<string, string>): { isa: string; isaEnvError: string | null } {
  const r = spawnSync(process.execPath, ['-r', 'tsx/cjs', '-e', "console.log(JSON.stringify(require('./src').cpuInfo()))"], {
    cwd: root,
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  assert.is(r.status, 0, r.stderr);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

Settings('cpuInfo lists the ISAs, scalar always', () => {
  const info = cpuInfo();
  assert.ok(info.isas.includes('scalar'));
  assert.ok(info.isas.includes(info.best));
  assert.ok(info.physicalCores >= 1 && info.threads >= 1);
});

Settings('CLIPKIT_ISA forces an ISA at start-up; an unknown or unsupported one is reported, not used', () => {
  assert.is(childInfo({ CLIPKIT_ISA: 'scalar' }).isa, 'scalar');
  const bogus = childInfo({ CLIPKIT_ISA: 'sse9' });
  assert.is(bogus.isa, cpuInfo().best);
  assert.match(bogus.isaEnvError ?? '', /CLIPKIT_ISA=sse9 is not one of/);
  const missing = ['amx', 'avx512', 'avx2', 'neon'].find((i) => !availableIsas().includes(i as never));
  if (missing) assert.match(childInfo({ CLIPKIT_ISA: missing }).isaEnvError ?? '', /lacks/);
});

Settings('setIsa refuses what the CPU lacks and unknown names', async () => {
  const missing = ['amx', 'avx512', 'avx2', 'neon'].find((i) => !availableIsas().includes(i as never));
  if (missing) await rejects(() => setIsa(missing as never), RangeError, /does not support/);
  await rejects(() => setIsa('mmx' as never), RangeError, /one of scalar, avx2, avx512, amx, neon/);
  await rejects(() => setThreads(-1), RangeError, /integer in \[0, 1024\]/);
  await rejects(() => setThreads(1.5), RangeError, /integer/);
});

Settings('1 thread and N threads agree (row-parallel ops: bit for bit)', async () => {
  const rows = 301, dim = 769;
  const x = new Tensor(normal(rows * dim, 1), [rows, dim]), g = new Tensor(uniform(dim, 2), [dim]);
  const run = async () => [
    (await layerNorm(x, g, null)).data,
    (await softmax(x)).data,
    (await add(x, g)).data,
    (await gelu(x)).data,
  ];
  try {
    setThreads(1);
    const one = await run();
    setThreads(0);
    const many = await run();
    setThreads(3);
    const three = await run();
    for (let i = 0; i < one.length; i++) {
      assert.equal(Array.from(one[i]), Array.from(many[i]));
      assert.equal(Array.from(one[i]), Array.from(three[i]));
    }
  } finally {
    setThreads(0);
  }
});

Settings('concurrent calls all settle with the right results', async () => {
  const xs = Array.from({ length: 40 }, (_, i) => new Tensor(normal(64 * 33, i + 10), [64, 33]));
  const outs = await Promise.all(xs.map((x) => softmax(x)));
  const again = await Promise.all(xs.map((x) => softmax(x)));
  outs.forEach((o, i) => assert.equal(Array.from(o.data), Array.from(again[i].data)));
});

Settings.run();
