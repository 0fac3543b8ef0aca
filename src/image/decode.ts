/**
 * Image files to uint8 pixels with sharp, the way `PIL.Image.open` sees them: the file's own channel
 * layout (L, LA, RGB, RGBA), no colour management (embedded ICC profiles are not applied) and, by
 * default, no EXIF rotation. Palette (P) and 1-bit images come out expanded, with `mode` saying what
 * Pillow would have opened, since Pillow resizes those with NEAREST.
 */
import sharp, { Metadata, OutputInfo } from 'sharp';
import { expectInt, expectOptions, expectPath, OptionKeys } from '../check';
import { ClipkitError, typeError } from '../errors';
import { readFileBoundedAsync } from '../io/read_file';
import { noteDecode } from './heap_trim';
import { gifTransparentColour, pngColourType, tiffAssociatedAlpha } from './file_headers';
import { PixelsU8 } from './resize';
import { ImageReader, lastResortReader, ownReader, OWN_READERS } from './readers';
import { decodeOwnFormat } from './readers/off_thread';
import type { PillowMode } from './readers';

export type { PillowMode };

/** Formats libvips decodes for clipkit; others that sharp reads (SVG, PDF, ...) are refused. */
const SHARP_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'heif', 'tiff'];
/** Every format decoded: libvips's, then clipkit's own readers (src/image/readers). */
export const IMAGE_FORMATS: readonly string[] = [...SHARP_FORMATS, ...OWN_READERS.map((r) => r.format)];
/** File name extensions (lower case, with the dot) of the formats decoded: what folder scans pick up. */
export const IMAGE_EXTENSIONS: readonly string[] = [
  '.jpg', '.jpeg', '.png', '.webp', '.gif', '.avif', '.tif', '.tiff',
  ...OWN_READERS.flatMap((r) => r.extensions),
];

/** Pillow's `Image.MAX_IMAGE_PIXELS * 2`, where Pillow raises DecompressionBombError. */
export const DEFAULT_MAX_PIXELS = 178_956_970;
/**
 * The largest image file read: 1 GiB, above an uncompressed 16-bit RGBA TIFF of DEFAULT_MAX_PIXELS
 * (no real photo comes near), and a bound on what one path can make clipkit hold.
 */
export const DEFAULT_MAX_BYTES = 2 ** 30;

export interface DecodedImage extends PixelsU8 {
  mode: PillowMode;
  format: string; // jpeg, png, webp, gif, heif, tiff (libvips's names), or an own reader's: bmp, ico, ppm, tga
  /** The EXIF Orientation tag (1..8), or null when the file has none. */
  orientation: number | null;
}

export interface DecodeOptions {
  /** Rotate / flip by the EXIF Orientation tag (ImageOps.exif_transpose). Default false, as PIL.Image.open. */
  applyExifOrientation?: boolean;
  /** Refuse images with more pixels than this (decompression bombs). Default DEFAULT_MAX_PIXELS. */
  maxPixels?: number;
  /** Refuse image files larger than this many bytes (E_LIMIT). Default DEFAULT_MAX_BYTES. */
  maxBytes?: number;
  /** Names the image in errors when it is given as bytes. */
  name?: string;
}

export type ImageInput = string | Uint8Array;

/** Decodes the first frame of an image file or its bytes.                      data: [H, W, C] uint8 */
const DECODE_OPTIONS: OptionKeys<DecodeOptions> = { applyExifOrientation: true, maxPixels: true, maxBytes: true, name: true };

export async function decodeImage(input: ImageInput, opts: DecodeOptions = {}): Promise<DecodedImage> {
  return decodeImageWith(input, opts);
}

/**
 * decodeImage, calling `beforeDecode(width × height)` once the header is read and checked, before
 * the pixels are decoded (preprocessing takes them from the decode budget there).
 */
