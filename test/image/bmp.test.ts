/**
 * The BMP reader on broken and hostile files, through the public decodeImage: every truncation of
 * a few valid files against what Pillow 9.4 does with it, sizes the data cannot fill, absurd
 * offsets and palette counts, RLE that ends early or overruns the image, variants Pillow refuses,
 * and random corruption. The pixels of valid files are checked against Pillow in
 * pillow_cases.test.ts (test/fixtures/images/bmp, from make_bmp_cases.py).
 */
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage } from '../../src';
import { tempDir } from '../helpers';
import { OWN_FIXTURES } from '../reference_fixtures';
import { matchesPillowPrefixes, rejectsWith, survivesCorruption } from './decode_outcome';

const Bmp = suite('image/bmp');
const DIR = join(OWN_FIXTURES, 'images', 'bmp');
const fixture = (name: string) => new Uint8Array(readFileSync(join(DIR, name)));
const json = (name: string) => JSON.parse(readFileSync(join(DIR, name), 'utf8'));

interface Dib {
  w: number;
  h: number;
  bits: number;
  compression?: number;
  colors?: number;
  headerSize?: number;
  masks?: number[];
}

/**
 * A BMP file: file header (bfOffBits right after the palette unless given), DIB header (the OS/2
 * layout for headerSize 12; at least 40 bytes written otherwise), then the palette and pixels.
 */
function bmp(d: Dib, palette: ArrayLike<number> = [], pixels: ArrayLike<number> = [], offset?: number): Uint8Array {
  const headerSize = d.headerSize ?? 40;
  let dib: Buffer;
  if (headerSize === 12) {
    dib = Buffer.alloc(12);
    dib.writeUInt32LE(12, 0);
    dib.writeUInt16LE(d.w, 4);
    dib.writeUInt16LE(d.h, 6);
    dib.writeUInt16LE(1, 8);
    dib.writeUInt16LE(d.bits, 10);
  } else {
    dib = Buffer.alloc(Math.max(headerSize, 40) + (headerSize === 40 && d.masks ? 12 : 0));
    dib.writeUInt32LE(headerSize, 0);
    dib.writeInt32LE(d.w, 4);
    dib.writeInt32LE(d.h, 8);
    dib.writeUInt16LE(1, 12);
    dib.writeUInt16LE(d.bits, 14);
    dib.writeUInt32LE(d.compression ?? 0, 16);
    dib.writeUInt32LE(d.colors ?? 0, 32);
    (d.masks ?? []).forEach((m, i) => dib.writeUInt32LE(m >>> 0, 40 + 4 * i));
  }
  const head = Buffer.alloc(14);
  head.write('BM', 0, 'latin1');
  head.writeUInt32LE(14 + dib.length + palette.length + pixels.length, 2);
  head.writeUInt32LE(offset ?? 14 + dib.length + palette.length, 10);
  return new Uint8Array(Buffer.concat([head, dib, Buffer.from(Array.from(palette)), Buffer.from(Array.from(pixels))]));
}

/** `n` palette entries (B, G, R, 0), colour i being (3i, 5i, 7i) mod 256: never the grey ramp. */
const palette = (n: number) => Array.from({ length: n }, (_, i) => [(7 * i) & 255, (5 * i) & 255, (3 * i + 1) & 255, 0]).flat();
const greyRamp = (n: number) => Array.from({ length: n }, (_, i) => [i & 255, i & 255, i & 255, 0]).flat();

Bmp('decodeImage picks BMP by its bytes, not by the file name', async () => {
  const bytes = fixture('rgb24_11x9.bmp');
  const named = await decodeImage(bytes, { name: 'photo.png' });
  assert.equal([named.format, named.mode, named.width, named.height], ['bmp', 'RGB', 11, 9]);
  const dir = tempDir('clipkit-bmp-');
  copyFileSync(join(DIR, 'rgb24_11x9.bmp'), join(dir, 'picture.jpg'));
  assert.is((await decodeImage(join(dir, 'picture.jpg'))).format, 'bmp');
  // And a PNG named .bmp is a PNG.
  const png = await sharp(Buffer.alloc(5 * 3 * 3, 90), { raw: { width: 5, height: 3, channels: 3 } }).png().toBuffer();
  assert.is((await decodeImage(png, { name: 'x.bmp' })).format, 'png');
});

// Pillow decodes a prefix only when it holds every byte the pixels need (the last row's padding
// and anything after an RLE image's last pixel are not needed); every other prefix is refused.
const truncations = json('truncations.json').files as Record<string, { length: number; decodes: number[] }>;
for (const [name, t] of Object.entries(truncations))
  Bmp(`${name}: each of its ${t.length} prefixes decodes where Pillow decodes it, to the same pixels, and is E_FORMAT elsewhere`, async () => {
    await matchesPillowPrefixes(name, fixture(name), t);
  });

