/**
 * The decode budget: pixels being decoded at once are bounded across the process, first come first
 * served, an image larger than the whole budget runs alone, and the results do not change.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage, loadModel, setDecodePixelBudget } from '../../src';
import { decodeBudget, PixelBudget } from '../../src/image/budget';
import { DEFAULT_MAX_PIXELS } from '../../src/image/decode';
import { modelDir } from '../models/reference';
import { REF_IMAGES } from '../reference_fixtures';
import { tempDir, throwsCode } from '../helpers';

const Budget = suite('decode pixel budget');

Budget('grants in order within the limit; an oversized request waits to run alone', async () => {
  const b = new PixelBudget(100);
  const order: string[] = [];
  const r1 = await b.acquire(60);
  const p2 = b.acquire(50).then((r) => (order.push('b'), r));
  const p3 = b.acquire(10).then((r) => (order.push('c'), r)); // fits now, but waits behind b
  const p4 = b.acquire(500).then((r) => (order.push('d'), r)); // over the whole budget: runs alone
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(order, []);
  r1();
  const [r2, r3] = await Promise.all([p2, p3]);
  assert.equal(order, ['b', 'c']);
  r2();
  await new Promise((r) => setTimeout(r, 10));
  assert.equal(order, ['b', 'c'], 'd waits for everything else');
  r3();
  (await p4)();
  assert.equal(order, ['b', 'c', 'd']);
  assert.is(b.highWater, 100);
});

Budget('encodeImage under a small budget: never more pixels in flight than it allows, same embeddings', async () => {
  const dir = tempDir('clipkit-budget-');
  const src = join(REF_IMAGES, '000000024283.jpg');
  const { width, height } = await decodeImage(src);
  const files = Array.from({ length: 8 }, (_, i) => join(dir, `${i}.jpg`));
  for (const f of files) copyFileSync(src, f);
  const model = await loadModel(modelDir('chinese_clip_tiny'), { batchSize: 8 });
  const free = await model.encodeImage(files);
  const limit = Math.floor(width * height * 2.5);
  try {
    setDecodePixelBudget(limit);
    decodeBudget.highWater = 0;
    const bounded = await model.encodeImage(files);
    assert.ok(decodeBudget.highWater <= limit, `${decodeBudget.highWater} pixels in flight, budget ${limit}`);
    assert.is(decodeBudget.highWater, 2 * width * height, 'two images at a time fit');
    assert.equal(bounded, free);
  } finally {
    setDecodePixelBudget(DEFAULT_MAX_PIXELS);
  }
  throwsCode(() => setDecodePixelBudget(0), 'E_ARG', undefined, RangeError);
});

Budget.run();