export async function decodeImageWith(input: ImageInput, opts: DecodeOptions, beforeDecode?: (pixels: number) => Promise<void>): Promise<DecodedImage> {
  noteDecode();
  expectOptions('the decode options', opts, DECODE_OPTIONS);
  const maxPixels = expectInt('maxPixels', opts.maxPixels ?? DEFAULT_MAX_PIXELS, 1);
  const maxBytes = expectInt('maxBytes', opts.maxBytes ?? DEFAULT_MAX_BYTES, 1);
  const { bytes, name, owned } = await readInput(input, maxBytes, opts.name);
  if (bytes.length === 0) throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: the file is empty`);
  let reader = ownReader(bytes);
  // An uncompressed TGA can start as a cursor does (00 00 02 00); where the CUR reading fails at
  // its directory, Pillow goes on to try TGA, and so does this.
  if (reader?.format === 'ico' && !headerReads(reader, bytes, name)) reader = lastResortReader(bytes) ?? reader;
  if (reader) return decodeOwn(reader, bytes, owned, name, maxPixels, opts, beforeDecode);

  // failOn 'error': refuse what libjpeg / libpng / libtiff call an error (a truncated file among
  // them, as Pillow does) but read through their warnings (extraneous bytes before a marker, an
  // IFD chain that loops), which Pillow reads through too.
  const sharpOpts = { limitInputPixels: false as const, ignoreIcc: true, failOn: 'error' as const, page: 0, pages: 1 };
  let meta: Metadata;
  try {
    meta = await sharp(bytes, sharpOpts).metadata();
  } catch (err) {
    const tga = lastResortReader(bytes);
    if (tga) return decodeOwn(tga, bytes, owned, name, maxPixels, opts, beforeDecode);
    throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: not a supported image or corrupt (${firstLine(err)})`);
  }
  const format = String(meta.format);
  if (!SHARP_FORMATS.includes(format))
    throw new ClipkitError('E_UNSUPPORTED', `Unsupported image format ${format} for ${name}; supported: ${IMAGE_FORMATS.join(', ')}`);
  const width = meta.width ?? 0, height = meta.height ?? 0;
  if (width * height > maxPixels)
    throw new ClipkitError(
      'E_LIMIT',
      `Image ${name} has ${width}x${height} = ${width * height} pixels, over the limit of ${maxPixels} (maxPixels)`,
    );

  await beforeDecode?.(width * height);
  const mode = pillowMode(meta);
  const grey = meta.channels !== undefined && meta.channels <= 2 && mode !== 'P';
  // Pillow applies a TIFF's Orientation tag while decoding it (and keeps the tag, so exif_transpose
  // applies it once more); a JPEG's EXIF orientation only when asked.
  const tiff = format === 'tiff';
  let pipeline = sharp(bytes, { ...sharpOpts, autoOrient: opts.applyExifOrientation === true || tiff });
  // CMYK stays CMYK (Pillow resizes it so and converts with its own formula, not a profile).
  if (mode === 'CMYK') pipeline = pipeline.pipelineColourspace('cmyk').toColourspace('cmyk');
  // Premultiplied RGBA (a TIFF's associated alpha): read at the file's own depth, to be
  // un-premultiplied as Pillow does it (pillowUnpremultiply).
  const associated = tiff && meta.channels === 4 && meta.space !== 'cmyk' ? tiffAssociatedAlpha(bytes) : undefined;
  if (associated?.bits === 16) pipeline = pipeline.pipelineColourspace('rgb16').toColourspace('rgb16');
  let out: { data: Buffer; info: OutputInfo };
  try {
    out = await pipeline.raw({ depth: associated?.bits === 16 ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: ${firstLine(err)}`);
  }
  let channels: number = out.info.channels;
  if (channels < 1 || channels > 4)
    throw new ClipkitError('E_UNSUPPORTED', `Unsupported image ${name}: ${channels} channels (${meta.space})`);
  const n = out.info.width * out.info.height;
  let data = new Uint8Array(out.data.buffer, out.data.byteOffset, out.data.length);
  if (associated && channels === 4) data = pillowUnpremultiply(out.data, associated.bits, n);
  // sharp hands greyscale out as sRGB (the grey value replicated); keep L / LA as Pillow opens them.
  if (grey && channels >= 3) [data, channels] = keepFirstAndAlpha(data, channels, n);
  // A grey or RGB PNG with a tRNS chunk: libvips adds an alpha channel, Pillow keeps mode L / RGB
  // (the transparent colour only in its info) and resizes without it.
  const pngType = format === 'png' ? pngColourType(bytes) : undefined;
  if ((pngType === 0 || pngType === 2) && (channels === 2 || channels === 4)) [data, channels] = dropAlpha(data, channels, n);
  // A GIF's transparent pixels: libvips makes them black, Pillow's convert('RGB') gives the palette
  // colour at the transparent index.
  if (format === 'gif' && channels === 4) {
    const colour = gifTransparentColour(bytes);
    if (colour) for (let p = 0; p < n; p++) if (data[p * 4 + 3] === 0) data.set(colour, p * 4);
  }
  let width2 = out.info.width, height2 = out.info.height;
  if (tiff && opts.applyExifOrientation === true && (meta.orientation ?? 1) > 1)
    ({ data, width: width2, height: height2 } = orient({ data, width: width2, height: height2, channels }, meta.orientation!));
  return {
    data, width: width2, height: height2, channels,
    mode: mode ?? (['L', 'LA', 'RGB', 'RGBA'] as const)[channels - 1],
    format,
    orientation: meta.orientation ?? null,
  };
}

/** Whether reader.header accepts the bytes (false on E_FORMAT; other errors are thrown). */
function headerReads(reader: ImageReader, bytes: Uint8Array, name: string): boolean {
  try {
    reader.header(bytes, name);
    return true;
  } catch (err) {
    if ((err as ClipkitError).code === 'E_FORMAT') return false;
    throw err;
  }
}

/** An image in one of clipkit's own formats: header and limits first, then the pixels. */
async function decodeOwn(
  reader: ImageReader, bytes: Uint8Array, owned: boolean, name: string, maxPixels: number, opts: DecodeOptions,
  beforeDecode?: (pixels: number) => Promise<void>,
): Promise<DecodedImage> {
  const { width, height } = reader.header(bytes, name);
  if (width * height > maxPixels)
    throw new ClipkitError('E_LIMIT', `Image ${name} has ${width}x${height} = ${width * height} pixels, over the limit of ${maxPixels} (maxPixels)`);
  await beforeDecode?.(width * height);
  const out = await decodeOwnFormat(reader, bytes, name, width * height, owned);
  if ('embedded' in out) {
    // An icon's PNG frame: decoded as a PNG, held to the size its header gave.
    const png = await decodeImageWith(out.embedded, { ...opts, name: `${name} (its PNG image)`, maxPixels: width * height });
    return { ...png, format: reader.format };
  }
  return { ...out, format: reader.format, orientation: null };
}

/**
 * The image turned as EXIF orientation `o` (2..8) says to display it: 2 flips left-right, 3 turns
 * 180°, 4 flips top-bottom, 5 transposes, 6 turns 90° clockwise, 7 transverses, 8 turns 90°
 * counter-clockwise.
 */
export function orient(img: PixelsU8, o: number): PixelsU8 {
  const { data, width: w, height: h, channels: C } = img;
  const swap = o >= 5 && o <= 8;
  const ow = swap ? h : w, oh = swap ? w : h;
  const out = new Uint8Array(data.length);
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++) {
      const [sx, sy] =
        o === 2 ? [w - 1 - x, y] : o === 3 ? [w - 1 - x, h - 1 - y] : o === 4 ? [x, h - 1 - y]
          : o === 5 ? [y, x] : o === 6 ? [y, h - 1 - x] : o === 7 ? [w - 1 - y, h - 1 - x] : o === 8 ? [w - 1 - y, x] : [x, y];
      const s = (sy * w + sx) * C, d = (y * ow + x) * C;
      for (let c = 0; c < C; c++) out[d + c] = data[s + c];
    }
  return { data: out, width: ow, height: oh, channels: C };
}

/** [N, 2 | 4] → [N, 1 | 3]: the alpha channel dropped. */
function dropAlpha(src: Uint8Array, C: number, n: number): [Uint8Array, number] {
  const outC = C - 1;
  const out = new Uint8Array(n * outC);
  for (let p = 0; p < n; p++) for (let c = 0; c < outC; c++) out[p * outC + c] = src[p * C + c];
  return [out, outC];
}

/**
 * RGBA with associated alpha as Pillow 9.4's RGBa / RGBa;16 unpackers give it: from the top byte
 * of each sample, c = ⌊c8·255/a8⌋ capped at 255 (0 where a8 = 0), alpha a8. libvips hands the
 * samples out already un-premultiplied at the file's depth, s = ⌊p·max/a⌋ (clamped to max), from
 * which the stored p is exactly ⌈s·a/max⌉: s·a/max lies in (p − a/max, p] and a ≤ max. A clamped
 * s gives back p = a, which the rule maps to 255, as it does the stored p > a.   [N, 4] → [N, 4] u8
 */
function pillowUnpremultiply(raw: Buffer, bits: number, n: number): Uint8Array {
  const max = bits === 16 ? 65535 : 255, shift = bits === 16 ? 8 : 0;
  const s = bits === 16 ? new Uint16Array(raw.buffer, raw.byteOffset, n * 4) : new Uint8Array(raw.buffer, raw.byteOffset, n * 4);
  const out = new Uint8Array(n * 4);
  for (let p = 0; p < n; p++) {
    const a = s[p * 4 + 3], a8 = a >> shift;
    out[p * 4 + 3] = a8;
    for (let c = 0; c < 3; c++) {
      const c8 = Math.ceil((s[p * 4 + c] * a) / max) >> shift;
      out[p * 4 + c] = a8 === 0 ? 0 : a8 === 255 ? c8 : Math.min(255, Math.floor((c8 * 255) / a8));
    }
  }
  return out;
}

/** [N, 3 | 4] → [N, 1 | 2]: the first channel, and the alpha channel when there is one. */
function keepFirstAndAlpha(src: Uint8Array, C: number, n: number): [Uint8Array, number] {
  const outC = C === 4 ? 2 : 1;
  const out = new Uint8Array(n * outC);
  for (let p = 0; p < n; p++) {
    out[p * outC] = src[p * C];
    if (outC === 2) out[p * 2 + 1] = src[p * 4 + 3];
  }
  return [out, outC];
}

/** P, 1 and CMYK from the file's header; the others follow from the decoded channel count. */
function pillowMode(meta: Metadata): PillowMode | null {
  if (meta.space === 'cmyk') return 'CMYK';
  if (meta.isPalette || meta.format === 'gif') return 'P';
  if (meta.bitsPerSample === 1 && meta.channels === 1) return '1';
  return null;
}

/** The image's bytes; `owned` when clipkit read them itself (a path), so they may be handed to a worker. */
async function readInput(input: ImageInput, maxBytes: number, name?: string): Promise<{ bytes: Uint8Array; name: string; owned: boolean }> {
  // A regular file only (not /dev/zero, not a FIFO), and at most maxBytes of it.
  if (typeof input === 'string')
    return { bytes: await readFileBoundedAsync(expectPath('image', input), 'image', maxBytes), name: name ?? input, owned: true };
  if (input instanceof Uint8Array) {
    if (input.length > maxBytes) throw new ClipkitError('E_LIMIT', `The image bytes are ${input.length} bytes, over the limit of ${maxBytes} (maxBytes)`);
    return { bytes: input, name: name ?? `image bytes (${input.length} bytes)`, owned: false };
  }
  throw typeError('E_ARG', `Expected a file path, Buffer or Uint8Array for image but received ${typeof input}`);
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}
