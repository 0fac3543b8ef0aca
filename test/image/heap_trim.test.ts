/**
 * Long decode jobs give the C heap's free pages back (src/image/heap_trim.ts): glibc keeps freed
 * blocks that sit between live ones, so without a trim RSS only grows. A child process frees
 * 120 MB of 60 KB blocks interleaved with live ones and checks that trimHeap returns them.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage } from '../../src';
import { DECODES_PER_TRIM } from '../../src/image/heap_trim';
import { native } from '../../src/native';

const Trim = suite('image/heap_trim');
const glibc = Boolean((process.report?.getReport() as { header?: { glibcVersionRuntime?: string } })?.header?.glibcVersionRuntime);

const CHILD = `
const { native } = require('./src/native');
(async () => {
  const rss = () => process.memoryUsage().rss / 2 ** 20;
  const keep = [];
  let drop = [];
  for (let i = 0; i < 4000; i++) (i % 2 ? keep : drop).push(Buffer.alloc(60000, 1));
  drop = [];
  global.gc(); global.gc();
  const before = rss();
  const released = await native().trimHeap({});
  console.log(JSON.stringify({ before, after: rss(), released, kept: keep.length }));
})();
`;

(glibc ? Trim : Trim.skip)('trimHeap gives freed heap pages back to the system (glibc)', () => {
  const r = spawnSync(process.execPath, ['--expose-gc', '-r', 'tsx/cjs', '-e', CHILD], { cwd: join(__dirname, '..', '..'), encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const { before, after, released } = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.is(released, true);
  // 2000 blocks of 60 KB were freed (117 MB): at least half of that must go back.
  assert.ok(before - after > 60, `RSS ${before.toFixed(0)} → ${after.toFixed(0)} MB`);
});

Trim(`decodes queue a trim every ${DECODES_PER_TRIM}`, async () => {
  const addon = native() as unknown as { trimHeap: (a: object) => Promise<boolean> };
  const real = addon.trimHeap;
  let calls = 0;
  addon.trimHeap = (a) => {
    calls++;
    return real.call(addon, a);
  };
  try {
    const bytes = Buffer.from('P5 1 1 255\n\x07', 'latin1');
    // Whatever count earlier decodes left, 3 × DECODES_PER_TRIM more cross three multiples; one
    // of them may find a trim queued by earlier suites still running and be taken by the next.
    for (let i = 0; i < 3 * DECODES_PER_TRIM; i++) {
      await decodeImage(bytes);
      await new Promise((res) => setImmediate(res)); // as file reads do: the trim settles meanwhile
    }
  } finally {
    addon.trimHeap = real;
  }
  // Three on an idle machine; on a loaded one a trim may still be running at the next multiple
  // (never two at once). Never one per decode.
  assert.ok(calls >= 1 && calls <= 3, `${calls} trims in ${3 * DECODES_PER_TRIM} decodes`);
});

Trim.run();