const alpha = json('alpha.json').files as Record<string, number[]>;
Bmp('the alpha of RGBA bitfield BMPs is Pillow\'s (expected.json holds only RGB)', async () => {
  assert.ok(Object.keys(alpha).length >= 4, 'RGBA cases');
  for (const [name, want] of Object.entries(alpha)) {
    const d = await decodeImage(fixture(name));
    assert.is(d.channels, 4, name);
    assert.equal(Array.from(d.data.filter((_, i) => i % 4 === 3)), want, name);
  }
});

Bmp('a truncated file names the file and what is missing', async () => {
  const bytes = fixture('rgb24_11x9.bmp');
  await rejectsWith(bytes.subarray(0, 300), 'E_FORMAT', /^Cannot decode x\.bmp: the pixel data ends at byte 300 of 375 \(truncated\)$/, { name: 'x.bmp' });
  await rejectsWith(bytes.subarray(0, 10), 'E_FORMAT', /x\.bmp: the BMP file header ends at byte 10 of 14/, { name: 'x.bmp' });
  await rejectsWith(bytes.subarray(0, 30), 'E_FORMAT', /the 40-byte bitmap header ends at byte 30 of 54/);
});

Bmp('a header declaring 100000x100000 is E_LIMIT at once, before anything is allocated', async () => {
  for (const d of [{ w: 100000, h: 100000, bits: 24 }, { w: 100000, h: -100000, bits: 8, compression: 1 }, { w: 100000, h: 100000, bits: 1 }]) {
    const t0 = performance.now();
    await rejectsWith(bmp(d, d.bits <= 8 ? palette(2 ** Math.min(d.bits, 8)) : []), 'E_LIMIT', /100000x100000 = 10000000000 pixels, over the limit/);
    // Allocating the pixels would take seconds (gigabytes of fresh pages): 1.5 s tells the two apart
  // even on a loaded machine.
  assert.ok(performance.now() - t0 < 1500, `took ${performance.now() - t0} ms`);
  }
});

Bmp('sizes the data cannot fill are E_FORMAT before the pixels are allocated, whatever maxPixels allows', async () => {
  const t0 = performance.now();
  await rejectsWith(bmp({ w: 100000, h: 100000, bits: 24 }, [], [1, 2, 3]), 'E_FORMAT', /the pixel data ends at byte 57 of 30000000054 \(truncated\)/, { maxPixels: 2 ** 40 });
  // RLE: the data is walked before the pixels are allocated; 10 one-pixel rows do not fill 30000.
  const rows = Array.from({ length: 10 }, () => [1, 9, 0, 0]).flat();
  await rejectsWith(bmp({ w: 3, h: 30000, bits: 8, compression: 1 }, palette(256), rows), 'E_FORMAT', /the RLE data ends after 30 of 90000 pixels \(truncated\)/);
  await rejectsWith(bmp({ w: 50000, h: 50000, bits: 8, compression: 1 }, palette(256), [0, 0, 0, 1]), 'E_FORMAT', /the RLE data ends after 0 of 2500000000 pixels/, { maxPixels: 2 ** 40 });
  // Allocating the pixels would take seconds (gigabytes of fresh pages): 1.5 s tells the two apart
  // even on a loaded machine.
  assert.ok(performance.now() - t0 < 1500, `took ${performance.now() - t0} ms`);
});

Bmp('zero, negative and out-of-range sizes are E_FORMAT', async () => {
  await rejectsWith(bmp({ w: 0, h: 5, bits: 24 }, [], new Array(64).fill(0)), 'E_FORMAT', /the image is 0x5 pixels/);
  await rejectsWith(bmp({ w: 5, h: 0, bits: 24 }, [], new Array(64).fill(0)), 'E_FORMAT', /the image is 5x0 pixels/);
  await rejectsWith(bmp({ w: -5, h: 3, bits: 24 }, [], new Array(64).fill(0)), 'E_FORMAT', /the width is negative \(-5\)/);
  // Pillow takes a height as top-down only when its top byte is 0xFF; below that it reads a huge height.
  await rejectsWith(bmp({ w: 1, h: -20000000, bits: 24 }, [], new Array(64).fill(0)), 'E_FORMAT', /the height is -20000000/);
  const os2 = bmp({ w: 0, h: 0, bits: 24, headerSize: 12 });
  await rejectsWith(os2, 'E_FORMAT', /the image is 0x0 pixels/);
});

