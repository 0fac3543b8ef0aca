/**
 * Image → pixel_values as the reference CLIP pipelines make them on PIL images:
 *   decode (file's own mode) → resize in that mode (Pillow's Image.resize; P and 1 with NEAREST) →
 *   centre crop (offsets rounded half to even, as torchvision) → convert('RGB') (L replicated, alpha
 *   dropped without compositing) → (u8/255 − mean)/std in float32 → [3, H, W].
 * Chinese-CLIP's configs give size {height, width} (a straight resize); CLIP's give {shortest_edge}
 * (the long side becomes int(size·long/short)) and a centre crop.
 */
import type { PreprocessConfig } from '../loading/config';
import { decodeBudget } from './budget';
import { decodeImageWith, DecodeOptions, DecodedImage, ImageInput } from './decode';
import { describe, expectFinite, expectInt, expectOneOf } from '../check';
import { typeError } from '../errors';
import { allocPixels, expectPixels, PixelsU8, RESIZE_FILTERS, ResizeFilter, resizeU8 } from './resize';
import { PILLOW_MODES, PillowMode } from './readers/types';

/** Sides of a resize target or crop: far above any CLIP input, far below what memory holds. */
const MAX_TARGET_SIDE = 1 << 16;

/**
 * Checks a preprocessor config field by field (readPreprocessConfig / parsePreprocessConfig make
 * them; one built by hand gets the same checks rather than a TypeError from deep inside).
 */
export function expectPreprocessConfig(c: unknown): PreprocessConfig {
  const cfg = c as PreprocessConfig | null;
  if (cfg === null || typeof cfg !== 'object') throw typeError('E_ARG', `Expected a preprocessor config (readPreprocessConfig) but received ${describe(c)}`);
  for (const k of ['doResize', 'doCenterCrop', 'doRescale', 'doNormalize'] as const)
    if (typeof cfg[k] !== 'boolean') throw typeError('E_ARG', `Expected a boolean for config.${k} but received ${describe(cfg[k])}`);
  const size = cfg.size as Partial<{ shortestEdge: number; height: number; width: number }> | null;
  if (size === null || typeof size !== 'object') throw typeError('E_ARG', `Expected { shortestEdge } or { height, width } for config.size but received ${describe(size)}`);
  if ('height' in size) {
    expectInt('config.size.height', size.height, 1, MAX_TARGET_SIDE);
    expectInt('config.size.width', size.width, 1, MAX_TARGET_SIDE);
  } else expectInt('config.size.shortestEdge', size.shortestEdge, 1, MAX_TARGET_SIDE);
  const crop = cfg.cropSize as Partial<{ height: number; width: number }> | null;
  if (crop === null || typeof crop !== 'object') throw typeError('E_ARG', `Expected { height, width } for config.cropSize but received ${describe(crop)}`);
  expectInt('config.cropSize.height', crop.height, 1, MAX_TARGET_SIDE);
  expectInt('config.cropSize.width', crop.width, 1, MAX_TARGET_SIDE);
  expectOneOf('config.resample', cfg.resample, RESIZE_FILTERS);
  expectFinite('config.rescaleFactor', cfg.rescaleFactor);
  for (const k of ['mean', 'std'] as const) {
    const v = cfg[k] as unknown;
    if (!Array.isArray(v) || v.length !== 3) throw typeError('E_ARG', `Expected 3 numbers for config.${k} but received ${describe(v)}`);
    v.forEach((x, i) => expectFinite(`config.${k}[${i}]`, x));
  }
  return cfg;
}

/** The image just before ToTensor: uint8 RGB.                                  data: [H, W, 3] */
export async function preprocessRgbU8(input: ImageInput, config: PreprocessConfig, opts: DecodeOptions = {}): Promise<PixelsU8> {
  expectPreprocessConfig(config);
  // The decoded image and its resize are the large buffers: held under the decode budget until the
  // image is down to its cropped size.
  let release: (() => void) | undefined;
  try {
    const decoded = await decodeImageWith(input, opts, async (pixels) => {
      release = await decodeBudget.acquire(pixels);
    });
    const resized = config.doResize ? await resizeForConfig(decoded, config) : decoded;
    const cropped = config.doCenterCrop ? centerCrop(resized, config.cropSize.height, config.cropSize.width) : resized;
    return toRgb(cropped, decoded.mode);
  } finally {
    release?.();
  }
}

/** pixel_values for one image.                                                  [3, H, W] float32 */
export async function preprocess(input: ImageInput, config: PreprocessConfig, opts: DecodeOptions = {}): Promise<Float32Array> {
  return normalizeToChw(await preprocessRgbU8(input, config, opts), config);
}

/** The resize step: size {height, width} exactly, or the shortest edge to size.shortestEdge. */
export async function resizeForConfig(img: DecodedImage, config: PreprocessConfig): Promise<PixelsU8> {
  expectPixels('img', img);
  const [outW, outH] = resizedSize(img.width, img.height, config);
  return resizeInMode(img, outW, outH, config.resample);
}

/**
 * `Image.resize((outWidth, outHeight), filter)` on an image of Pillow mode `img.mode`: P and 1
 * silently with NEAREST, LA and RGBA premultiplied by alpha, CMYK's four channels each on their own.
 */
