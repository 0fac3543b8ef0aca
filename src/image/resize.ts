/** Pillow 9.4's Image.resize on uint8 images, bit for bit (csrc/resize.cpp). */
import { describe, expectInt, expectOneOf, expectOptions, OptionKeys } from '../check';
import { rangeError, typeError } from '../errors';
import { native } from '../native';

/**
 * PIL.Image.Resampling, in its numbering (0..5): the kernel takes a filter by this index, and
 * preprocessor_config.json's `resample` is read through it, so the order must stay PIL's.
 */
export const RESIZE_FILTERS = ['nearest', 'lanczos', 'bilinear', 'bicubic', 'box', 'hamming'] as const;
export type ResizeFilter = (typeof RESIZE_FILTERS)[number];

/** A uint8 image, rows of interleaved channels.                                  data: [H, W, C] */
export interface PixelsU8 {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number; // 1 L, 2 LA, 3 RGB, 4 RGBA
}

export interface ResizeOptions {
  filter?: ResizeFilter; // default bicubic
  /**
   * The LA / RGBA path of Image.resize: premultiply by alpha, resample, un-premultiply (ignored for
   * nearest, as Pillow does). Default: true for 2 and 4 channels.
   */
  premultiplyAlpha?: boolean;
}

/** Resizes to outWidth × outHeight as `Image.resize((outWidth, outHeight), filter)` does. */
const RESIZE_OPTIONS: OptionKeys<ResizeOptions> = { filter: true, premultiplyAlpha: true };

/** The largest side of an image handled (the resampler's fixed-point coordinates). */
export const MAX_SIDE = 0x1fffffff;

/** Checks an image in memory: uint8 data of exactly height × width × channels (1 to 4). */
export function expectPixels(name: string, img: unknown): PixelsU8 {
  const p = img as Partial<PixelsU8> | null;
  if (p === null || typeof p !== 'object') throw typeError('E_ARG', `Expected an image { data, width, height, channels } for ${name} but received ${describe(img)}`);
  if (!(p.data instanceof Uint8Array)) throw typeError('E_ARG', `Expected a Uint8Array for ${name}.data but received ${describe(p.data)}`);
  const width = expectInt(`${name}.width`, p.width, 1, MAX_SIDE);
  const height = expectInt(`${name}.height`, p.height, 1, MAX_SIDE);
  const channels = expectInt(`${name}.channels`, p.channels, 1, 4);
  if (p.data.length !== width * height * channels)
    throw rangeError('E_SHAPE', `Expected ${name}.data of length ${width * height * channels} (${height}*${width}*${channels}) but received length ${p.data.length}`);
  return p as PixelsU8;
}

/** New uint8 pixels, or E_LIMIT when the runtime cannot make an array that long. */
export function allocPixels(width: number, height: number, channels: number): Uint8Array {
  try {
    return new Uint8Array(width * height * channels);
  } catch (err) {
    throw rangeError('E_LIMIT', `Cannot allocate a ${width}x${height}x${channels} image: ${(err as Error).message}`);
  }
}

export async function resizeU8(img: PixelsU8, outWidth: number, outHeight: number, opts: ResizeOptions = {}): Promise<PixelsU8> {
  expectOptions('resizeU8', opts, RESIZE_OPTIONS);
  const { width, height, channels } = expectPixels('img', img);
  expectInt('outWidth', outWidth, 1, MAX_SIDE);
  expectInt('outHeight', outHeight, 1, MAX_SIDE);
  const filter = expectOneOf('filter', opts.filter ?? 'bicubic', RESIZE_FILTERS);
  const hasAlpha = channels === 2 || channels === 4;
  const premultiplyAlpha = (opts.premultiplyAlpha ?? true) && hasAlpha && filter !== 'nearest';
  const dst = allocPixels(outWidth, outHeight, channels);
  await native().resizeU8({
    src: img.data, dst, width, height, channels, outWidth, outHeight,
    filter: RESIZE_FILTERS.indexOf(filter), premultiplyAlpha,
  });
  return { data: dst, width: outWidth, height: outHeight, channels };
}
