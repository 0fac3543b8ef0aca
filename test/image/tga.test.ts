/**
 * The TGA reader on broken and hostile files, through the public decodeImage: truncations, sizes the
 * data cannot fill, RLE that overruns the image, colour map indices past the map, variants Pillow
 * 9.4 refuses, and bytes that are no TGA at all. The pixels of valid files are checked against
 * Pillow in pillow_cases.test.ts (test/fixtures/images/tga, from make_tga_cases.py).
 */
import { copyFileSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipkitError, decodeImage } from '../../src';
import type { DecodedImage } from '../../src';
import { TGA } from '../../src/image/readers/tga';
import { rng, tempDir } from '../helpers';
import { OWN_FIXTURES } from '../reference_fixtures';
import { rejectsWith } from './decode_outcome';

const Tga = suite('image/tga');
const DIR = join(OWN_FIXTURES, 'images', 'tga');
const fixture = (name: string) => new Uint8Array(readFileSync(join(DIR, name)));
const FOOTER = Buffer.concat([Buffer.alloc(8), Buffer.from('TRUEVISION-XFILE.\0', 'latin1')]);

interface Head {
  type: number;
  w: number;
  h: number;
  depth: number;
  descriptor?: number;
  idLength?: number;
  mapType?: number;
  mapFirst?: number;
  mapLength?: number;
  mapDepth?: number;
}

/** An 18-byte TGA header and whatever follows it. */
function tga(h: Head, ...rest: ArrayLike<number>[]): Uint8Array {
  const head = Buffer.alloc(18);
  head[0] = h.idLength ?? 0;
  head[1] = h.mapType ?? 0;
  head[2] = h.type;
  head.writeUInt16LE(h.mapFirst ?? 0, 3);
  head.writeUInt16LE(h.mapLength ?? 0, 5);
  head[7] = h.mapDepth ?? 0;
  head.writeUInt16LE(h.w, 12);
  head.writeUInt16LE(h.h, 14);
  head[16] = h.depth;
  head[17] = h.descriptor ?? 0;
  return new Uint8Array(Buffer.concat([head, ...rest.map((r) => Buffer.from(Array.from(r)))]));
}

const grey = (d: DecodedImage) => Array.from(d.data);

Tga('every fixture is read as TGA by its content, whatever it is called', async () => {
  const files = readdirSync(DIR).filter((f) => f.endsWith('.tga'));
  assert.ok(files.length >= 20, `${files.length} fixtures`);
  const dir = tempDir('clipkit-tga-');
  for (const f of files) {
    const byPath = await decodeImage(join(DIR, f));
    assert.is(byPath.format, 'tga', f);
    const asPhoto = await decodeImage(fixture(f), { name: 'photo.jpg' });
    assert.is(asPhoto.format, 'tga', `${f} as bytes named photo.jpg`);
    const renamed = join(dir, f.replace(/\.tga$/, '.png'));
    copyFileSync(join(DIR, f), renamed);
    const again = await decodeImage(renamed);
    assert.equal([again.format, again.mode, again.width, again.height], ['tga', byPath.mode, byPath.width, byPath.height], renamed);
    assert.equal(again.data, byPath.data, renamed);
  }
});

Tga('a JPEG or PNG named .tga is still read as JPEG or PNG', async () => {
  const dir = tempDir('clipkit-tga-');
  const raw = sharp(Buffer.alloc(5 * 3 * 3, 90), { raw: { width: 5, height: 3, channels: 3 } });
  for (const [fmt, bytes] of [['jpeg', await raw.clone().jpeg().toBuffer()], ['png', await raw.clone().png().toBuffer()]] as const) {
    const path = join(dir, `${fmt}.tga`);
    writeFileSync(path, bytes);
    const d = await decodeImage(path);
    assert.equal([d.format, d.width, d.height], [fmt, 5, 3]);
    assert.not.ok(TGA.sniff(bytes), `${fmt} sniffed as TGA`);
  }
});

/** Where a fixture's pixel data ends: before the TGA 2.0 footer when it has one. */
function pixelsEnd(b: Uint8Array): number {
  const tail = Buffer.from(b.subarray(b.length - FOOTER.length));
  return tail.equals(FOOTER) ? b.length - FOOTER.length : b.length;
}