export async function resizeInMode(img: PixelsU8 & { mode: PillowMode }, outWidth: number, outHeight: number, filter: ResizeFilter = 'bicubic'): Promise<PixelsU8 & { mode: PillowMode }> {
  const mode = expectOneOf('img.mode', img.mode, PILLOW_MODES);
  const nearest = mode === 'P' || mode === '1';
  const out = await resizeU8(img, outWidth, outHeight, { filter: nearest ? 'nearest' : filter, premultiplyAlpha: mode === 'LA' || mode === 'RGBA' });
  return { ...out, mode };
}

/** [width, height] after the resize (torchvision's _compute_resized_output_size without max_size). */
export function resizedSize(width: number, height: number, config: PreprocessConfig): [number, number] {
  expectInt('width', width, 1, 0x1fffffff);
  expectInt('height', height, 1, 0x1fffffff);
  expectPreprocessConfig(config);
  const size = config.size;
  if ('height' in size) return [size.width, size.height];
  const short = Math.min(width, height), long = Math.max(width, height);
  const newShort = size.shortestEdge, newLong = Math.trunc((newShort * long) / short);
  return width <= height ? [newShort, newLong] : [newLong, newShort];
}

/** Python's round() for the halves (x.5 → the even neighbour). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  if (v - f === 0.5) return f % 2 === 0 ? f : f + 1;
  return Math.round(v);
}

/**
 * torchvision's CenterCrop: top = round((h − ch)/2), left = round((w − cw)/2); a side shorter than the
 * crop is first padded with zeros ((c − s)//2 before).
 */
export function centerCrop(img: PixelsU8, cropH: number, cropW: number): PixelsU8 {
  const { width: w, height: h, channels: C } = expectPixels('img', img);
  expectInt('cropH', cropH, 1, MAX_TARGET_SIDE);
  expectInt('cropW', cropW, 1, MAX_TARGET_SIDE);
  if (w === cropW && h === cropH) return img;
  const top = h >= cropH ? roundHalfEven((h - cropH) / 2) : -Math.floor((cropH - h) / 2);
  const left = w >= cropW ? roundHalfEven((w - cropW) / 2) : -Math.floor((cropW - w) / 2);
  const out = allocPixels(cropW, cropH, C);
  for (let y = 0; y < cropH; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= h) continue;
    const x0 = Math.max(0, -left), x1 = Math.min(cropW, w - left);
    if (x1 > x0) out.set(img.data.subarray((sy * w + x0 + left) * C, (sy * w + x1 + left) * C), (y * cropW + x0) * C);
  }
  return { data: out, width: cropW, height: cropH, channels: C };
}

/**
 * convert('RGB'): L replicated, LA → L replicated, RGBA → RGB; alpha is dropped, not composited.
 * With mode 'CMYK', Pillow 9.4's cmyk2rgb: R = (255 − K) − (C·(255 − K))/255, rounded as MULDIV255,
 * likewise G from M and B from Y (no colour profile).
 */
export function toRgb(img: PixelsU8, mode?: PillowMode): PixelsU8 {
  const { data, width, height, channels: C } = expectPixels('img', img);
  if (mode !== undefined) expectOneOf('mode', mode, PILLOW_MODES);
  if (mode === 'CMYK' && C !== 4) throw typeError('E_ARG', `Expected 4 channels for a CMYK image but received ${C}`);
  if (C === 3) return img;
  const n = width * height;
  const out = allocPixels(width, height, 3);
  if (mode === 'CMYK') {
    for (let p = 0; p < n; p++) {
      const nk = 255 - data[p * 4 + 3];
      for (let c = 0; c < 3; c++) {
        const t = data[p * 4 + c] * nk + 128;
        out[p * 3 + c] = nk - ((t + (t >> 8)) >> 8);
      }
    }
    return { data: out, width, height, channels: 3 };
  }
  for (let p = 0; p < n; p++) {
    if (C <= 2) {
      const v = data[p * C];
      out[p * 3] = v;
      out[p * 3 + 1] = v;
      out[p * 3 + 2] = v;
    } else {
      out[p * 3] = data[p * 4];
      out[p * 3 + 1] = data[p * 4 + 1];
      out[p * 3 + 2] = data[p * 4 + 2];
    }
  }
  return { data: out, width, height, channels: 3 };
}

/**
 * ToTensor + Normalize in float32: x = u8/255 (one float32 division), then (x − mean)/std with mean and
 * std rounded to float32 first, as torch does.                         rgb: [H, W, 3] → [3, H, W]
 */
export function normalizeToChw(rgb: PixelsU8, config: PreprocessConfig): Float32Array {
  const { data, width, height, channels } = expectPixels('rgb', rgb);
  if (channels !== 3) throw typeError('E_ARG', `Expected RGB pixels (3 channels) for rgb but received ${channels} channels; convert with toRgb first`);
  expectPreprocessConfig(config);
  const f = Math.fround;
  const hw = width * height;
  const out = new Float32Array(3 * hw);
  // A float32 table per channel: 256 values cover every input.
  for (let c = 0; c < 3; c++) {
    const mean = f(config.doNormalize ? config.mean[c] : 0), std = f(config.doNormalize ? config.std[c] : 1);
    const table = new Float32Array(256);
    for (let u = 0; u < 256; u++) {
      const x = !config.doRescale ? u : config.rescaleFactor === 1 / 255 ? f(u / 255) : f(u * f(config.rescaleFactor));
      table[u] = config.doNormalize ? f(f(x - mean) / std) : x;
    }
    const plane = out.subarray(c * hw, (c + 1) * hw);
    for (let p = 0; p < hw; p++) plane[p] = table[data[p * 3 + c]];
  }
  return out;
}
