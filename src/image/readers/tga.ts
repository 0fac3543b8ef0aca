/**
 * Truevision TGA, read as Pillow 9.4's TgaImagePlugin opens it. TGA has no signature: an 18-byte
 * header whose fields must agree, an optional ID field, an optional colour map, then the pixels,
 * raw or run-length encoded (RLE), rows bottom to top unless the descriptor says top to bottom.
 *
 * What Pillow 9.4 makes of each variant, found by running it on crafted files
 * (test/fixtures/make_tga_cases.py records its outputs):
 * - types 1/9 (colour-mapped, 8-bit indices) → P; 2/10 (true colour) → RGB from 16 and 24 bits,
 *   RGBA from 32 (the 4th byte is alpha whatever the descriptor's attribute bits say); 3/11 (grey)
 *   → L from 8 bits, LA from 16 (grey byte, then alpha), 1 from 1 bit (rows padded to a byte).
 * - 16-bit colour is x RRRRR GGGGG BBBBB, little-endian; each 5-bit value v becomes
 *   floor(v · 255 / 31), and the top bit is dropped (no alpha).
 * - A colour map's entries below its first index are black, and index values past its last entry
 *   take Pillow's initial palette, a grey ramp (index i → i, i, i); none are refused.
 * - A 15-bit colour map is not read at all: the palette stays the grey ramp and the pixels are taken
 *   from where the map starts (right after the ID field). Garbage, but it is what Pillow gives.
 * - Descriptor bit 0x20 is top-to-bottom; bit 0x10 (right to left) is honoured, the image flipped.
 * - RLE: a raw packet may run on across rows and past the image's end (the rest is ignored, but
 *   all its bytes must be in the file); a run packet that crosses the end of a row is refused.
 * - Anything after the pixels (the TGA 2.0 extension area and footer) is ignored.
 * - Pillow tries its PCX reader before TGA, and takes any file starting 10, 0 for one: a TGA with a
 *   10-byte ID field and no colour map is refused (E_UNSUPPORTED; the exceptions are in parse).
 */
import { ClipkitError } from '../../errors';
import type { ImageReader, PillowMode, RawImage } from './types';

const HEADER_BYTES = 18;
/** A packet's count field gives 1..128 pixels: the most any 1 + bytes-per-pixel of RLE data hold. */
const MAX_PACKET_PIXELS = 128;
const RLE_TYPES = 8; // image type bit: run-length encoded

/** Pixel depths the specification gives each image type (type & 7), and 1-bit grey, which Pillow writes. */
const DEPTHS: Record<number, readonly number[]> = { 1: [8, 16], 2: [15, 16, 24, 32], 3: [1, 8, 16] };
const MAP_DEPTHS = [15, 16, 24, 32];

/** How a pixel's bytes in the file become the output's channels. */
type Unpack = 'bit' | 'grey' | 'grey_alpha' | 'index' | 'bgr15' | 'bgr' | 'bgra';

interface Layout {
  width: number;
  height: number;
  mode: PillowMode;
  unpack: Unpack;
  channels: number; // in the output
  bytesPerPixel: number; // in the file (1-bit pixels: see rowBytes)
  rowBytes: number; // one uncompressed row in the file
  rle: boolean;
  topDown: boolean;
  rightToLeft: boolean;
  /** Where Pillow starts reading pixels: after the colour map, or after the ID field when it skips a 15-bit map. */
  pixelsAt: number;
  /** The colour map Pillow reads for a P image: where, its first index, entries and entry bits. */
  map?: { at: number; first: number; length: number; depth: 16 | 24 };
}

/** The header, checked: a layout, or why the bytes are not a TGA, or why Pillow 9.4 refuses this one. */
type Parsed = { layout: Layout } | { notTga: string } | { unsupported: string };

