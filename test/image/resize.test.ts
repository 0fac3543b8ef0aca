import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { resizeU8, RESIZE_FILTERS } from '../../src/image/resize';
import { rejectsCode, rng } from '../helpers';
import { resizeFloatRef, resizePillowRef } from '../ref/resize';

const Resize = suite('image/resize');

function randomImage(w: number, h: number, C: number, seed: number): Uint8Array {
  const r = rng(seed);
  const data = new Uint8Array(w * h * C);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(r() * 256);
  // Some fully transparent and fully opaque pixels on the alpha channel.
  if (C === 2 || C === 4) for (let p = 0; p < w * h; p += 3) data[p * C + C - 1] = p % 2 ? 0 : 255;
  return data;
}

function firstMismatch(got: Uint8Array, want: Uint8Array): string {
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return `index ${i}: got ${got[i]} want ${want[i]}`;
  return got.length === want.length ? '' : `length ${got.length} != ${want.length}`;
}

// [w, h, outW, outH]: up, down, one axis only, 1 pixel, large factors.
const SIZES = [
  [1, 1, 7, 5], [7, 5, 1, 1], [7, 5, 224, 224], [224, 224, 63, 63], [63, 224, 224, 63], [300, 200, 336, 224],
  [257, 173, 224, 224], [881, 150, 1315, 224], [17, 33, 17, 5], [17, 33, 40, 33], [640, 428, 31, 3],
] as const;

for (const [w, h, ow, oh] of SIZES)
  for (const C of [1, 2, 3, 4])
    Resize(`${w}x${h} -> ${ow}x${oh}, ${C} channels, every filter equals Pillow's fixed point`, async () => {
      const data = randomImage(w, h, C, w * 31 + h * 7 + C);
      for (const filter of RESIZE_FILTERS) {
        const got = await resizeU8({ data, width: w, height: h, channels: C }, ow, oh, { filter });
        const want = resizePillowRef(data, w, h, C, ow, oh, filter);
        assert.is(firstMismatch(got.data, want), '', `${filter}`);
      }
    });

Resize('close to a continuous float64 filter when downscaling', async () => {
  for (const [w, h, ow, oh] of [[224, 224, 63, 63], [640, 428, 334, 224], [257, 173, 100, 80]] as const) {
    // A smooth image: the fixed point and the uint8 intermediate then cost at most a level or two.
    const data = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = Math.round(127.5 + 120 * Math.sin(x / 9 + c) * Math.cos(y / 13));
    for (const filter of ['bicubic', 'bilinear', 'lanczos'] as const) {
      const got = (await resizeU8({ data, width: w, height: h, channels: 3 }, ow, oh, { filter })).data;
      const want = resizeFloatRef(data, w, h, 3, ow, oh, filter);
      let max = 0, sum = 0;
      for (let i = 0; i < want.length; i++) {
        const d = Math.abs(got[i] - Math.min(255, Math.max(0, want[i])));
        max = Math.max(max, d);
        sum += d;
      }
      assert.ok(max <= 2, `${filter} ${w}x${h}->${ow}x${oh}: max |Δ| ${max}`);
      assert.ok(sum / want.length < 0.5, `${filter}: mean |Δ| ${sum / want.length}`);
    }
  }
});

Resize('same size is a copy, alpha untouched', async () => {
  const data = randomImage(5, 4, 4, 1);
  const got = await resizeU8({ data, width: 5, height: 4, channels: 4 }, 5, 4);
  assert.equal(Array.from(got.data), Array.from(data));
});

Resize('bad arguments name what is wrong', async () => {
  const data = new Uint8Array(12);
  await rejectsCode(() => resizeU8({ data, width: 2, height: 2, channels: 2 }, 3, 3), 'E_SHAPE', /img\.data/, RangeError);
  await rejectsCode(() => resizeU8({ data, width: 2, height: 2, channels: 3 }, 3, 3, { filter: 'cubic' as any }), 'E_ARG', /filter/, RangeError);
});

Resize.run();
