/**
 * ICO and CUR files: the one image Pillow 9.4's Image.open gives, which is not the same rule for
 * both formats.
 *
 * ICO (IcoImagePlugin): the entry with the most pixels (a width or height byte of 0 means 256),
 * then the deepest colour (its bpp field, or else the log2 of its colour count), then the last
 * in the directory; the image's size is then the frame's own, whatever the directory said. A PNG
 * entry is handed back for decodeImage to decode; a bitmap entry is a DIB of twice the image's
 * height whose first half is the image, made RGBA: with 32 bpp in the directory the 4th byte of each pixel is the alpha,
 * otherwise the AND mask (1 bit a pixel, set = transparent), which Pillow takes to end where the
 * entry's size says. Both alpha sources are read bottom-up even when the DIB is top-down.
 *
 * CUR (CurImagePlugin, a BMP reader): the first entry, replaced by each later one whose width
 * and height bytes are both larger (0 is 0 here); its DIB is decoded as a BMP of half the height,
 * in the bitmap's own mode, the AND mask ignored. A 32-bit BI_RGB cursor is RGBA only when its
 * image starts at byte 22, right after a one-entry directory, and RGB otherwise.
 */
import { ClipkitError } from '../../errors';
import { decodeDib, DibLayout, readDib } from './bmp';
import type { ImageReader, RawImage } from './types';

const ICON = 1, CURSOR = 2;
const DIRECTORY_AT = 6, ENTRY_BYTES = 16;
const PNG_SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

const formatError = (name: string, what: string) => new ClipkitError('E_FORMAT', `Cannot decode ${name}: ${what}`);
const u16 = (b: Uint8Array, at: number) => b[at] | (b[at + 1] << 8);
const u32 = (b: Uint8Array, at: number) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
const u32be = (b: Uint8Array, at: number) => ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;

/** The frame Image.open decodes, its header read and checked. */
type Frame =
  | { kind: 'png'; at: number; width: number; height: number }
  | { kind: 'dib'; layout: DibLayout; alpha: 'none' | 'fourth-byte' | 'and-mask'; entryAt: number; entrySize: number };

interface IconEntry {
  pixels: number; // width × height, 0 meaning 256
  colourDepth: number;
  bpp: number;
  size: number;
  offset: number;
}

/** The entry that Pillow's sorting of the directory puts first, which Image.open decodes. */
function chooseIconEntry(b: Uint8Array, name: string): IconEntry {
  const count = u16(b, 4);
  if (count === 0) throw formatError(name, 'the icon directory lists no images');
  const end = DIRECTORY_AT + ENTRY_BYTES * count;
  if (end > b.length) throw formatError(name, `the icon directory of ${count} entries ends at byte ${b.length} of ${end} (truncated)`);
  let best: IconEntry | undefined;
  for (let i = 0; i < count; i++) {
    const e = DIRECTORY_AT + ENTRY_BYTES * i;
    const nColours = b[e + 2], bpp = u16(b, e + 6);
    // Pillow's colour depth: the bpp field, else log2 of the colour count rounded up, else 256.
    const colourDepth = bpp || (nColours ? Math.ceil(Math.log2(nColours)) : 0) || 256;
    const entry = { pixels: (b[e] || 256) * (b[e + 1] || 256), colourDepth, bpp, size: u32(b, e + 8), offset: u32(b, e + 12) };
    // Most pixels, then deepest colour, then the later entry: what Pillow's two stable sorts and
    // its reverse leave first.
    if (!best || entry.pixels > best.pixels || (entry.pixels === best.pixels && entry.colourDepth >= best.colourDepth)) best = entry;
  }
  return best!;
}

