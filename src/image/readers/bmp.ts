/**
 * BMP files, and the DIB (a BMP without its 14-byte file header) that ICO and CUR files hold,
 * decoded to the pixels Pillow 9.4's BmpImagePlugin gives, its quirks included:
 *
 * - Headers of 12 (OS/2 1.x: 16-bit sizes, 3-byte palette entries, always bottom-up and BI_RGB),
 *   40, 64, 108 and 124 bytes. A height is top-down only when its top byte is 0xFF (as Pillow
 *   tests it); heights below -16777216, which Pillow reads as some 4 billion rows, are refused.
 * - 1, 4 and 8 bits through a palette; 16 (5-5-5 unless bitfields say 5-6-5; a 5-bit value v is
 *   floor(v·255 / 31), a 6-bit one floor(v·255 / 63)), 24 and 32 bits (32-bit BI_RGB is RGB, the
 *   4th byte ignored). Bitfields only in the mask layouts Pillow lists.
 * - A palette that is the identity grey ramp makes the image L, or 1 when it has 2 colours (black
 *   then white), and then the rows are read as 8-bit resp. 1-bit samples whatever the file's bit
 *   depth says: an 8-bit file with a 2-colour black/white palette reads as packed bits.
 * - Palette indices past the palette's end give Pillow's default entry: grey (i, i, i).
 * - RLE8 and RLE4 follow Pillow's decoder: a run is clipped at the row's end, absolute mode is
 *   not, RLE4 absolute mode with an odd count reads one byte too few (and so misreads the rest),
 *   absolute runs realign on the file position's parity, a delta reads 4 bytes after its escape
 *   and uses the last 2, and data that ends before the last pixel is refused.
 */
import { ClipkitError } from '../../errors';
import type { ImageReader, PillowMode, RawImage } from './types';

/** How rows unpack into the image's pixels: Pillow's rawmode names. */
type RawMode =
  | '1' | 'L' | 'P;1' | 'P;4' | 'P'
  | 'BGR;15' | 'BGR;16' | 'BGR' | 'BGRX' | 'XBGR' | 'ABGR' | 'RGBA' | 'BGRA';

/** Bits one pixel takes in the file, per raw mode. */
const RAW_BITS: Record<RawMode, number> = {
  '1': 1, L: 8, 'P;1': 1, 'P;4': 4, P: 8,
  'BGR;15': 16, 'BGR;16': 16, BGR: 24, BGRX: 32, XBGR: 32, ABGR: 32, RGBA: 32, BGRA: 32,
};
const CHANNELS: Partial<Record<PillowMode, number>> = { '1': 1, L: 1, P: 3, RGB: 3, RGBA: 4 };

const COMPRESSION = { RGB: 0, RLE8: 1, RLE4: 2, BITFIELDS: 3 } as const;
/** Compressions Windows defines that Pillow does not decode (JPEG, PNG, alpha bitfields, CMYK*). */
const COMPRESSION_NOT_READ: Record<number, string> = { 4: 'JPEG', 5: 'PNG', 6: 'BI_ALPHABITFIELDS', 11: 'CMYK', 12: 'CMYK RLE8', 13: 'CMYK RLE4' };
const HEADER_SIZES = [12, 40, 64, 108, 124];
/** Other header sizes that real writers use (OS/2 2.x short forms, BITMAPV2/V3INFOHEADER). */
const HEADER_SIZES_NOT_READ = [16, 52, 56];

/** The bitfield masks Pillow reads, as R,G,B,A → the raw mode they select. */
const BITFIELD_LAYOUTS: Record<number, [number[], RawMode][]> = {
  32: [
    [[0xff0000, 0xff00, 0xff, 0], 'BGRX'],
    [[0xff000000, 0xff0000, 0xff00, 0], 'XBGR'],
    [[0xff000000, 0xff0000, 0xff00, 0xff], 'ABGR'],
    [[0xff, 0xff00, 0xff0000, 0xff000000], 'RGBA'],
    [[0xff0000, 0xff00, 0xff, 0xff000000], 'BGRA'],
    [[0, 0, 0, 0], 'BGRA'],
  ],
  24: [[[0xff0000, 0xff00, 0xff], 'BGR']],
  16: [[[0xf800, 0x7e0, 0x1f], 'BGR;16'], [[0x7c00, 0x3e0, 0x1f], 'BGR;15']],
};