Bmp('a pixel data offset past the end of the file is E_FORMAT; offset 0 means right after the palette', async () => {
  await rejectsWith(bmp({ w: 2, h: 2, bits: 24 }, [], new Array(16).fill(7), 0xfffffff0), 'E_FORMAT', /the pixel data ends at byte 70 of 4294967294 \(truncated\)/);
  const d = await decodeImage(bmp({ w: 1, h: 1, bits: 24 }, [], [1, 2, 3, 0], 0));
  assert.equal(Array.from(d.data), [3, 2, 1]);
});

Bmp('palette counts: over 65536 refused, over 256 refused unless grey (Pillow opens those as L)', async () => {
  await rejectsWith(bmp({ w: 2, h: 2, bits: 8, colors: 70000 }, [], new Array(8).fill(0)), 'E_FORMAT', /the palette has 70000 colours \(at most 65536\)/);
  await rejectsWith(bmp({ w: 2, h: 2, bits: 8, colors: 0xffffffff }, [], new Array(8).fill(0)), 'E_FORMAT', /the palette has 4294967295 colours/);
  await rejectsWith(bmp({ w: 2, h: 1, bits: 8, colors: 300 }, palette(300), [0, 1, 0, 0]), 'E_FORMAT', /the palette has 300 entries \(Pillow reads at most 256\)/);
  const grey = await decodeImage(bmp({ w: 2, h: 1, bits: 8, colors: 300 }, greyRamp(300), [9, 250, 0, 0]));
  assert.equal([grey.mode, Array.from(grey.data)], ['L', [9, 250]]);
});

Bmp('a palette the file ends inside is not grey, and its pixels are refused as truncated', async () => {
  const file = bmp({ w: 2, h: 2, bits: 8 }, greyRamp(256)).subarray(0, 14 + 40 + 100);
  await rejectsWith(file, 'E_FORMAT', /the pixel data ends at byte 154 of 1084 \(truncated\)/);
});

Bmp('header sizes, bit depths and compressions Pillow does not read are E_UNSUPPORTED; nonsense ones E_FORMAT', async () => {
  const px = new Array(64).fill(0);
  for (const headerSize of [16, 52, 56]) await rejectsWith(bmp({ w: 2, h: 2, bits: 24, headerSize }, [], px), 'E_UNSUPPORTED', new RegExp(`a BMP header of ${headerSize} bytes`));
  for (const headerSize of [0, 13, 41, 0xffffffff]) await rejectsWith(bmp({ w: 2, h: 2, bits: 24, headerSize: 40 }, [], px).map((v, i) => (i >= 14 && i < 18 ? (headerSize >>> (8 * (i - 14))) & 255 : v)), 'E_FORMAT', new RegExp(`the BMP header size is ${headerSize}`));
  for (const bits of [2, 64]) await rejectsWith(bmp({ w: 2, h: 2, bits }, palette(4), px), 'E_UNSUPPORTED', new RegExp(`a BMP of ${bits} bits per pixel`));
  await rejectsWith(bmp({ w: 2, h: 2, bits: 7 }, palette(4), px), 'E_FORMAT', /a BMP of 7 bits per pixel \(expected 1, 4, 8, 16, 24 or 32\)/);
  await rejectsWith(bmp({ w: 2, h: 2, bits: 0, compression: 4 }, [], px), 'E_UNSUPPORTED', /a JPEG-compressed BMP/);
  await rejectsWith(bmp({ w: 2, h: 2, bits: 0, compression: 5 }, [], px), 'E_UNSUPPORTED', /a PNG-compressed BMP/);
  await rejectsWith(bmp({ w: 2, h: 2, bits: 32, compression: 6 }, [], px), 'E_UNSUPPORTED', /BI_ALPHABITFIELDS compression/);
  await rejectsWith(bmp({ w: 2, h: 2, bits: 32, compression: 99 }, [], px), 'E_FORMAT', /unknown BMP compression 99/);
});

