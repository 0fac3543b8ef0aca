/**
 * PBM / PGM / PPM through the public decodeImage, beyond the files in pillow_cases: every truncation
 * of a few files (decoded where Pillow 9.4 still decodes them, E_FORMAT elsewhere), plain files over
 * Pillow's 1 MiB read size, hostile headers and bodies (clear errors, each within a second), and the
 * format taken from the bytes, not the name. Pillow's outputs come from
 * test/fixtures/make_netpbm_cases.py (images/netpbm/pillow_more.json).
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipkitError, decodeImage } from '../../src';
import type { DecodeOptions, DecodedImage, ErrorCode } from '../../src';
import { OWN_FIXTURES } from '../reference_fixtures';
import { rng, tempDir } from '../helpers';

const Netpbm = suite('image/netpbm');
const DIR = join(OWN_FIXTURES, 'images', 'netpbm');

type Recipe = (['text', string, number] | ['ramp', number, number, number, string[]])[];
interface More {
  truncations: Record<string, { length: number; decodes: Record<string, string> }>;
  large: Record<string, { recipe: Recipe; bytes_sha256: string; error?: true; mode?: string; size?: [number, number]; pixels_sha256?: string }>;
}
const more = JSON.parse(readFileSync(join(DIR, 'pillow_more.json'), 'utf8')) as More;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bytes = (s: string) => new Uint8Array(Buffer.from(s, 'latin1'));
const concat = (...parts: (string | Uint8Array)[]) => new Uint8Array(Buffer.concat(parts.map((p) => (typeof p === 'string' ? bytes(p) : p))));

/** The file the generator's recipe describes (make_netpbm_cases.py, build()). */
function build(recipe: Recipe): Uint8Array {
  const parts: Buffer[] = [];
  for (const part of recipe) {
    if (part[0] === 'text') parts.push(Buffer.from(part[1].repeat(part[2]), 'latin1'));
    else {
      const [, n, a, m, seps] = part;
      let s = '';
      for (let i = 0; i < n; i++) s += String((i * a) % m) + seps[i % seps.length];
      parts.push(Buffer.from(s, 'latin1'));
    }
  }
  return new Uint8Array(Buffer.concat(parts));
}

/** The error decodeImage rejects with: it must be a ClipkitError. */
async function failure(input: Uint8Array, opts: DecodeOptions = {}): Promise<ClipkitError | DecodedImage> {
  try {
    return await decodeImage(input, opts);
  } catch (err) {
    if (!(err instanceof ClipkitError)) throw new Error(`Expected a ClipkitError but received ${String((err as Error)?.stack ?? err)}`);
    return err;
  }
}

/** decodeImage rejects `input` with `code` and a message matching `match`, within a second. */
async function refuses(input: Uint8Array, code: ErrorCode, match: RegExp, opts: DecodeOptions = {}): Promise<void> {
  const t0 = performance.now();
  const got = await failure(input, { name: 'bad.pnm', ...opts });
  const ms = performance.now() - t0;
  if (!(got instanceof ClipkitError)) throw new Error(`Expected ${code} but ${got.width}x${got.height} ${got.mode} was decoded`);
  assert.is(got.code, code, got.message);
  assert.match(got.message, match);
  assert.ok(ms < 1000, `took ${ms.toFixed(0)} ms`);
}

for (const [file, { length, decodes }] of Object.entries(more.truncations))
  Netpbm(`every prefix of ${file}: Pillow's pixels where it decodes, E_FORMAT where it refuses`, async () => {
    const whole = new Uint8Array(readFileSync(join(DIR, file)));
    assert.is(whole.length, length);
    for (let n = 0; n <= length; n++) {
      const got = await failure(whole.subarray(0, n), { name: `${file}[:${n}]` });
      const want = decodes[String(n)];
      if (want === undefined) {
        assert.ok(got instanceof ClipkitError, `${n} bytes: decoded, where Pillow refuses`);
        assert.is((got as ClipkitError).code, 'E_FORMAT', `${n} bytes: ${(got as ClipkitError).message}`);
      } else {
        assert.ok(!(got instanceof ClipkitError), `${n} bytes: ${(got as ClipkitError).message}, where Pillow decodes`);
        assert.is(sha256((got as DecodedImage).data), want, `${n} bytes: the pixels`);
      }
    }
  });

