/**
 * Images that Pillow and libvips see differently, and the formats clipkit reads itself, against
 * Pillow 9.4's own outputs (test/fixtures/make_*_cases.py write test/fixtures/images/<kind>/ with an
 * expected.json): the mode Image.open gives, convert('RGB'), and a resize in that mode (BICUBIC;
 * Pillow's NEAREST for P and 1) then convert('RGB'), as the CLIP pipelines do.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage, resizeInMode, toRgb } from '../../src';
import { OWN_FIXTURES } from '../reference_fixtures';
import { firstDiff } from '../tokenizers/fixtures';

interface Expected {
  mode: string;
  size: [number, number];
  rgb: number[];
  resized_8x6_rgb: number[];
  exif_transpose?: { size: [number, number]; rgb: number[] };
}

const Cases = suite('images as Pillow opens them');
const ROOT = join(OWN_FIXTURES, 'images');
const kinds = readdirSync(ROOT).filter((k) => existsSync(join(ROOT, k, 'expected.json'))).sort();

Cases('every kind of case has its expected outputs', () => {
  assert.ok(kinds.includes('cases'), `kinds found: ${kinds.join(', ')}`);
});

for (const kind of kinds) {
  const dir = join(ROOT, kind);
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as { files: Record<string, Expected> };
  for (const [file, want] of Object.entries(expected.files)) {
    Cases(`${kind}/${file}: mode ${want.mode}, convert('RGB') and a resize in that mode equal Pillow's`, async () => {
      const d = await decodeImage(join(dir, file));
      assert.is(d.mode, want.mode, 'mode');
      assert.equal([d.width, d.height], want.size, 'size');
      assert.is(firstDiff(toRgb(d, d.mode).data, want.rgb), '', "convert('RGB')");
      const resized = await resizeInMode(d, 8, 6, 'bicubic');
      assert.is(firstDiff(toRgb(resized, resized.mode).data, want.resized_8x6_rgb), '', "resize then convert('RGB')");
      if (want.exif_transpose) {
        const t = await decodeImage(join(dir, file), { applyExifOrientation: true });
        assert.equal([t.width, t.height], want.exif_transpose.size, 'exif_transpose size');
        assert.is(firstDiff(toRgb(t, t.mode).data, want.exif_transpose.rgb), '', 'exif_transpose');
      }
    });
  }
}

Cases.run();