function parse(b: Uint8Array): Parsed {
  if (b.length < HEADER_BYTES) return { notTga: `${b.length} bytes, shorter than the ${HEADER_BYTES}-byte TGA header` };
  const u16 = (at: number) => b[at] | (b[at + 1] << 8);
  const idLength = b[0], mapType = b[1], imageType = b[2];
  const mapFirst = u16(3), mapLength = u16(5), mapDepth = b[7];
  const width = u16(12), height = u16(14), depth = b[16], descriptor = b[17];
  const kind = imageType & 7, rle = (imageType & RLE_TYPES) !== 0;

  // Structure: every field agrees with the others and with the file's length. A file that fails
  // any of these is not taken for a TGA at all (sniff is false), which keeps random bytes out.
  if (mapType > 1) return { notTga: `colour map type ${mapType} (0 or 1 expected)` };
  if (![1, 2, 3, 9, 10, 11].includes(imageType)) return { notTga: `image type ${imageType} (1, 2, 3, 9, 10 or 11 expected)` };
  if (kind === 1 && mapType !== 1) return { notTga: `a colour-mapped image (type ${imageType}) without a colour map` };
  if (!DEPTHS[kind].includes(depth)) return { notTga: `${depth} bits a pixel for image type ${imageType} (${DEPTHS[kind].join(', ')} expected)` };
  if (mapType === 1 && !MAP_DEPTHS.includes(mapDepth)) return { notTga: `${mapDepth} bits a colour map entry (${MAP_DEPTHS.join(', ')} expected)` };
  if (width === 0 || height === 0) return { notTga: `a size of ${width}x${height}` };
  // The sizes are checked from where the specification puts the pixels, after the colour map, even
  // for a 15-bit map, which Pillow leaves unread: a file too short for its own map is truncated.
  const mapAt = HEADER_BYTES + idLength;
  const dataAt = mapAt + (mapType === 1 ? mapLength * Math.ceil(mapDepth / 8) : 0);
  if (dataAt > b.length) return { notTga: `the ID field and colour map end at byte ${dataAt}, past the end of the file (${b.length} bytes; truncated)` };
  const bytesPerPixel = Math.ceil(depth / 8);
  const rowBytes = depth === 1 ? Math.ceil(width / 8) : width * bytesPerPixel;
  const pixels = width * height; // at most 65535², exact in a double, as are the byte counts below
  if (!rle && dataAt + rowBytes * height > b.length)
    return { notTga: `${width}x${height} pixels of ${depth} bits need ${rowBytes * height} bytes from byte ${dataAt}, the file has ${b.length - dataAt} (truncated)` };
  // RLE gives no size in advance, but every packet takes 1 + bytesPerPixel bytes at least and gives
  // at most 128 pixels: so the file's length bounds the image, checked before anything is allocated.
  const leastRle = Math.ceil(pixels / MAX_PACKET_PIXELS) * (1 + bytesPerPixel);
  if (rle && dataAt + leastRle > b.length)
    return { notTga: `${width}x${height} pixels need at least ${leastRle} bytes of RLE data from byte ${dataAt}, the file has ${b.length - dataAt} (truncated)` };

  // Well-formed TGAs that Pillow 9.4 refuses (or loads into an image its resize then refuses).
  if (kind === 1 && depth === 16) return { unsupported: '16-bit colour indices, which Pillow 9.4 does not read' };
  if (kind === 2 && depth === 15) return { unsupported: '15-bit colour, which Pillow 9.4 does not open' };
  if (rle && depth === 1) return { unsupported: 'run-length encoded 1-bit pixels, which Pillow 9.4 cannot decode (its decoder counts 0 bytes a pixel and reports every such file truncated)' };
  if (mapType === 1 && mapDepth === 32) return { unsupported: 'a 32-bit colour map, which Pillow 9.4 cannot load' };
  if (mapType === 1 && mapDepth !== 15 && kind !== 1)
    return { unsupported: `a colour map on a ${kind === 2 ? 'true-colour' : 'greyscale'} image, which Pillow 9.4 ${kind === 2 ? 'cannot load' : 'turns into an image its resize refuses'}` };
  if (kind === 1 && mapDepth !== 15 && mapFirst + mapLength > 256)
    return { unsupported: `a colour map of ${mapFirst + mapLength} entries (first index ${mapFirst}, ${mapLength} given), more than the 256 Pillow 9.4 accepts` };

  // Pillow tries its PCX reader before TGA, and PCX's test is only "first byte 10, second 0, 2, 3
  // or 5": a TGA with a 10-byte ID field and no colour map goes there, and PCX refuses it (or reads
  // it as a PCX) unless its header's "bounding box" (bytes 4..11) is empty or the file is too short
  // for PCX to read a byte it needs (byte 65), when Pillow moves on and reads it as a TGA after all.
  if (idLength === 10 && mapType === 0 && b.length > 65 && u16(8) + 1 > u16(4) && u16(10) + 1 > u16(6))
    return { unsupported: 'a 10-byte ID field and no colour map, which Pillow 9.4 takes for a PCX image and does not read as a TGA' };

  const [mode, unpack, channels] = ({
    1: ['P', 'index', 3], 2: depth === 32 ? ['RGBA', 'bgra', 4] : ['RGB', depth === 16 ? 'bgr15' : 'bgr', 3],
    3: depth === 1 ? ['1', 'bit', 1] : depth === 8 ? ['L', 'grey', 1] : ['LA', 'grey_alpha', 2],
  } as Record<number, [PillowMode, Unpack, number]>)[kind];
  // Pillow reads a 16-, 24- or 32-bit colour map and nothing else: a 15-bit one stays in the file,
  // where Pillow then reads pixels from.
  const mapRead = mapType === 1 && mapDepth !== 15;
  return {
    layout: {
      width, height, mode, unpack, channels, bytesPerPixel, rowBytes, rle,
      topDown: (descriptor & 0x20) !== 0,
      rightToLeft: (descriptor & 0x10) !== 0,
      pixelsAt: mapRead ? dataAt : mapAt,
      map: mapRead && kind === 1 ? { at: mapAt, first: mapFirst, length: mapLength, depth: mapDepth as 16 | 24 } : undefined,
    },
  };
}