Bmp('bitfields: only the mask layouts Pillow lists; others are E_UNSUPPORTED as in Pillow', async () => {
  const px = new Array(64).fill(0);
  const read = async (d: Dib) => (await decodeImage(bmp(d, [], px))).mode;
  assert.is(await read({ w: 2, h: 2, bits: 16, compression: 3, masks: [0xf800, 0x7e0, 0x1f] }), 'RGB');
  assert.is(await read({ w: 2, h: 2, bits: 32, compression: 3, headerSize: 108, masks: [0xff0000, 0xff00, 0xff, 0xff000000] }), 'RGBA');
  // 40-byte headers have no alpha mask: (R, G, B) = (0xff0000, 0xff00, 0xff) is BGRX, RGB.
  assert.is(await read({ w: 2, h: 2, bits: 32, compression: 3, masks: [0xff0000, 0xff00, 0xff] }), 'RGB');
  for (const d of [
    { w: 2, h: 2, bits: 32, compression: 3, headerSize: 124, masks: [0x3ff00000, 0xffc00, 0x3ff, 0] }, // 10-10-10
    { w: 2, h: 2, bits: 16, compression: 3, masks: [0xf00, 0xf0, 0xf] }, // 4-4-4
    { w: 2, h: 2, bits: 32, compression: 3, masks: [0xff, 0xff00, 0xff0000] }, // RGBX without alpha in a 40-byte header
    { w: 2, h: 2, bits: 8, compression: 3, masks: [0xe0, 0x1c, 0x3] },
  ])
    await rejectsWith(bmp(d, [], px), 'E_UNSUPPORTED', /BMP bitfields \(.*\) at \d+ bits per pixel, a layout Pillow does not read either/);
  await rejectsWith(bmp({ w: 2, h: 2, bits: 16, compression: 3, masks: [0xf800, 0x7e0, 0x1f] }).subarray(0, 60), 'E_FORMAT', /the bitfield masks end at byte 60 of 66/);
});

Bmp('RLE that ends before the last pixel is E_FORMAT (Pillow: "not enough image data")', async () => {
  const pal = palette(256);
  await rejectsWith(bmp({ w: 3, h: 2, bits: 8, compression: 1 }, pal, [3, 7, 0, 0, 0, 1]), 'E_FORMAT', /the RLE data ends after 3 of 6 pixels/); // early end of bitmap
  await rejectsWith(bmp({ w: 3, h: 2, bits: 8, compression: 1 }, pal, [3, 7, 0, 0, 2, 9]), 'E_FORMAT', /ends after 5 of 6 pixels/); // end of file
  await rejectsWith(bmp({ w: 3, h: 2, bits: 8, compression: 1 }, pal, [3, 7, 0, 0, 0, 5, 1, 2]), 'E_FORMAT', /ends after 5 of 6 pixels/); // absolute run cut short
  // A delta cut off after its first 2 bytes: Pillow fails to unpack the (right, up) it reads next.
  await rejectsWith(bmp({ w: 3, h: 2, bits: 8, compression: 1 }, pal, [3, 7, 0, 2, 1, 0, 5]), 'E_FORMAT', /the RLE delta at byte \d+ ends at byte \d+/);
  const full = await decodeImage(bmp({ w: 3, h: 2, bits: 8, compression: 1 }, pal, [3, 7, 0, 0, 3, 9]));
  assert.is(full.mode, 'P'); // no end of bitmap needed once the image is full
});

Bmp('RLE that overruns the image is cut where the image is full, as Pillow does, and reads nothing past the file', async () => {
  const pal = greyRamp(256);
  // A run of 200 in a 3-wide row: clipped; an absolute run of 255 and a delta of 255 rows: the image ends.
  const run = await decodeImage(bmp({ w: 3, h: 2, bits: 8, compression: 1 }, pal, [200, 5, 0, 0, 0, 255, ...new Array(255).fill(6), 0, 1]));
  assert.equal([run.mode, Array.from(run.data)], ['L', [6, 6, 6, 5, 5, 5]]);
  const delta = await decodeImage(bmp({ w: 3, h: 2, bits: 8, compression: 1 }, pal, [2, 5, 0, 2, 0, 0, 255, 255]));
  assert.equal(Array.from(delta.data), [0, 0, 0, 5, 5, 0]);
});

Bmp('RLE on a 24-bit or black-and-white bitmap is E_FORMAT, as Pillow has no raw mode for it', async () => {
  await rejectsWith(bmp({ w: 2, h: 1, bits: 24, compression: 1 }, [], [2, 5, 0, 1]), 'E_FORMAT', /RLE8 compression on a 24-bit bitmap/);
  await rejectsWith(bmp({ w: 2, h: 1, bits: 1, compression: 2 }, [0, 0, 0, 0, 255, 255, 255, 0], [2, 1, 0, 1]), 'E_FORMAT', /RLE4 compression on a black-and-white bitmap/);
});

Bmp('random corruption of valid files gives an image or a ClipkitError, never another error', async () => {
  const names = ['rgb24_11x9.bmp', 'rle8_13x7.bmp', 'rle4_11x9.bmp', 'p4_11x9.bmp', 'bitfields32_bgra_v4_11x9.bmp', 'os2_p8_11x9.bmp', 'bw1_top_down_13x7.bmp'];
  await survivesCorruption(new Map(names.map((n) => [n, fixture(n)])), 20240611, 70);
});

Bmp.run();
