/**
 * Images that Pillow and libvips see differently, against Pillow 9.4's own outputs
 * (test/fixtures/make_image_cases.py): the mode Image.open gives, convert('RGB'), and a resize in
 * that mode (BICUBIC, NEAREST for P) then convert('RGB'), as the CLIP pipelines do.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage, resizeU8, toRgb } from '../../src';
import { OWN_FIXTURES } from '../reference_fixtures';
import { firstDiff } from '../tokenizers/fixtures';

const Cases = suite('images as Pillow opens them');
const DIR = join(OWN_FIXTURES, 'images', 'cases');
const expected = JSON.parse(readFileSync(join(DIR, 'expected.json'), 'utf8')) as {
  files: Record<string, { mode: string; size: [number, number]; rgb: number[]; resized_8x6_rgb: number[]; exif_transpose?: { size: [number, number]; rgb: number[] } }>;
};

for (const [file, want] of Object.entries(expected.files)) {
  Cases(`${file}: mode ${want.mode}, convert('RGB') and a resize in that mode equal Pillow's`, async () => {
    const d = await decodeImage(join(DIR, file));
    assert.is(d.mode, want.mode, 'mode');
    assert.equal([d.width, d.height], want.size, 'size');
    assert.is(firstDiff(toRgb(d).data, want.rgb), '', "convert('RGB')");
    const resized = await resizeU8(d, 8, 6, { filter: d.mode === 'P' || d.mode === '1' ? 'nearest' : 'bicubic' });
    assert.is(firstDiff(toRgb(resized).data, want.resized_8x6_rgb), '', "resize then convert('RGB')");
    if (want.exif_transpose) {
      const t = await decodeImage(join(DIR, file), { applyExifOrientation: true });
      assert.equal([t.width, t.height], want.exif_transpose.size, 'exif_transpose size');
      assert.is(firstDiff(toRgb(t).data, want.exif_transpose.rgb), '', 'exif_transpose');
    }
  });
}

Cases.run();