/** A DIB's header, checked: everything decodeDib needs to read its pixels. */
export interface DibLayout {
  width: number;
  /** Rows to decode: the header's height, which ICO and CUR halve (the AND mask follows). */
  height: number;
  topDown: boolean;
  bits: number;
  compression: number;
  mode: PillowMode;
  rawMode: RawMode;
  /** For mode P: [256, 3] RGB, the file's entries and then Pillow's default grey (i, i, i). */
  palette: Uint8Array | null;
  /** Whole entries the file's palette holds (Pillow refuses more than 256 once it decodes). */
  paletteEntries: number;
  /** Where the pixel data starts, from the start of `bytes`. */
  pixelsAt: number;
  /** Bytes a row takes in the file: (width·bits + 31) / 32 words. */
  rowStride: number;
  /**
   * Whether Pillow memory-maps the pixels (a BMP or CUR opened from a path; not an ICO's frame):
   * that only changes anything for rows of 8-bit samples wider than the file's stride (an L
   * palette on a 1- or 4-bit file).
   */
  mapped: boolean;
}

export interface DibOptions {
  /** The BMP file header's pixel data offset (0 for a DIB: the pixels follow the palette). */
  pixelsAt: number;
  /** 32-bit BI_RGB rows carry alpha (BGRA): Pillow does so for a cursor whose image starts at byte 22. */
  alphaIn32?: boolean;
  mapped: boolean;
}

const formatError = (name: string, what: string) => new ClipkitError('E_FORMAT', `Cannot decode ${name}: ${what}`);
const unsupported = (name: string, what: string) => new ClipkitError('E_UNSUPPORTED', `Unsupported image ${name}: ${what}`);
const u16 = (b: Uint8Array, at: number) => b[at] | (b[at + 1] << 8);
const u32 = (b: Uint8Array, at: number) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;