/** The cursor entry CurImagePlugin picks: where its bitmap is read (at), and its offset field. */
function chooseCursorEntry(b: Uint8Array, name: string): { at: number; imageAt: number } {
  const count = u16(b, 4);
  if (count === 0) throw formatError(name, 'the cursor directory lists no images');
  // Pillow reads the entries one by one and compares only what it needs, so a short last entry
  // that is not picked goes unnoticed; anything it would index past the end is refused.
  let pick = -1, pickLength = 0;
  const truncated = () => formatError(name, `the cursor directory of ${count} entries ends at byte ${b.length} of ${DIRECTORY_AT + ENTRY_BYTES * count} (truncated)`);
  for (let i = 0; i < count; i++) {
    const e = DIRECTORY_AT + ENTRY_BYTES * i;
    const length = Math.max(0, Math.min(ENTRY_BYTES, b.length - e));
    if (pick < 0 || pickLength === 0) {
      [pick, pickLength] = [e, length];
      continue;
    }
    if (length < 1) throw truncated();
    if (b[e] > b[pick]) {
      if (length < 2 || pickLength < 2) throw truncated();
      if (b[e + 1] > b[pick + 1]) [pick, pickLength] = [e, length];
    }
  }
  if (pickLength === 0) throw formatError(name, 'the cursor directory lists no images');
  if (pickLength < ENTRY_BYTES) throw truncated();
  const imageAt = u32(b, pick + 12);
  // An offset of 0 leaves Pillow reading the bitmap where the directory ends.
  return { at: imageAt || Math.min(b.length, DIRECTORY_AT + ENTRY_BYTES * count), imageAt };
}

function readFrame(b: Uint8Array, name: string): Frame {
  if (b.length < DIRECTORY_AT) throw formatError(name, `the icon header ends at byte ${b.length} of ${DIRECTORY_AT} (truncated)`);
  if (b[2] === CURSOR) {
    const { at, imageAt } = chooseCursorEntry(b, name);
    const layout = halved(readDib(b, at, `${name} (its cursor bitmap at byte ${at})`, { pixelsAt: 0, alphaIn32: imageAt === 22, mapped: true }), name);
    return { kind: 'dib', layout, alpha: 'none', entryAt: at, entrySize: 0 };
  }
  const entry = chooseIconEntry(b, name);
  const at = entry.offset;
  if (at >= b.length) throw formatError(name, `its largest image's offset ${at} lies past the end of the file (${b.length} bytes)`);
  if (at + 8 <= b.length && PNG_SIGNATURE.every((v, i) => b[at + i] === v)) {
    if (at + 24 > b.length || String.fromCharCode(b[at + 12], b[at + 13], b[at + 14], b[at + 15]) !== 'IHDR')
      throw formatError(name, `the PNG image at byte ${at} has no IHDR chunk`);
    const width = u32be(b, at + 16), height = u32be(b, at + 20);
    if (width === 0 || height === 0 || width >= 2 ** 31 || height >= 2 ** 31)
      throw formatError(name, `the PNG image at byte ${at} says it is ${width}x${height} pixels`);
    return { kind: 'png', at, width, height };
  }
  const layout = halved(readDib(b, at, `${name} (its bitmap at byte ${at})`, { pixelsAt: 0, mapped: false }), name);
  return { kind: 'dib', layout, alpha: entry.bpp === 32 ? 'fourth-byte' : 'and-mask', entryAt: at, entrySize: entry.size };
}

/** The image is the DIB's first half; Pillow rounds the height down, so a 1-row DIB has none. */
function halved(layout: DibLayout, name: string): DibLayout {
  const height = Math.floor(layout.height / 2);
  if (height === 0) throw formatError(name, `the bitmap is ${layout.width}x${layout.height}, which leaves no rows above its mask`);
  return { ...layout, height };
}

/** The PNG from its signature through its IEND chunk (or the file's end when it has none). */
function pngBytes(b: Uint8Array, at: number): Uint8Array {
  let p = at + 8;
  while (p + 12 <= b.length) {
    const length = u32be(b, p);
    const type = String.fromCharCode(b[p + 4], b[p + 5], b[p + 6], b[p + 7]);
    if (length > b.length - p - 12) break;
    p += 12 + length;
    if (type === 'IEND') return b.subarray(at, p);
  }
  return b.subarray(at);
}

