/**
 * The ICO / CUR reader on broken and hostile files, through the public decodeImage: every
 * truncation of a few valid files against what Pillow 9.4 does with it, the alpha Pillow gives,
 * empty and truncated directories, entries pointing outside the file, AND masks the entry's size
 * misplaces, sizes over the pixel limit, and random corruption. The pixels of valid files are
 * checked against Pillow in pillow_cases.test.ts (test/fixtures/images/ico, from make_ico_cases.py).
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipkitError, decodeImage } from '../../src';
import { tempDir } from '../helpers';
import { OWN_FIXTURES } from '../reference_fixtures';
import { matchesPillowPrefixes, outcome, rejectsWith, survivesCorruption } from './decode_outcome';

const Ico = suite('image/ico');
const DIR = join(OWN_FIXTURES, 'images', 'ico');
const fixture = (name: string) => new Uint8Array(readFileSync(join(DIR, name)));
const json = (name: string) => JSON.parse(readFileSync(join(DIR, name), 'utf8'));

interface Entry {
  w: number;
  h: number;
  bpp?: number;
  data: Uint8Array;
  size?: number;
  offset?: number;
}

/** An ICO (kind 1) or CUR (kind 2): the directory, then each entry's data in order. */
function icon(kind: 1 | 2, entries: Entry[], count = entries.length): Uint8Array {
  const head = Buffer.alloc(6 + 16 * entries.length);
  head.writeUInt16LE(kind, 2);
  head.writeUInt16LE(count, 4);
  let at = head.length;
  entries.forEach((e, i) => {
    const p = 6 + 16 * i;
    head[p] = e.w & 255;
    head[p + 1] = e.h & 255;
    head.writeUInt16LE(1, p + 4);
    head.writeUInt16LE(e.bpp ?? 24, p + 6);
    head.writeUInt32LE(e.size ?? e.data.length, p + 8);
    head.writeUInt32LE(e.offset ?? at, p + 12);
    at += e.data.length;
  });
  return new Uint8Array(Buffer.concat([head, ...entries.map((e) => Buffer.from(e.data))]));
}

/** A 40-byte-header 24-bit DIB of w × h pixels (height field 2h), its pixels and an opaque AND mask. */
function dib24(w: number, h: number, heightField = 2 * h): Uint8Array {
  const head = Buffer.alloc(40);
  head.writeUInt32LE(40, 0);
  head.writeInt32LE(w, 4);
  head.writeInt32LE(heightField, 8);
  head.writeUInt16LE(1, 12);
  head.writeUInt16LE(24, 14);
  const xor = Buffer.alloc(Math.ceil((w * 3) / 4) * 4 * h, 0x55);
  const and = Buffer.alloc(4 * Math.ceil(w / 32) * h);
  return new Uint8Array(Buffer.concat([head, xor, and]));
}

/** A PNG's signature and IHDR chunk claiming w × h (no pixel data). */
function pngHead(w: number, h: number): Uint8Array {
  const ihdr = Buffer.alloc(25);
  ihdr.writeUInt32BE(13, 0);
  ihdr.write('IHDR', 4, 'latin1');
  ihdr.writeUInt32BE(w, 8);
  ihdr.writeUInt32BE(h, 12);
  ihdr[16] = 8;
  ihdr[17] = 6;
  return new Uint8Array(Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr]));
}

Ico('decodeImage picks ICO and CUR by their bytes, not by the file name', async () => {
  const ico = await decodeImage(fixture('ico_24bpp_11x9.ico'), { name: 'x.png' });
  assert.equal([ico.format, ico.mode, ico.width, ico.height], ['ico', 'RGBA', 11, 9]);
  const dir = tempDir('clipkit-ico-');
  copyFileSync(join(DIR, 'cur_8bpp_13x7.cur'), join(dir, 'pointer.bmp'));
  const cur = await decodeImage(join(dir, 'pointer.bmp'));
  assert.equal([cur.format, cur.mode, cur.width, cur.height], ['ico', 'P', 13, 7]);
  // An icon whose frame is a PNG still reports format ico.
  assert.is((await decodeImage(fixture('ico_png_largest_16x12.ico'))).format, 'ico');
  const png = await sharp(Buffer.alloc(5 * 3 * 3, 90), { raw: { width: 5, height: 3, channels: 3 } }).png().toBuffer();
  assert.is((await decodeImage(png, { name: 'x.ico' })).format, 'png');
});