/** Reads and checks the DIB header (and palette) at `at`; reads no pixels, allocates at most 768 bytes. */
export function readDib(b: Uint8Array, at: number, name: string, o: DibOptions): DibLayout {
  if (at + 4 > b.length)
    throw formatError(name, `the bitmap header at byte ${at} lies past the end of the file (${b.length} bytes)`);
  const headerSize = u32(b, at);
  if (!HEADER_SIZES.includes(headerSize)) {
    if (HEADER_SIZES_NOT_READ.includes(headerSize)) throw unsupported(name, `a BMP header of ${headerSize} bytes, which Pillow does not read either (it reads ${HEADER_SIZES.join(', ')})`);
    throw formatError(name, `the BMP header size is ${headerSize}, expected one of ${HEADER_SIZES.join(', ')}`);
  }
  if (at + headerSize > b.length)
    throw formatError(name, `the ${headerSize}-byte bitmap header ends at byte ${b.length} of ${at + headerSize} (truncated)`);

  let width: number, height: number, bits: number, compression: number, colors: number, entryBytes: number;
  let topDown = false;
  let pos = at + headerSize; // where Pillow's file position is once the header (and masks) are read
  let masks: number[] | null = null;
  if (headerSize === 12) {
    width = u16(b, at + 4);
    height = u16(b, at + 6);
    bits = u16(b, at + 10);
    compression = COMPRESSION.RGB;
    colors = 0;
    entryBytes = 3;
  } else {
    width = u32(b, at + 4);
    const rawHeight = u32(b, at + 8);
    topDown = b[at + 11] === 0xff;
    height = topDown ? 2 ** 32 - rawHeight : rawHeight;
    bits = u16(b, at + 14);
    compression = u32(b, at + 16);
    colors = u32(b, at + 32);
    entryBytes = 4;
    if (width >= 2 ** 31) throw formatError(name, `the width is negative (${width - 2 ** 32})`);
    if (height >= 2 ** 31)
      throw formatError(name, `the height is ${rawHeight - 2 ** 32}: a top-down bitmap taller than 16777216 rows, which Pillow reads as ${rawHeight} rows`);
    if (compression === COMPRESSION.BITFIELDS) {
      // A 40-byte header is followed by 3 masks (no alpha); the longer ones hold 4 at byte 40.
      const masksAt = at + 40;
      if (headerSize === 40) {
        if (masksAt + 12 > b.length) throw formatError(name, `the bitfield masks end at byte ${b.length} of ${masksAt + 12} (truncated)`);
        masks = [u32(b, masksAt), u32(b, masksAt + 4), u32(b, masksAt + 8), 0];
        pos += 12;
      } else masks = [u32(b, masksAt), u32(b, masksAt + 4), u32(b, masksAt + 8), u32(b, masksAt + 12)];
    }
  }
  if (width === 0 || height === 0) throw formatError(name, `the image is ${width}x${height} pixels`);
  if (colors === 0) colors = 2 ** bits;
  // Pillow's guess for files whose data offset forgets the palette: 4 bytes an entry, even for OS/2.
  let pixelsAt = o.pixelsAt;
  if (pixelsAt === 14 + headerSize && bits <= 8) pixelsAt += 4 * colors;

  let mode: PillowMode, rawMode: RawMode;
  switch (bits) {
    case 1: [mode, rawMode] = ['P', 'P;1']; break;
    case 4: [mode, rawMode] = ['P', 'P;4']; break;
    case 8: [mode, rawMode] = ['P', 'P']; break;
    case 16: [mode, rawMode] = ['RGB', 'BGR;15']; break;
    case 24: [mode, rawMode] = ['RGB', 'BGR']; break;
    case 32: [mode, rawMode] = ['RGB', 'BGRX']; break;
    default:
      if (bits === 0 && COMPRESSION_NOT_READ[compression])
        throw unsupported(name, `a ${COMPRESSION_NOT_READ[compression]}-compressed BMP, which Pillow does not read either`);
      if (bits === 0 || bits === 2 || bits === 64) throw unsupported(name, `a BMP of ${bits} bits per pixel, which Pillow does not read either`);
      throw formatError(name, `a BMP of ${bits} bits per pixel (expected 1, 4, 8, 16, 24 or 32)`);
  }

  if (compression === COMPRESSION.BITFIELDS) {
    const layouts = BITFIELD_LAYOUTS[bits] ?? [];
    const used = bits === 32 ? masks! : masks!.slice(0, 3);
    const found = layouts.find(([m]) => m.every((v, i) => v === used[i]));
    const hex = used.map((v) => `0x${v.toString(16)}`).join(', ');
    if (!found) throw unsupported(name, `BMP bitfields (${hex}) at ${bits} bits per pixel, a layout Pillow does not read either`);
    rawMode = found[1];
    if (rawMode.includes('A')) mode = 'RGBA';
  } else if (compression === COMPRESSION.RGB) {
    if (bits === 32 && o.alphaIn32) [mode, rawMode] = ['RGBA', 'BGRA'];
  } else if (compression !== COMPRESSION.RLE8 && compression !== COMPRESSION.RLE4) {
    if (COMPRESSION_NOT_READ[compression]) throw unsupported(name, `${COMPRESSION_NOT_READ[compression]} compression in a BMP, which Pillow does not read either`);
    throw formatError(name, `unknown BMP compression ${compression}`);
  }

  let palette: Uint8Array | null = null, paletteEntries = 0;
  if (mode === 'P') {
    if (colors > 65536) throw formatError(name, `the palette has ${colors} colours (at most 65536)`);
    const raw = b.subarray(pos, Math.min(b.length, pos + entryBytes * colors));
    pos += raw.length;
    // Grey when entry i is (i, i, i) for every entry, or, with 2 colours, black then white.
    const levels = colors === 2 ? [0, 255] : null;
    let grey = true;
    for (let i = 0; i < colors && grey; i++) {
      const v = levels ? levels[i] : i & 255, e = i * entryBytes;
      grey = e + 3 <= raw.length && raw[e] === v && raw[e + 1] === v && raw[e + 2] === v;
    }
    if (grey) [mode, rawMode] = colors === 2 ? ['1', '1'] : ['L', 'L'];
    else {
      paletteEntries = Math.floor(raw.length / entryBytes);
      palette = new Uint8Array(256 * 3);
      for (let i = 0; i < 256; i++) palette.fill(i, i * 3, i * 3 + 3);
      for (let i = 0; i < Math.min(paletteEntries, 256); i++) {
        const e = i * entryBytes;
        palette[i * 3] = raw[e + 2];
        palette[i * 3 + 1] = raw[e + 1];
        palette[i * 3 + 2] = raw[e];
      }
    }
  }
  return {
    width, height, topDown, bits, compression, mode, rawMode, palette, paletteEntries,
    pixelsAt: pixelsAt || pos,
    rowStride: 4 * Math.floor((width * bits + 31) / 32),
    mapped: o.mapped,
  };
}

