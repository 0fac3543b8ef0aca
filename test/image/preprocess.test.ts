import * as fs from 'node:fs';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage, preprocess, preprocessRgbU8, toRgb } from '../../src/image';
import { readSafetensors } from '../../src/io/safetensors';
import { parsePreprocessConfig } from '../../src/loading/config';
import { rejectsCode } from '../helpers';
import { REF_IMAGES } from '../reference_fixtures';

const DIR = REF_IMAGES;
const ref = readSafetensors(path.join(DIR, 'image_preprocess_reference.safetensors'));
const meta = JSON.parse(fs.readFileSync(path.join(DIR, 'image_preprocess_reference.json'), 'utf8'));

// The two reference pipelines as preprocessor configs.
const PIPELINES = {
  cn_clip_224: parsePreprocessConfig({ size: { height: 224, width: 224 }, crop_size: { height: 224, width: 224 } }, 'cn_clip_224'),
  openai_clip_224: parsePreprocessConfig({ size: { shortest_edge: 224 }, crop_size: { height: 224, width: 224 } }, 'openai_clip_224'),
};

function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>, what: string): string {
  if (got.length !== want.length) return `${what}: length ${got.length} != ${want.length}`;
  let n = 0, first = '';
  for (let i = 0; i < want.length; i++)
    if (!Object.is(got[i], want[i])) {
      if (!n) first = `${what}: first at index ${i}: got ${got[i]} want ${want[i]}`;
      n++;
    }
  return n ? `${first} (${n} of ${want.length} differ)` : '';
}

const Preprocess = suite('image/preprocess');

for (const img of meta.images as { key: string; file: string; pixel_values_stored: boolean }[])
  for (const [pipeline, config] of Object.entries(PIPELINES))
    Preprocess(`${img.key} ${pipeline}: resized_rgb_u8 and pixel_values bit for bit`, async () => {
      const file = path.join(DIR, img.file);
      const rgb = await preprocessRgbU8(file, config);
      assert.equal([rgb.height, rgb.width, rgb.channels], [224, 224, 3]);
      const want = ref.tensors.get(`${img.key}.${pipeline}.resized_rgb_u8`)!;
      assert.ok(want, 'reference present');
      assert.is(firstMismatch(rgb.data, want.bytes(), 'resized_rgb_u8'), '');
      const pv = ref.tensors.get(`${img.key}.${pipeline}.pixel_values`);
      if (pv) assert.is(firstMismatch(await preprocess(file, config), pv.data(), 'pixel_values'), '');
    });

for (const img of meta.images as { key: string; file: string; width: number; height: number; mode: string }[]) {
  const want = ref.tensors.get(`${img.key}.decoded_rgb`);
  if (!want) continue;
  Preprocess(`${img.key}: decoded convert('RGB') bit for bit`, async () => {
    const d = await decodeImage(path.join(DIR, img.file));
    assert.equal([d.width, d.height], [img.width, img.height]);
    assert.is(d.mode, img.mode);
    assert.is(firstMismatch(toRgb(d).data, want.bytes(), 'decoded_rgb'), '');
    const alpha = ref.tensors.get(`${img.key}.decoded_alpha`);
    if (alpha) assert.is(firstMismatch(d.data.filter((_, i) => i % 4 === 3), alpha.bytes(), 'decoded_alpha'), '');
  });
}

Preprocess('pixel_values from a Buffer equal those from the path', async () => {
  const file = path.join(DIR, 'tiny.png');
  const a = await preprocess(file, PIPELINES.openai_clip_224);
  const b = await preprocess(fs.readFileSync(file), PIPELINES.openai_clip_224);
  assert.is(firstMismatch(a, b, 'pixel_values'), '');
  assert.is(a.length, 3 * 224 * 224);
});

Preprocess('EXIF orientation: stored pixels by default, rotated on request', async () => {
  const file = path.join(DIR, 'exif_orientation.jpg');
  const plain = await decodeImage(file);
  assert.equal([plain.width, plain.height, plain.orientation], [320, 200, 6]);
  const turned = await decodeImage(file, { applyExifOrientation: true });
  assert.equal([turned.width, turned.height], [200, 320]);
  // Orientation 6: rotate 90° clockwise, so output (x, y) comes from stored (y, H − 1 − x).
  const C = 3;
  let same = 0;
  for (const [x, y] of [[0, 0], [199, 0], [0, 319], [57, 211], [150, 30]]) {
    const sx = y, sy = plain.height - 1 - x;
    for (let c = 0; c < C; c++)
      if (Math.abs(turned.data[(y * 200 + x) * C + c] - plain.data[(sy * 320 + sx) * C + c]) <= 2) same++;
  }
  assert.is(same, 15);
});

Preprocess('broken, empty, truncated, non-image and oversized inputs give clear errors', async () => {
  const jpeg = fs.readFileSync(path.join(DIR, 'pokemon.jpeg'));
  const png = fs.readFileSync(path.join(DIR, 'gray_l.png'));
  await rejectsCode(decodeImage(new Uint8Array(0), { name: 'empty.png' }), 'E_FORMAT', /empty\.png.*empty/);
  await rejectsCode(decodeImage(jpeg.subarray(0, jpeg.length >> 1), { name: 'half.jpg' }), 'E_FORMAT', /half\.jpg/);
  await rejectsCode(decodeImage(png.subarray(0, 200), { name: 'cut.png' }), 'E_FORMAT');
  const corrupt = Buffer.from(png);
  corrupt.fill(0x5a, 100, 4000);
  await rejectsCode(decodeImage(corrupt, { name: 'corrupt.png' }), 'E_FORMAT');
  await rejectsCode(decodeImage(Buffer.from('just some text, not an image\n'.repeat(10)), { name: 'notes.txt' }), 'E_FORMAT', /notes\.txt/);
  await rejectsCode(decodeImage(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>'), { name: 'a.svg' }), 'E_UNSUPPORTED', /svg/);
  await rejectsCode(decodeImage(path.join(DIR, 'no_such_file.png')), 'E_IO', /no_such_file\.png/);
  await rejectsCode(decodeImage(path.join(DIR, 'gray_l.png'), { maxPixels: 257 * 173 - 1 }), 'E_LIMIT', /257x173/);
  const ok = await decodeImage(path.join(DIR, 'gray_l.png'), { maxPixels: 257 * 173 });
  assert.is(ok.channels, 1);
});

Preprocess.run();
