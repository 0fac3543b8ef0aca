export { decodeImage, IMAGE_FORMATS, IMAGE_EXTENSIONS, DEFAULT_MAX_PIXELS } from './decode';
export type { DecodedImage, DecodeOptions, ImageInput, PillowMode } from './decode';
export { resizeU8, RESIZE_FILTERS } from './resize';
export { setDecodePixelBudget } from './budget';
export type { PixelsU8, ResizeFilter, ResizeOptions } from './resize';
export { preprocess, preprocessRgbU8, resizeForConfig, resizeInMode, resizedSize, centerCrop, toRgb, normalizeToChw } from './preprocess';