// A PNG frame is decoded by libvips, which refuses a PNG cut inside its last IDAT chunk where
// Pillow decodes it when the pixels are complete (see formats.test.ts): for those files clipkit
// must refuse whatever Pillow refuses, and decode (the same pixels) a subset of what it decodes.
const PNG_FRAME = new Set(['ico_png_largest_16x12.ico']);
const truncations = json('truncations.json').files as Record<string, { length: number; decodes: number[] }>;
for (const [name, t] of Object.entries(truncations))
  Ico(`${name}: each of its ${t.length} prefixes decodes where Pillow decodes it, to the same pixels, and is E_FORMAT elsewhere`, async () => {
    await matchesPillowPrefixes(name, fixture(name), t, PNG_FRAME.has(name));
  });

const alpha = json('alpha.json').files as Record<string, number[]>;
Ico("the alpha of RGBA icons and cursors is Pillow's: AND masks, 4th bytes, bottom-up even for top-down frames", async () => {
  assert.ok('ico_32bpp_top_down_5x3.ico' in alpha && 'ico_1bpp_13x7.ico' in alpha, 'cases');
  for (const [name, want] of Object.entries(alpha)) {
    const d = await decodeImage(fixture(name));
    assert.is(d.channels, 4, name);
    assert.equal(Array.from(d.data.filter((_, i) => i % 4 === 3)), want, name);
  }
});

Ico('an empty or truncated directory is E_FORMAT', async () => {
  await rejectsWith(icon(1, []), 'E_FORMAT', /^Cannot decode x\.ico: the icon directory lists no images$/, { name: 'x.ico' });
  await rejectsWith(icon(1, [{ w: 4, h: 4, data: dib24(4, 4) }], 100), 'E_FORMAT', /the icon directory of 100 entries ends at byte 126 of 1606 \(truncated\)/);
  // A cursor's entries are read one by one: here the 3rd lies past the end of the file.
  await rejectsWith(icon(2, [{ w: 4, h: 4, data: dib24(4, 4) }], 3).subarray(0, 30), 'E_FORMAT', /the cursor directory of 3 entries ends at byte 30 of 54 \(truncated\)/);
  // A cursor with no entries is not taken for one (an uncompressed TGA starts the same way).
  const got = await outcome(icon(2, []));
  assert.ok(got instanceof ClipkitError ? got.code === 'E_FORMAT' : got.format !== 'ico', 'not read as a cursor');
});