for (const [name, c] of Object.entries(more.large))
  Netpbm(`a plain file over 1 MiB (${name}) decodes as Pillow's block decoder does`, async () => {
    const file = build(c.recipe);
    assert.is(sha256(file), c.bytes_sha256, 'the bytes built from the recipe');
    const got = await failure(file, { name });
    if (c.error) {
      assert.ok(got instanceof ClipkitError && got.code === 'E_FORMAT', `decoded, where Pillow refuses`);
      return;
    }
    if (got instanceof ClipkitError) throw got;
    assert.is(got.mode, c.mode);
    assert.equal([got.width, got.height], c.size);
    assert.is(sha256(got.data), c.pixels_sha256, 'the pixels');
  });

Netpbm('headers declaring huge images give E_LIMIT before anything is allocated', async () => {
  await refuses(bytes('P6 100000 100000 255\n\x01\x02\x03'), 'E_LIMIT', /100000x100000 = 10000000000 pixels, over the limit/);
  await refuses(bytes('P1 100000 100000\n0101'), 'E_LIMIT', /over the limit/);
  await refuses(bytes('P2 9999999999 9999999999 255\n'), 'E_LIMIT', /over the limit/);
  await refuses(bytes('P5 5 3 255\n'), 'E_LIMIT', /15 pixels, over the limit of 14/, { maxPixels: 14 });
});

Netpbm('binary pixels shorter than the header says: E_FORMAT naming the file and the bytes', async () => {
  await refuses(concat('P5 12 12 255\n', new Uint8Array(120)), 'E_FORMAT', /^Cannot decode bad\.pnm: the pixel data ends at byte 120 of 144 \(truncated\)$/);
  await refuses(concat('P6 5 3 1000\n', new Uint8Array(89)), 'E_FORMAT', /ends at byte 89 of 90/);
  await refuses(bytes('P4 13 7\n\x00'), 'E_FORMAT', /ends at byte 1 of 14/);
  await refuses(bytes('P6 1 1 255'), 'E_FORMAT', /ends at byte 0 of 3/);
});