/**
 * An icon's alpha: the 4th byte of each 32-bit pixel, or the AND mask, rows bottom-up.
 * Checked against the file before anything is allocated.              alpha: [H, W] uint8
 */
function iconAlpha(b: Uint8Array, f: Extract<Frame, { kind: 'dib' }>, name: string): Uint8Array {
  const { width: w, height: h, pixelsAt } = f.layout;
  if (f.alpha === 'fourth-byte') {
    // Pillow reads width·height·4 bytes from where the pixels start, whatever their bit depth.
    const end = pixelsAt + 4 * w * h;
    if (end > b.length) throw formatError(name, `the 32-bit pixels end at byte ${b.length} of ${end} (truncated)`);
    const alpha = new Uint8Array(w * h);
    for (let y = 0; y < h; y++) {
      const src = pixelsAt + 4 * (h - 1 - y) * w + 3;
      for (let x = 0; x < w; x++) alpha[y * w + x] = b[src + 4 * x];
    }
    return alpha;
  }
  // The AND mask: rows of 32-bit words, taken to end where the directory entry's size says.
  const rowStride = 4 * Math.ceil(w / 32);
  const maskAt = f.entryAt + f.entrySize - rowStride * h;
  if (maskAt < 0) throw formatError(name, `the directory's image size ${f.entrySize} is too small to hold the ${w}x${h} AND mask`);
  const needed = (h - 1) * rowStride + Math.ceil(w / 8);
  if (maskAt >= b.length)
    throw formatError(name, `the directory's image size ${f.entrySize} puts the AND mask at byte ${maskAt}, past the end of the file (${b.length} bytes)`);
  if (b.length - maskAt < needed)
    throw formatError(name, `the AND mask ends at byte ${b.length} of ${maskAt + needed} (truncated)`);
  const alpha = new Uint8Array(w * h);
  for (let y = 0; y < h; y++) {
    const row = maskAt + (h - 1 - y) * rowStride;
    for (let x = 0; x < w; x++) alpha[y * w + x] = (b[row + (x >> 3)] >> (7 - (x & 7))) & 1 ? 0 : 255;
  }
  return alpha;
}

/** An icon's bitmap made RGBA (as Pillow's convert('RGBA') then putalpha). data: [H, W, 4] uint8 */
function withAlpha(img: RawImage, alpha: Uint8Array): RawImage {
  const n = img.width * img.height, C = img.channels, src = img.data;
  const out = new Uint8Array(n * 4);
  for (let p = 0; p < n; p++) {
    if (C >= 3) {
      out[4 * p] = src[C * p];
      out[4 * p + 1] = src[C * p + 1];
      out[4 * p + 2] = src[C * p + 2];
    } else out.fill(src[p], 4 * p, 4 * p + 3); // 1 and L: grey
    out[4 * p + 3] = alpha[p];
  }
  return { data: out, width: img.width, height: img.height, channels: 4, mode: 'RGBA' };
}

export const ICO: ImageReader = {
  format: 'ico',
  extensions: ['.ico', '.cur'],
  // A cursor with no entries is left to the other readers: an uncompressed TGA starts 00 00 02 00
  // 00 00, and Pillow too opens those as TGA once its cursor reader has found no cursors.
  sniff: (b) =>
    b.length >= 6 && b[0] === 0 && b[1] === 0 && b[3] === 0 && (b[2] === ICON || (b[2] === CURSOR && u16(b, 4) > 0)),
  header(b, name) {
    const f = readFrame(b, name);
    return f.kind === 'png' ? { width: f.width, height: f.height } : { width: f.layout.width, height: f.layout.height };
  },
  decode(b, name) {
    const f = readFrame(b, name);
    if (f.kind === 'png') return { embedded: pngBytes(b, f.at) };
    if (f.alpha === 'none') return decodeDib(b, f.layout, name);
    const alpha = iconAlpha(b, f, name);
    return withAlpha(decodeDib(b, f.layout, name), alpha);
  },
};