/** The pixels of a DIB read by readDib, `layout.height` rows.           data: [H, W, C] uint8, rows top to bottom */
export function decodeDib(b: Uint8Array, layout: DibLayout, name: string): RawImage {
  if (layout.paletteEntries > 256) throw formatError(name, `the palette has ${layout.paletteEntries} entries (Pillow reads at most 256)`);
  const rle = layout.compression === COMPRESSION.RLE8 || layout.compression === COMPRESSION.RLE4;
  return rle ? decodeRle(b, layout, name) : decodeRows(b, layout, name);
}

/** Uncompressed rows, as Pillow's raw decoder (or its memory map) reads them. */
function decodeRows(b: Uint8Array, L: DibLayout, name: string): RawImage {
  const { width: w, height: h, rawMode } = L;
  const rowBytes = Math.ceil((w * RAW_BITS[rawMode]) / 8);
  // Each row starts a stride after the last; the last row needs no padding. A row of 8-bit samples
  // wider than the stride (an L palette on a 1- or 4-bit file) makes Pillow's raw decoder read the
  // rows back to back, while its memory map, used when the whole strided block is in the file,
  // reads overlapping rows and sees zeros past the file's end.
  let rowStep = Math.max(rowBytes, L.rowStride);
  let needed = (h - 1) * rowStep + rowBytes;
  const overlapping = L.rowStride < rowBytes && L.mapped && L.pixelsAt + h * L.rowStride <= b.length;
  if (overlapping) [rowStep, needed] = [L.rowStride, h * L.rowStride];
  if (L.pixelsAt > b.length || b.length - L.pixelsAt < needed)
    throw formatError(name, `the pixel data ends at byte ${b.length} of ${L.pixelsAt + needed} (truncated)`);

  const C = CHANNELS[L.mode]!;
  const out = new Uint8Array(w * h * C);
  const unpack = UNPACK[rawMode];
  const rowOut = w * C;
  let padded: Uint8Array | null = null;
  for (let r = 0; r < h; r++) {
    const y = L.topDown ? r : h - 1 - r;
    let src = b, at = L.pixelsAt + r * rowStep;
    if (at + rowBytes > b.length) {
      // Only when overlapping: the memory map's zeros past the end of the file.
      padded ??= new Uint8Array(rowBytes);
      padded.fill(0).set(b.subarray(at));
      [src, at] = [padded, 0];
    }
    unpack(src, at, out, y * rowOut, w, L.palette);
  }
  return { data: out, width: w, height: h, channels: C, mode: L.mode };
}

type Unpack = (src: Uint8Array, at: number, out: Uint8Array, to: number, w: number, palette: Uint8Array | null) => void;

/** 5- and 6-bit channels to 8 bits as Pillow's BGR;15 / BGR;16 unpackers do: v·255 / 31 (or 63), rounded down. */
const FIVE_BITS = Uint8Array.from({ length: 32 }, (_, v) => Math.floor((v * 255) / 31));
const SIX_BITS = Uint8Array.from({ length: 64 }, (_, v) => Math.floor((v * 255) / 63));