Netpbm('maxval 0, 65536 and 70000, sizes of 0 or below, and numbers that are not numbers: E_FORMAT', async () => {
  for (const maxval of ['0', '65536', '70000', '-1'])
    await refuses(bytes(`P5 2 2 ${maxval}\n\x00\x00\x00\x00`), 'E_FORMAT', new RegExp(`maxval ${Number(maxval)} is outside 1\\.\\.65535`));
  for (const [w, h] of [['0', '5'], ['5', '0'], ['-3', '5'], ['5', '-0']])
    await refuses(bytes(`P5 ${w} ${h} 255\n\x00\x00\x00\x00\x00`), 'E_FORMAT', /both must be at least 1/);
  for (const bad of ['0x10', '1__0', '_1', '1_', '+', '1e3', '5\x00'])
    await refuses(bytes(`P5 ${bad} 1 255\n\x00`), 'E_FORMAT', /the header's width '.*' is not a number/);
  await refuses(bytes('P5 2 1 255#c\n\x01\x02'), 'E_FORMAT', /maxval '255\\x01\\x02' is not a number/); // a comment does not end a token
});

Netpbm('numbers past 10 characters, a million digits, a comment that never ends: E_FORMAT, quickly', async () => {
  await refuses(bytes('P5 12345678901 1 255\n\x00'), 'E_FORMAT', /width '12345678901'\.\.\. is longer than 10 characters/);
  await refuses(bytes('P5 1 1 00000000255\n\x00'), 'E_FORMAT', /maxval .* longer than 10 characters/);
  await refuses(concat('P6 ', '9'.repeat(1_000_000), ' 1 255\n'), 'E_FORMAT', /longer than 10 characters/);
  await refuses(concat('P6 1 1 #', 'x'.repeat(10_000_000)), 'E_FORMAT', /the header ends at byte 10000008 before its maxval/);
  await refuses(concat('P6 1 ', '#\n'.repeat(3_000_000)), 'E_FORMAT', /the header ends .* before its height/);
  await refuses(bytes('P6'), 'E_FORMAT', /the header ends at byte 2 before its width/);
});

Netpbm('plain files of whitespace, comments or one endless token: E_FORMAT, quickly', async () => {
  const ws = ' \t\r\n\x0b\x0c'.repeat(1_750_000); // 10.5 MB
  await refuses(concat('P2 100 100 255\n', ws), 'E_FORMAT', /the pixel data ends after 0 of 10000 samples \(truncated\)/);
  await refuses(concat('P3 100 100 255\n', ws), 'E_FORMAT', /ends after 0 of 30000 samples/);
  await refuses(concat('P1 100 100\n', ws), 'E_FORMAT', /ends after 0 of 10000 samples/);
  await refuses(concat('P2 100 100 255\n', '# comment\n'.repeat(1_000_000)), 'E_FORMAT', /ends after 0 of/);
  await refuses(concat('P2 100 100 255\n', '7'.repeat(10_000_000)), 'E_FORMAT', /a sample '7777777777\d*'\.\.\. is longer than 10 characters/);
  await refuses(concat('P2 100 100 255\n1 2 ', '7'.repeat(10_000_000), ' 3'), 'E_FORMAT', /longer than 10 characters/);
});

Netpbm('plain samples: over maxval, not numbers, a P1 byte other than 0 and 1: E_FORMAT', async () => {
  await refuses(bytes('P2 2 2 255\n1 2 256 4\n'), 'E_FORMAT', /the sample 256 is over maxval 255/);
  await refuses(bytes('P3 1 1 1000\n1 2 1001\n'), 'E_FORMAT', /the sample 1001 is over maxval 1000/);
  await refuses(bytes('P2 2 2 255\n1 2 abc 4\n'), 'E_FORMAT', /the sample 'abc' is not a number/);
  await refuses(bytes('P2 2 2 255\n1 2 3\n'), 'E_FORMAT', /ends after 3 of 4 samples/); // ends in whitespace: nothing to repeat
  await refuses(bytes('P1 3 2\n010110x'), 'E_FORMAT', /'x' in a P1 file's pixels/); // checked even past the last pixel
  await refuses(bytes('P1 3 2\n01011\n'), 'E_FORMAT', /ends after 5 of 6 samples/);
});

Netpbm("plain files: Pillow's repeat of a last sample not followed by whitespace fills a large image quickly", async () => {
  const t0 = performance.now();
  const d = await decodeImage(bytes('P2 4000 3000 255\n1 2 37'));
  assert.ok(performance.now() - t0 < 1000);
  assert.equal([d.width, d.height, d.channels, d.mode], [4000, 3000, 1, 'L']);
  assert.equal([d.data[0], d.data[1], d.data[2], d.data[d.data.length - 1]], [1, 2, 37, 37]);
});

Netpbm("16-bit greyscale and RGB are read, scaled to 8 bits (greyscale: a documented difference from Pillow's mode I)", async () => {
  const grey = await decodeImage(bytes('P5 2 1 65535\n\x01\x00\xff\xff'));
  assert.equal([grey.mode, ...grey.data], ['L', 1, 255]); // round(256 / 65535 * 255), where Pillow's mode I clamps 256 to 255
  const plain = await decodeImage(bytes('P2 2 1 1000\n5 500\n'));
  assert.equal([plain.mode, ...plain.data], ['L', 1, 128]); // round(5 / 1000 * 255), round(127.5) to even
  const rgb = await decodeImage(bytes('P6 1 1 1000\n\x01\x00\x02\x00\x03\xe8'));
  assert.equal([rgb.mode, ...rgb.data], ['RGB', 65, 131, 255]); // round(256 / 1000 * 255), round(512 / 1000 * 255), 1000
});

Netpbm('PAM, PFM and XV thumbnails are E_UNSUPPORTED; a magic number without whitespace after it is E_FORMAT', async () => {
  await refuses(bytes('P7\nWIDTH 1\nHEIGHT 1\nDEPTH 1\nMAXVAL 255\nTUPLTYPE GRAYSCALE\nENDHDR\n\x05'), 'E_UNSUPPORTED', /PAM \(P7\) is not read/);
  await refuses(bytes('Pf\n1 1\n-1.0\n\x00\x00\x80\x3f'), 'E_UNSUPPORTED', /PFM \(Pf/);
  await refuses(bytes('PF\n1 1\n-1.0\n\x00\x00\x80\x3f\x00\x00\x80\x3f\x00\x00\x80\x3f'), 'E_UNSUPPORTED', /PFM \(PF/);
  await refuses(bytes('P7 332\n#XVVERSION:Version_2.28\n#END_OF_COMMENTS\n1 1 255\n\x05'), 'E_UNSUPPORTED', /XV thumbnails/);
  await refuses(bytes('P6#comment\n1 1 255\n\x01\x02\x03'), 'E_FORMAT', /not a Netpbm file Pillow opens \(magic number 'P6#com'/);
  await refuses(bytes('P0 1 1 255\n\x01'), 'E_FORMAT', /not a Netpbm file Pillow opens/);
});

Netpbm('mutated files decode or give a ClipkitError, never another error, each within a second', async () => {
  const sources = ['p6_11x9_header_comments.ppm', 'p5_11x9_maxval100.pgm', 'p4_13x7.pbm', 'p2_5x3_comment_joins.pgm', 'p3_5x3.ppm', 'p1_5x3_comments.pbm', 'p6_5x3_maxval1000.ppm'];
  const r = rng(7);
  for (const file of sources) {
    const original = new Uint8Array(readFileSync(join(DIR, file)));
    for (let k = 0; k < 150; k++) {
      const b = Array.from(original);
      for (let m = 1 + Math.floor(r() * 3); m > 0; m--) {
        const at = Math.floor(r() * b.length), what = r();
        if (what < 0.5) b[at] = Math.floor(r() * 256);
        else if (what < 0.75) b.splice(at, 1);
        else b.splice(at, 0, [0x20, 0x0a, 0x23, 0x30, 0x39, 0x2d, 0x5f][Math.floor(r() * 7)]);
      }
      const t0 = performance.now();
      await failure(new Uint8Array(b), { name: `${file} mutation ${k}` });
      assert.ok(performance.now() - t0 < 1000);
    }
  }
});

Netpbm('the format is taken from the bytes, not the name', async () => {
  const dir = tempDir('clipkit-netpbm-');
  const ppmAsPng = join(dir, 'actually_a_ppm.png'), pngAsPpm = join(dir, 'actually_a_png.ppm');
  writeFileSync(ppmAsPng, readFileSync(join(DIR, 'p6_11x9.ppm')));
  writeFileSync(pngAsPpm, readFileSync(join(OWN_FIXTURES, 'images', 'cases', 'rgb_trns.png')));
  const a = await decodeImage(ppmAsPng);
  assert.equal([a.format, a.mode, a.width, a.height], ['ppm', 'RGB', 11, 9]);
  const b = await decodeImage(pngAsPpm);
  assert.equal([b.format, b.mode], ['png', 'RGB']);
  const c = await decodeImage(bytes('P5 1 1 255 \x9a'));
  assert.equal([c.format, c.mode, c.channels, c.orientation, ...c.data], ['ppm', 'L', 1, null, 0x9a]);
});

Netpbm.run();
