import * as zlib from 'node:zlib';
import sharp from 'sharp';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeImage } from '../../src/image';
import { rng } from '../helpers';

const Formats = suite('image/formats');

const W = 13, H = 9;
function pixels(C: number, seed: number): Buffer {
  const r = rng(seed);
  const b = Buffer.alloc(W * H * C);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
  return b;
}
const encoder = (data: Buffer, channels: 1 | 2 | 3 | 4) => sharp(data, { raw: { width: W, height: H, channels } });

for (const [fmt, make] of [
  ['png', (s: sharp.Sharp) => s.png()],
  ['webp', (s: sharp.Sharp) => s.webp({ lossless: true })],
  ['tiff', (s: sharp.Sharp) => s.tiff({ compression: 'lzw' })],
] as const)
  for (const C of [3, 4] as const)
    Formats(`${fmt} ${C} channels decodes losslessly in its own layout`, async () => {
      const src = pixels(C, C * 17 + fmt.length);
      if (C === 4) for (let p = 0; p < W * H; p += 2) src[p * 4 + 3] = 255; // WebP needs some opaque pixels kept
      const d = await decodeImage(await make(encoder(src, C)).toBuffer());
      assert.equal([d.width, d.height, d.channels, d.mode, d.format], [W, H, C, C === 4 ? 'RGBA' : 'RGB', fmt]);
      // Lossless WebP may rewrite the colour of fully transparent pixels; compare the rest.
      for (let p = 0; p < W * H; p++)
        if (C === 3 || src[p * 4 + 3] !== 0)
          for (let c = 0; c < C; c++) assert.is(d.data[p * C + c], src[p * C + c], `pixel ${p} channel ${c}`);
    });

Formats('GIF and palette PNG are mode P (resized with NEAREST)', async () => {
  const gif = await decodeImage(await encoder(pixels(3, 9), 3).gif().toBuffer());
  assert.is(gif.mode, 'P');
  assert.is(gif.format, 'gif');
  const p = await decodeImage(await encoder(pixels(3, 9), 3).png({ palette: true, colours: 16 }).toBuffer());
  assert.is(p.mode, 'P');
});

// A 1-bit grayscale PNG written by hand (sharp writes none): Pillow opens it as mode 1.
function crc32(buf: Buffer): number {
  let c = ~0;
  for (const b of buf) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}
function chunk(type: string, body: Buffer): Buffer {
  const len = Buffer.alloc(4), crc = Buffer.alloc(4), tb = Buffer.concat([Buffer.from(type, 'latin1'), body]);
  len.writeUInt32BE(body.length);
  crc.writeUInt32BE(crc32(tb));
  return Buffer.concat([len, tb, crc]);
}
function png(bitDepth: number, colourType: number, raw: Buffer): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0);
  ihdr.writeUInt32BE(H, 4);
  ihdr[8] = bitDepth;
  ihdr[9] = colourType;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', zlib.deflateSync(raw)), chunk('IEND', Buffer.alloc(0)),
  ]);
}

Formats('8-bit greyscale and greyscale + alpha PNGs are L and LA, one colour channel', async () => {
  for (const [C, colourType, mode] of [[1, 0, 'L'], [2, 4, 'LA']] as const) {
    const src = pixels(C, 5 + C);
    const raw = Buffer.alloc(H * (W * C + 1));
    for (let y = 0; y < H; y++) src.copy(raw, y * (W * C + 1) + 1, y * W * C, (y + 1) * W * C);
    const d = await decodeImage(png(8, colourType, raw));
    assert.equal([d.channels, d.mode], [C, mode]);
    assert.equal(Array.from(d.data), Array.from(src));
  }
});

Formats('1-bit PNG is mode 1, expanded to 0 / 255', async () => {
  const stride = Math.ceil(W / 8);
  const raw = Buffer.alloc(H * (stride + 1));
  const bits: number[] = [];
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const v = (x * 3 + y * 5) % 7 < 3 ? 1 : 0;
      bits.push(v);
      if (v) raw[y * (stride + 1) + 1 + (x >> 3)] |= 0x80 >> (x & 7);
    }
  const d = await decodeImage(png(1, 0, raw));
  assert.equal([d.mode, d.channels], ['1', 1]);
  assert.equal(Array.from(d.data), bits.map((b) => b * 255));
});

Formats('a truncated JPEG or PNG is refused with E_FORMAT, as Pillow refuses it ("image file is truncated")', async () => {
  const src = pixels(3, 5);
  for (const bytes of [await encoder(src, 3).jpeg({ quality: 90 }).toBuffer(), await encoder(src, 3).png().toBuffer()]) {
    const cut = bytes.subarray(0, Math.floor((bytes.length * 2) / 3));
    const err = await decodeImage(cut).then(() => undefined, (e: Error & { code?: string }) => e);
    assert.ok(err, 'refused');
    assert.is(err!.code, 'E_FORMAT', err!.message);
  }
});

Formats('16-bit greyscale is scaled to 8 bits (v >> 8), where Pillow clamps (documented difference)', async () => {
  // Pillow opens a 16-bit grey PNG as mode I and convert('RGB') clamps it to 255, so all but the
  // darkest 1/256 of the range turns white (and a 16-bit grey TIFF, mode I;16, cannot be resized
  // at all); clipkit keeps the image, taking the top byte as Pillow does for 16-bit RGB.
  const r = rng(3);
  const raw = Buffer.alloc(H * (2 * W + 1));
  const held: number[] = [];
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const v = Math.floor(r() * 65536);
      held.push(v);
      raw.writeUInt16BE(v, y * (2 * W + 1) + 1 + 2 * x);
    }
  const d = await decodeImage(png(16, 0, raw));
  assert.equal([d.mode, d.channels], ['L', 1]);
  assert.equal(Array.from(d.data), held.map((v) => v >> 8));
});

Formats.run();