/** Palette indices of 1 or 4 bits, most significant first, looked up to RGB. */
function unpackPackedIndices(bits: 1 | 4): Unpack {
  const perByte = 8 / bits, mask = (1 << bits) - 1;
  return (src, at, out, to, w, pal) => {
    for (let x = 0, d = to; x < w; x++, d += 3) {
      const i = 3 * ((src[at + Math.floor(x / perByte)] >> (8 - bits * (1 + (x % perByte)))) & mask);
      out[d] = pal![i];
      out[d + 1] = pal![i + 1];
      out[d + 2] = pal![i + 2];
    }
  };
}

/** 32-bit pixels: the byte offsets of R, G, B and A within each 4. */
function unpack32WithAlpha(r: number, g: number, bl: number, a: number): Unpack {
  return (src, at, out, to, w) => {
    for (let x = 0, s = at, d = to; x < w; x++, s += 4, d += 4) {
      out[d] = src[s + r];
      out[d + 1] = src[s + g];
      out[d + 2] = src[s + bl];
      out[d + 3] = src[s + a];
    }
  };
}

function unpack16(greenBits: 5 | 6): Unpack {
  const green = greenBits === 6 ? SIX_BITS : FIVE_BITS, redShift = 5 + greenBits;
  return (src, at, out, to, w) => {
    for (let x = 0, s = at, d = to; x < w; x++, s += 2, d += 3) {
      const v = src[s] | (src[s + 1] << 8);
      out[d] = FIVE_BITS[(v >> redShift) & 31];
      out[d + 1] = green[(v >> 5) & (greenBits === 6 ? 63 : 31)];
      out[d + 2] = FIVE_BITS[v & 31];
    }
  };
}

const UNPACK: Record<RawMode, Unpack> = {
  '1': (src, at, out, to, w) => {
    for (let x = 0; x < w; x++) out[to + x] = (src[at + (x >> 3)] >> (7 - (x & 7))) & 1 ? 255 : 0;
  },
  L: (src, at, out, to, w) => out.set(src.subarray(at, at + w), to),
  'P;1': unpackPackedIndices(1),
  'P;4': unpackPackedIndices(4),
  P: (src, at, out, to, w, pal) => {
    for (let x = 0, d = to; x < w; x++, d += 3) {
      const i = 3 * src[at + x];
      out[d] = pal![i];
      out[d + 1] = pal![i + 1];
      out[d + 2] = pal![i + 2];
    }
  },
  'BGR;15': unpack16(5),
  'BGR;16': unpack16(6),
  BGR: (src, at, out, to, w) => {
    for (let x = 0, s = at, d = to; x < w; x++, s += 3, d += 3) {
      out[d] = src[s + 2];
      out[d + 1] = src[s + 1];
      out[d + 2] = src[s];
    }
  },
  BGRX: (src, at, out, to, w) => {
    for (let x = 0, s = at, d = to; x < w; x++, s += 4, d += 3) {
      out[d] = src[s + 2];
      out[d + 1] = src[s + 1];
      out[d + 2] = src[s];
    }
  },
  XBGR: (src, at, out, to, w) => {
    for (let x = 0, s = at, d = to; x < w; x++, s += 4, d += 3) {
      out[d] = src[s + 3];
      out[d + 1] = src[s + 2];
      out[d + 2] = src[s + 1];
    }
  },
  ABGR: unpack32WithAlpha(3, 2, 1, 0),
  RGBA: unpack32WithAlpha(0, 1, 2, 3),
  BGRA: unpack32WithAlpha(2, 1, 0, 3),
};

/**
 * RLE8 / RLE4 as Pillow's BmpRleDecoder reads it (see the file comment for its quirks): indices
 * in file order, then rows placed top-down or bottom-up. The data is walked once to count the
 * pixels it gives, so that nothing is allocated for data that cannot fill the image.
 */