for (const f of ['rgb24_pillow_id.tga', 'rgb24_rle_cross_rows_id.tga', 'p8_map24_first5.tga', 'p8_map16_rle_first3.tga', 'rgba32_rle_top_right.tga', 'bw1_pillow.tga', 'la16_pillow_rle.tga', 'rgb16_rle_top.tga'])
  Tga(`${f}: every truncation of its pixel data is E_FORMAT; cutting only the footer changes nothing`, async () => {
    const b = fixture(f);
    const whole = await decodeImage(b);
    const end = pixelsEnd(b);
    for (let n = 0; n < end; n++) {
      const err = await rejectsWith(b.subarray(0, n), 'E_FORMAT', /./, { name: 'cut.tga' });
      assert.match(err.message, n === 0 ? /empty/ : /cut\.tga/);
    }
    for (let n = end; n < b.length; n++) assert.equal((await decodeImage(b.subarray(0, n))).data, whole.data, `${n} bytes`);
  });

Tga('a truncated RLE file says where its data ends and which pixel it stopped at', async () => {
  // 3x2 grey: a run of 3, then a raw packet of 3 of which 2 bytes are there.
  const err = await rejectsWith(tga({ type: 11, w: 3, h: 2, depth: 8 }, [0x82, 5, 0x02, 1, 2]), 'E_FORMAT', /x\.tga/, { name: 'x.tga' });
  assert.is(err.message, 'Cannot decode x.tga: the RLE data ends at byte 23, inside the raw packet of 3 pixels at byte 20, before pixel 3 of 6 (truncated)');
});