function layoutOf(b: Uint8Array, name: string): Layout {
  const p = parse(b);
  if ('notTga' in p) throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: not a TGA file: ${p.notTga}`);
  if ('unsupported' in p) throw new ClipkitError('E_UNSUPPORTED', `Unsupported TGA ${name}: ${p.unsupported}`);
  return p.layout;
}

/** 5 bits → 8 as Pillow's BGR;5 unpacker: floor(v · 255 / 31). */
const FIVE_TO_EIGHT = Uint8Array.from({ length: 32 }, (_, v) => Math.floor((v * 255) / 31));

/**
 * The palette Pillow 9.4 ends up with, [256, 3] RGB: its initial grey ramp, black below the map's
 * first index, then the map's entries (BGR, or x RRRRR GGGGG BBBBB for 16 bits).
 */
function paletteOf(b: Uint8Array, map: Layout['map']): Uint8Array {
  const pal = new Uint8Array(256 * 3);
  for (let i = 0; i < 256; i++) pal.fill(i, i * 3, i * 3 + 3);
  if (!map) return pal;
  pal.fill(0, 0, map.first * 3);
  for (let k = 0; k < map.length; k++) {
    const o = (map.first + k) * 3;
    if (map.depth === 24) {
      const s = map.at + k * 3;
      pal[o] = b[s + 2];
      pal[o + 1] = b[s + 1];
      pal[o + 2] = b[s];
    } else {
      const v = b[map.at + k * 2] | (b[map.at + k * 2 + 1] << 8);
      pal[o] = FIVE_TO_EIGHT[(v >> 10) & 31];
      pal[o + 1] = FIVE_TO_EIGHT[(v >> 5) & 31];
      pal[o + 2] = FIVE_TO_EIGHT[v & 31];
    }
  }
  return pal;
}

/**
 * One row of w pixels from src[s] (file bytes) to out[o], out[o + step], ... (step is ± channels:
 * left to right, or right to left when the descriptor says so). One small function a layout, so
 * each inner loop stays simple for the JIT.
 */
type RowUnpacker = (src: Uint8Array, s: number, out: Uint8Array, o: number, step: number, w: number, pal: Uint8Array) => void;

const UNPACKERS: Record<Unpack, RowUnpacker> = {
  bit(src, s, out, o, step, w) {
    for (let x = 0; x < w; x++, o += step) out[o] = (src[s + (x >> 3)] >> (7 - (x & 7))) & 1 ? 255 : 0;
  },
  grey(src, s, out, o, step, w) {
    if (step === 1) out.set(src.subarray(s, s + w), o);
    else for (let x = 0; x < w; x++, o += step) out[o] = src[s + x];
  },
  grey_alpha(src, s, out, o, step, w) {
    for (let x = 0; x < w; x++, o += step, s += 2) {
      out[o] = src[s];
      out[o + 1] = src[s + 1];
    }
  },
  index(src, s, out, o, step, w, pal) {
    for (let x = 0; x < w; x++, o += step) {
      const p = src[s + x] * 3;
      out[o] = pal[p];
      out[o + 1] = pal[p + 1];
      out[o + 2] = pal[p + 2];
    }
  },
  bgr15(src, s, out, o, step, w) {
    for (let x = 0; x < w; x++, o += step, s += 2) {
      const v = src[s] | (src[s + 1] << 8);
      out[o] = FIVE_TO_EIGHT[(v >> 10) & 31];
      out[o + 1] = FIVE_TO_EIGHT[(v >> 5) & 31];
      out[o + 2] = FIVE_TO_EIGHT[v & 31];
    }
  },
  bgr(src, s, out, o, step, w) {
    for (let x = 0; x < w; x++, o += step, s += 3) {
      out[o] = src[s + 2];
      out[o + 1] = src[s + 1];
      out[o + 2] = src[s];
    }
  },
  bgra(src, s, out, o, step, w) {
    for (let x = 0; x < w; x++, o += step, s += 4) {
      out[o] = src[s + 2];
      out[o + 1] = src[s + 1];
      out[o + 2] = src[s];
      out[o + 3] = src[s + 3];
    }
  },
};

/** File row r's bytes (from src[s]) into its place in out: rows bottom to top unless topDown. */
function unpackRow(L: Layout, pal: Uint8Array, src: Uint8Array, s: number, out: Uint8Array, r: number): void {
  const w = L.width, C = L.channels, y = L.topDown ? r : L.height - 1 - r;
  const o = L.rightToLeft ? (y * w + w - 1) * C : y * w * C;
  UNPACKERS[L.unpack](src, s, out, o, L.rightToLeft ? -C : C, w, pal);
}

/** Uncompressed pixels: parse() checked they are all in the file. */
function decodeRaw(L: Layout, pal: Uint8Array, b: Uint8Array, out: Uint8Array): void {
  for (let r = 0; r < L.height; r++) unpackRow(L, pal, b, L.pixelsAt + r * L.rowBytes, out, r);
}

/** `count` copies of the pixel at src[s] (bpp bytes, all in src) into row from byte o. */
function fillRun(row: Uint8Array, o: number, count: number, src: Uint8Array, s: number, bpp: number): void {
  const end = o + count * bpp;
  if (bpp === 1) {
    row.fill(src[s], o, end);
  } else if (bpp === 2) {
    const v0 = src[s], v1 = src[s + 1];
    for (; o < end; o += 2) {
      row[o] = v0;
      row[o + 1] = v1;
    }
  } else if (bpp === 3) {
    const v0 = src[s], v1 = src[s + 1], v2 = src[s + 2];
    for (; o < end; o += 3) {
      row[o] = v0;
      row[o + 1] = v1;
      row[o + 2] = v2;
    }
  } else {
    const v0 = src[s], v1 = src[s + 1], v2 = src[s + 2], v3 = src[s + 3];
    for (; o < end; o += 4) {
      row[o] = v0;
      row[o + 1] = v1;
      row[o + 2] = v2;
      row[o + 3] = v3;
    }
  }
}

/**
 * RLE pixels, packet by packet into one row of file bytes, each full row unpacked. Every packet
 * consumes at least two bytes, so the loop ends by the end of the file at the latest.
 */
function decodeRle(L: Layout, pal: Uint8Array, b: Uint8Array, out: Uint8Array, name: string): void {
  const w = L.width, bpp = L.bytesPerPixel, total = L.width * L.height;
  const row = new Uint8Array(L.rowBytes);
  let at = L.pixelsAt, r = 0, x = 0; // file row r, pixel x within it
  const truncated = (inside?: string) =>
    new ClipkitError('E_FORMAT', `Cannot decode ${name}: the RLE data ends at byte ${b.length}${inside ? `, inside ${inside},` : ''} before pixel ${r * w + x} of ${total} (truncated)`);
  while (r < L.height) {
    if (at >= b.length) throw truncated();
    const count = (b[at] & 0x7f) + 1;
    if (b[at] & 0x80) {
      if (at + 1 + bpp > b.length) throw truncated(`the run packet at byte ${at}`);
      if (x + count > w) {
        const where = `a run of ${count} pixels at byte ${at}, from pixel ${r * w + x}`;
        if (r * w + x + count > total) throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: ${where}, overruns the image's ${total} pixels`);
        throw new ClipkitError('E_UNSUPPORTED', `Unsupported TGA ${name}: ${where}, crosses from row ${r} to the next, which Pillow 9.4 refuses (its runs stay within a row)`);
      }
      fillRun(row, x * bpp, count, b, at + 1, bpp);
      x += count;
      at += 1 + bpp;
    } else {
      // A raw packet: Pillow wants all its bytes in the file, then takes them row after row and
      // ignores what is left once the image is full.
      if (at + 1 + count * bpp > b.length) throw truncated(`the raw packet of ${count} pixels at byte ${at}`);
      let s = at + 1, left = count;
      while (left > 0 && r < L.height) {
        const k = Math.min(left, w - x);
        row.set(b.subarray(s, s + k * bpp), x * bpp);
        s += k * bpp;
        left -= k;
        x += k;
        if (x === w) {
          unpackRow(L, pal, row, 0, out, r);
          r++;
          x = 0;
        }
      }
      at += 1 + count * bpp;
      continue;
    }
    if (x === w) {
      unpackRow(L, pal, row, 0, out, r);
      r++;
      x = 0;
    }
  }
}

export const TGA: ImageReader = {
  format: 'tga',
  // Pillow registers these for TGA.
  extensions: ['.tga', '.icb', '.vda', '.vst'],
  // A TGA that Pillow refuses is still recognised, so that its error says why.
  sniff: (bytes) => !('notTga' in parse(bytes)),
  header(bytes, name) {
    const { width, height } = layoutOf(bytes, name);
    return { width, height };
  },
  decode(bytes, name): RawImage {
    const L = layoutOf(bytes, name);
    const pal = L.unpack === 'index' ? paletteOf(bytes, L.map) : new Uint8Array(0);
    const data = new Uint8Array(L.width * L.height * L.channels); // parse() bounded it by the file's length
    if (L.rle) decodeRle(L, pal, bytes, data, name);
    else decodeRaw(L, pal, bytes, data);
    return { data, width: L.width, height: L.height, channels: L.channels, mode: L.mode };
  },
};