function decodeRle(b: Uint8Array, L: DibLayout, name: string): RawImage {
  const { width: w, height: h } = L;
  const rle4 = L.compression === COMPRESSION.RLE4;
  // Pillow hands the indices to a raw decoder as 'P' (or 'L'), which an RGB or 1 image has none for.
  if (L.mode !== 'P' && L.mode !== 'L')
    throw formatError(name, `RLE${rle4 ? 4 : 8} compression on a ${L.mode === '1' ? 'black-and-white' : `${L.bits}-bit`} bitmap`);
  const total = w * h;
  const given = walkRle(b, L, rle4, total, name, null);
  if (given < total) throw formatError(name, `the RLE data ends after ${given} of ${total} pixels (truncated)`);

  const index = new Uint8Array(total);
  walkRle(b, L, rle4, total, name, index);
  const C = CHANNELS[L.mode]!, pal = L.palette;
  const out = new Uint8Array(total * C);
  for (let r = 0; r < h; r++) {
    const y = L.topDown ? r : h - 1 - r;
    for (let x = 0; x < w; x++) {
      const i = index[r * w + x], d = (y * w + x) * C;
      if (pal) {
        out[d] = pal[3 * i];
        out[d + 1] = pal[3 * i + 1];
        out[d + 2] = pal[3 * i + 2];
      } else out[d] = i;
    }
  }
  return { data: out, width: w, height: h, channels: C, mode: L.mode };
}

/**
 * Runs the RLE commands until the image is full, the data ends or an end of bitmap, writing the
 * indices into `index` when given (index 0 where a row is ended early or skipped); returns how
 * many pixels the data gave. Each command takes at least 2 bytes, so this ends.
 */
function walkRle(b: Uint8Array, L: DibLayout, rle4: boolean, total: number, name: string, index: Uint8Array | null): number {
  const w = L.width;
  let n = 0, x = 0, at = L.pixelsAt;
  while (n < total) {
    if (at + 2 > b.length) break;
    const count = b[at], code = b[at + 1];
    at += 2;
    if (count > 0) {
      // A run: clipped at the end of the row, RLE4 alternating the byte's two nibbles.
      const k = x + count > w ? Math.max(0, w - x) : count;
      if (index) for (let i = 0; i < k && n + i < total; i++) index[n + i] = rle4 ? (i % 2 ? code & 15 : code >> 4) : code;
      n += k;
      x += k;
    } else if (code === 0) {
      n = Math.ceil(n / w) * w; // end of line
      x = 0;
    } else if (code === 1) break; // end of bitmap
    else if (code === 2) {
      // A delta: Pillow reads 2 bytes, drops them, and takes (right, up) from the next 2.
      if (at + 2 > b.length) break;
      if (at + 4 > b.length) throw formatError(name, `the RLE delta at byte ${at - 2} ends at byte ${b.length} (truncated)`);
      n += b[at + 2] + b[at + 3] * w;
      x = n % w;
      at += 4;
    } else {
      // Absolute mode: `code` pixels, not clipped; RLE4 reads code / 2 bytes, rounded down.
      const want = rle4 ? code >> 1 : code;
      const got = Math.min(want, b.length - at);
      if (index)
        for (let i = 0; i < got; i++) {
          const v = b[at + i];
          if (rle4) {
            if (n + 2 * i < total) index[n + 2 * i] = v >> 4;
            if (n + 2 * i + 1 < total) index[n + 2 * i + 1] = v & 15;
          } else if (n + i < total) index[n + i] = v;
        }
      n += rle4 ? 2 * got : got;
      at += got;
      if (got < want) break;
      x += code;
      if (at % 2) at += 1; // realigned on the file position, not the data's
    }
  }
  return n;
}

/** A BMP file: its 14-byte file header, then a DIB. */
function readBmp(b: Uint8Array, name: string): DibLayout {
  if (b.length < 14) throw formatError(name, `the BMP file header ends at byte ${b.length} of 14 (truncated)`);
  return readDib(b, 14, name, { pixelsAt: u32(b, 10), mapped: true });
}

export const BMP: ImageReader = {
  format: 'bmp',
  extensions: ['.bmp', '.dib'],
  sniff: (b) => b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d, // "BM"
  header(b, name) {
    const { width, height } = readBmp(b, name);
    return { width, height };
  },
  decode: (b, name) => decodeDib(b, readBmp(b, name), name),
};