Tga('65535 x 65535 with little data: E_FORMAT at once, nothing allocated, whatever maxPixels allows', async () => {
  for (const type of [2, 10, 3, 11, 1, 9]) {
    const kind = type & 7;
    const map = kind === 1 ? { mapType: 1, mapLength: 2, mapDepth: 24 } : {};
    const b = tga({ type, w: 65535, h: 65535, depth: kind === 2 ? 24 : 8, ...map }, new Uint8Array(1000).fill(0x81));
    const t0 = Date.now();
    for (const maxPixels of [undefined, 2 ** 40]) await rejectsWith(b, 'E_FORMAT', /not a supported image/, { maxPixels });
    assert.ok(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
    assert.not.ok(TGA.sniff(b));
    assert.throws(() => TGA.header(b, 'big.tga'), (e: ClipkitError) => e.code === 'E_FORMAT' && /big\.tga.*(need|truncated)/.test(e.message));
  }
});

Tga('an RLE image its data could fill is held to maxPixels before anything is decoded', async () => {
  // 4000 x 4000 grey: 125000 runs of 128 pixels (2 bytes each) would fill it.
  const runs = new Uint8Array(4000 * 4000 / 128 * 2);
  for (let i = 0; i < runs.length; i += 2) runs[i] = 0xff;
  const b = tga({ type: 11, w: 4000, h: 4000, depth: 8 }, runs);
  await rejectsWith(b, 'E_LIMIT', /4000x4000 = 16000000 pixels, over the limit of 1000000/, { maxPixels: 1_000_000 });
  // One byte short of the fewest packets that could hold it: not a TGA this file can be.
  await rejectsWith(b.subarray(0, b.length - 1), 'E_FORMAT', /not a supported image/, { maxPixels: 1_000_000 });
  assert.throws(() => TGA.header(b.subarray(0, b.length - 1), 'short.tga'), (e: ClipkitError) => e.code === 'E_FORMAT' && /at least 250000 bytes of RLE data/.test(e.message));
});

Tga('RLE: a run past the image is E_FORMAT, a run across rows E_UNSUPPORTED (as Pillow), raw packets may cross rows and overrun', async () => {
  const head = { type: 11, w: 3, h: 2, depth: 8, descriptor: 0x20 };
  await rejectsWith(tga(head, [0x82, 5, 0x83, 6]), 'E_FORMAT', /a run of 4 pixels at byte 20, from pixel 3, overruns the image's 6 pixels/);
  await rejectsWith(tga(head, [0x80, 5, 0x82, 6]), 'E_UNSUPPORTED', /a run of 3 pixels at byte 20, from pixel 1, crosses from row 0 to the next, which Pillow 9\.4 refuses/);
  await rejectsWith(tga(head, [0xff, 5]), 'E_FORMAT', /overruns/);
  // Raw packets: 2 pixels, then 5 across the row boundary and 1 past the end (ignored, as Pillow).
  const d = await decodeImage(tga(head, [0x01, 1, 2, 0x04, 3, 4, 5, 6, 99]));
  assert.equal([d.mode, grey(d)], ['L', [1, 2, 3, 4, 5, 6]]);
  // ... but the whole raw packet must be in the file.
  await rejectsWith(tga(head, [0x01, 1, 2, 0x04, 3, 4, 5, 6]), 'E_FORMAT', /inside the raw packet of 5 pixels at byte 21/);
  // Runs that end exactly at a row's end, bottom-up rows and a right-to-left origin.
  const r = await decodeImage(tga({ ...head, descriptor: 0x10 }, [0x82, 7, 0x00, 1, 0x81, 2]));
  assert.equal(grey(r), [2, 2, 1, 7, 7, 7]);
});

Tga('colour map indices below the first entry are black, past the last the grey ramp (as Pillow)', async () => {
  const map = [10, 20, 30, 40, 50, 60]; // BGR entries 2 and 3
  const d = await decodeImage(tga({ type: 1, w: 5, h: 1, depth: 8, mapType: 1, mapFirst: 2, mapLength: 2, mapDepth: 24 }, map, [0, 2, 3, 4, 255]));
  assert.equal([d.mode, d.channels], ['P', 3]);
  assert.equal(Array.from(d.data), [0, 0, 0, 30, 20, 10, 60, 50, 40, 4, 4, 4, 255, 255, 255]);
});

Tga('well-formed variants Pillow 9.4 refuses are E_UNSUPPORTED, saying why', async () => {
  const px = new Uint8Array(64);
  const cases: [Uint8Array, RegExp][] = [
    [tga({ type: 2, w: 2, h: 2, depth: 15 }, px), /15-bit colour/],
    [tga({ type: 1, w: 2, h: 2, depth: 16, mapType: 1, mapLength: 2, mapDepth: 24 }, px), /16-bit colour indices/],
    [tga({ type: 11, w: 8, h: 2, depth: 1 }, [0x81, 0xff, 0x81, 0x00]), /run-length encoded 1-bit/],
    [tga({ type: 1, w: 2, h: 2, depth: 8, mapType: 1, mapLength: 2, mapDepth: 32 }, px), /32-bit colour map/],
    [tga({ type: 2, w: 2, h: 2, depth: 24, mapType: 1, mapLength: 2, mapDepth: 24 }, px), /colour map on a true-colour image/],
    [tga({ type: 3, w: 2, h: 2, depth: 8, mapType: 1, mapLength: 2, mapDepth: 16 }, px), /colour map on a greyscale image/],
    [tga({ type: 1, w: 2, h: 2, depth: 8, mapType: 1, mapFirst: 250, mapLength: 7, mapDepth: 24 }, new Uint8Array(21), px), /257 entries/],
  ];
  for (const [b, why] of cases) {
    assert.ok(TGA.sniff(b), `recognised as TGA: ${why}`);
    await rejectsWith(b, 'E_UNSUPPORTED', why, { name: 'odd.tga' });
  }
});

Tga('a 10-byte ID field without a colour map: Pillow 9.4 takes the file for a PCX, except where PCX gives up', async () => {
  const id = Buffer.from('0123456789');
  const pcx = tga({ type: 2, w: 5, h: 3, depth: 24, idLength: 10 }, id, new Uint8Array(45));
  await rejectsWith(pcx, 'E_UNSUPPORTED', /10-byte ID field and no colour map, which Pillow 9\.4 takes for a PCX image/);
  // Too short for PCX's header (66 bytes), or an empty PCX bounding box: Pillow reads a TGA.
  const short = await decodeImage(tga({ type: 2, w: 2, h: 2, depth: 24, idLength: 10 }, id, new Uint8Array(12).fill(9)));
  assert.equal([short.format, short.width, short.height], ['tga', 2, 2]);
  const empty = await decodeImage(tga({ type: 2, w: 5, h: 3, depth: 24, idLength: 10, mapFirst: 0x100 }, id, new Uint8Array(45)));
  assert.equal([empty.format, empty.width, empty.height], ['tga', 5, 3]);
  // With a colour map the second byte is 1, which PCX does not take.
  const mapped = await decodeImage(tga({ type: 1, w: 5, h: 3, depth: 8, idLength: 10, mapType: 1, mapLength: 1, mapDepth: 24 }, id, [1, 2, 3], new Uint8Array(15)));
  assert.equal([mapped.format, mapped.mode], ['tga', 'P']);
});

Tga('headers whose fields disagree are not taken for TGA (E_FORMAT)', async () => {
  const px = new Uint8Array(64);
  for (const h of [
    { type: 2, w: 2, h: 2, depth: 24, mapType: 2 },
    { type: 1, w: 2, h: 2, depth: 8, idLength: 3 }, // colour-mapped without a map (the ID keeps it from starting like an ICO)
    { type: 2, w: 2, h: 2, depth: 8 },
    { type: 3, w: 2, h: 2, depth: 24 },
    { type: 4, w: 2, h: 2, depth: 8 },
    { type: 32, w: 2, h: 2, depth: 8 },
    { type: 1, w: 2, h: 2, depth: 8, mapType: 1, mapLength: 2, mapDepth: 8 },
    { type: 2, w: 0, h: 2, depth: 24 },
    { type: 3, w: 2, h: 0, depth: 8 },
    { type: 3, w: 2, h: 2, depth: 8, idLength: 200 }, // the ID field runs past the end
    { type: 1, w: 2, h: 2, depth: 8, mapType: 1, mapLength: 100, mapDepth: 24 }, // so does the map
  ]) {
    const b = tga(h, px);
    assert.not.ok(TGA.sniff(b), JSON.stringify(h));
    await rejectsWith(b, 'E_FORMAT', /not a supported image/);
    assert.throws(() => TGA.header(b, 'bad.tga'), (e: ClipkitError) => e.code === 'E_FORMAT' && /bad\.tga: not a TGA file/.test(e.message));
  }
});

Tga('random bytes (seeded) are never taken for a TGA', async () => {
  const r = rng(20240611);
  const random = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(r() * 256));
  for (let i = 0; i < 20000; i++) assert.not.ok(TGA.sniff(random(18 + Math.floor(r() * 500))), `random buffer ${i}`);
  for (let i = 0; i < 200; i++) await rejectsWith(random(1 + Math.floor(r() * 600)), 'E_FORMAT', /not a supported image|empty/);
  // Nor is a JPEG cut short, which libvips may give up on.
  const jpeg = await sharp(Buffer.from(random(32 * 32 * 3)), { raw: { width: 32, height: 32, channels: 3 } }).jpeg().toBuffer();
  for (const n of [2, 18, 100, jpeg.length >> 1]) {
    assert.not.ok(TGA.sniff(jpeg.subarray(0, n)), `JPEG cut to ${n} bytes`);
    await rejectsWith(new Uint8Array(jpeg.subarray(0, n)), 'E_FORMAT', /./);
  }
});

Tga('damaged fixtures (seeded byte flips) give pixels or a ClipkitError, never another error', () => {
  const r = rng(7);
  const files = ['rgb24_rle_cross_rows_id.tga', 'p8_map16_rle_first3.tga', 'rgba32_rle_top_right.tga', 'bw1_top_right.tga', 'rgb16_bottom_attr.tga'];
  let decoded = 0, refused = 0;
  for (let i = 0; i < 4000; i++) {
    const b = fixture(files[i % files.length]).slice();
    for (let k = 0, flips = 1 + Math.floor(r() * 4); k < flips; k++) {
      // Mostly the header, where one byte changes the whole layout.
      const at = r() < 0.6 ? Math.floor(r() * 18) : Math.floor(r() * b.length);
      b[at] = Math.floor(r() * 256);
    }
    try {
      if (!TGA.sniff(b)) continue;
      const { width, height } = TGA.header(b, 'flipped.tga');
      const out = TGA.decode(b, 'flipped.tga');
      assert.ok('data' in out && out.data.length === width * height * out.channels);
      decoded++;
    } catch (err) {
      assert.instance(err, ClipkitError, `flip ${i}: ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
      refused++;
    }
  }
  assert.ok(decoded > 100 && refused > 100, `${decoded} decoded, ${refused} refused`);
});

Tga('a TGA that starts as a cursor does (00 00 02 00, one "entry") is read as TGA, as Pillow falls back to it', async () => {
  // Type 2, no colour map, colour-map first index 256: the bytes of a CUR directory with one entry.
  const bytes = Uint8Array.from([0, 0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 2, 0, 24, 0,
    0, 37, 74, 111, 148, 185, 222, 3, 40, 77, 114, 151, 188, 225, 6, 43, 80, 117]);
  const d = await decodeImage(bytes);
  assert.equal([d.format, d.mode, d.width, d.height], ['tga', 'RGB', 3, 2]);
  // Pillow 9.4: [(151, 114, 77), (6, 225, 188), (117, 80, 43), (74, 37, 0), (185, 148, 111), (40, 3, 222)]
  assert.equal(Array.from(d.data), [151, 114, 77, 6, 225, 188, 117, 80, 43, 74, 37, 0, 185, 148, 111, 40, 3, 222]);
});

Tga.run();