Ico('entries pointing outside the file are E_FORMAT', async () => {
  const data = dib24(4, 4);
  await rejectsWith(icon(1, [{ w: 4, h: 4, data, offset: 0xfffffff0 }]), 'E_FORMAT', /its largest image's offset 4294967280 lies past the end of the file \(\d+ bytes\)/);
  await rejectsWith(icon(1, [{ w: 4, h: 4, data, offset: 1000 }]), 'E_FORMAT', /offset 1000 lies past the end/);
  // Near the end: the bitmap header does not fit.
  await rejectsWith(icon(1, [{ w: 4, h: 4, data: data.subarray(0, 30) }]), 'E_FORMAT', /\(its bitmap at byte 22\): the 40-byte bitmap header ends at byte 52 of 62 \(truncated\)/);
  await rejectsWith(icon(2, [{ w: 4, h: 4, data, offset: 0xfffffff0 }]), 'E_FORMAT', /the bitmap header at byte 4294967280 lies past the end of the file/);
  // The mask and pixels past the end of the file.
  await rejectsWith(icon(1, [{ w: 4, h: 40, data: dib24(4, 40) }]).subarray(0, 200), 'E_FORMAT', /puts the AND mask at byte 542, past the end of the file \(200 bytes\)/);
  await rejectsWith(icon(2, [{ w: 4, h: 40, data: dib24(4, 40) }]).subarray(0, 200), 'E_FORMAT', /the pixel data ends at byte 200 of 542 \(truncated\)/);
});

Ico("the AND mask is where the entry's size says: a size too small or too large is E_FORMAT", async () => {
  // The mask would start before the file does (Pillow: a negative seek).
  await rejectsWith(icon(1, [{ w: 64, h: 3, data: dib24(64, 3), size: 1 }]), 'E_FORMAT', /the directory's image size 1 is too small to hold the 64x3 AND mask/);
  const data = dib24(5, 3);
  await rejectsWith(icon(1, [{ w: 5, h: 3, data, size: 0xffffff00 }]), 'E_FORMAT', /the directory's image size 4294967040 puts the AND mask at byte 4294967050, past the end of the file \(122 bytes\)/);
  const ok = await decodeImage(icon(1, [{ w: 5, h: 3, data }]));
  assert.equal([ok.mode, ok.width, ok.height, ok.data[3]], ['RGBA', 5, 3, 255]);
});

Ico('a frame over the pixel limit is E_LIMIT before it is decoded, PNG or bitmap', async () => {
  const t0 = performance.now();
  await rejectsWith(icon(1, [{ w: 0, h: 0, bpp: 32, data: pngHead(100000, 100000) }]), 'E_LIMIT', /100000x100000 = 10000000000 pixels, over the limit/);
  const huge = dib24(1, 1, 200000);
  new DataView(huge.buffer).setInt32(4, 100000, true);
  await rejectsWith(icon(1, [{ w: 0, h: 0, data: huge }]), 'E_LIMIT', /100000x100000 = 10000000000 pixels/);
  await rejectsWith(icon(2, [{ w: 0, h: 0, data: huge }]), 'E_LIMIT', /100000x100000/);
  // With the limit lifted, the missing data is found before anything is allocated.
  await rejectsWith(icon(1, [{ w: 0, h: 0, data: huge }]), 'E_FORMAT', /too small to hold the 100000x100000 AND mask/, { maxPixels: 2 ** 40 });
  await rejectsWith(icon(1, [{ w: 0, h: 0, bpp: 32, data: huge }]), 'E_FORMAT', /the 32-bit pixels end at byte \d+ of 40000000062 \(truncated\)/, { maxPixels: 2 ** 40 });
  await rejectsWith(icon(2, [{ w: 0, h: 0, data: huge }]), 'E_FORMAT', /the pixel data ends at byte \d+ of \d+ \(truncated\)/, { maxPixels: 2 ** 40 });
  // Allocating the pixels would take seconds (gigabytes of fresh pages): 1.5 s tells the two apart
  // even on a loaded machine.
  assert.ok(performance.now() - t0 < 1500, `took ${performance.now() - t0} ms`);
});

Ico('a PNG frame is held to the size its IHDR gives, and a broken one is E_FORMAT', async () => {
  await rejectsWith(icon(1, [{ w: 4, h: 4, bpp: 32, data: pngHead(0, 4) }]), 'E_FORMAT', /the PNG image at byte 22 says it is 0x4 pixels/);
  await rejectsWith(icon(1, [{ w: 4, h: 4, bpp: 32, data: pngHead(4, 4).subarray(0, 20) }]), 'E_FORMAT', /the PNG image at byte 22 has no IHDR chunk/);
  await rejectsWith(icon(1, [{ w: 4, h: 4, bpp: 32, data: pngHead(4, 4) }]), 'E_FORMAT', /PNG image/);
});

Ico('a bitmap of one row leaves no image above its mask: E_FORMAT', async () => {
  await rejectsWith(icon(1, [{ w: 4, h: 1, data: dib24(4, 1, 1) }]), 'E_FORMAT', /the bitmap is 4x1, which leaves no rows above its mask/);
  await rejectsWith(icon(2, [{ w: 4, h: 1, data: dib24(4, 1, 1) }]), 'E_FORMAT', /leaves no rows above its mask/);
});

Ico('random corruption of valid files gives an image or a ClipkitError, never another error', async () => {
  const names = ['ico_4bpp_11x9.ico', 'ico_32bpp_11x9.ico', 'ico_png_largest_16x12.ico', 'cur_8bpp_13x7.cur', 'ico_size_byte_zero_wins_11x9.ico'];
  await survivesCorruption(new Map(names.map((n) => [n, fixture(n)])), 77031, 120);
});

Ico.run();
