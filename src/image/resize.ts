/** Pillow 9.4's Image.resize on uint8 images, bit for bit (csrc/resize.cpp). */
import { expectInt, expectOneOf, expectOptions, OptionKeys } from '../check';
import { rangeError, typeError } from '../errors';
import { native } from '../native';

/** PIL.Image.Resampling, in its numbering. */
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

export async function resizeU8(img: PixelsU8, outWidth: number, outHeight: number, opts: ResizeOptions = {}): Promise<PixelsU8> {
  expectOptions('resizeU8', opts, RESIZE_OPTIONS);
  if (!(img?.data instanceof Uint8Array)) throw typeError('E_ARG', 'Expected a Uint8Array for img.data');
  const width = expectInt('img.width', img.width, 1, 0x1fffffff);
  const height = expectInt('img.height', img.height, 1, 0x1fffffff);
  const channels = expectInt('img.channels', img.channels, 1, 4);
  expectInt('outWidth', outWidth, 1, 0x1fffffff);
  expectInt('outHeight', outHeight, 1, 0x1fffffff);
  if (img.data.length !== width * height * channels)
    throw rangeError(
      'E_SHAPE',
      `Expected img.data of length ${width * height * channels} (${height}*${width}*${channels}) but received length ${img.data.length}`,
    );
  const filter = expectOneOf('filter', opts.filter ?? 'bicubic', RESIZE_FILTERS);
  const hasAlpha = channels === 2 || channels === 4;
  const premultiplyAlpha = (opts.premultiplyAlpha ?? true) && hasAlpha && filter !== 'nearest';
  const dst = new Uint8Array(outWidth * outHeight * channels);
  await native().resizeU8({
    src: img.data, dst, width, height, channels, outWidth, outHeight,
    filter: RESIZE_FILTERS.indexOf(filter), premultiplyAlpha,
  });
  return { data: dst, width: outWidth, height: outHeight, channels };
}
