/**
 * The contract of clipkit's own image readers: formats libvips does not read (BMP, ICO/CUR,
 * PBM/PGM/PPM, TGA), decoded to the pixels and mode PIL.Image.open gives them. They are plain
 * functions of the file's bytes (no I/O, no native code), so they can run on a worker thread.
 */

/** The mode `PIL.Image.open` gives a file. */
export const PILLOW_MODES = ['L', 'LA', 'RGB', 'RGBA', 'P', '1', 'CMYK'] as const;
export type PillowMode = (typeof PILLOW_MODES)[number];

/**
 * Pixels as Pillow holds them after Image.open + load, rows top to bottom:    data: [H, W, C] uint8
 * - 1 → channels 1, values 0 or 255; L → 1; LA → 2; RGB → 3; RGBA → 4 (straight alpha); CMYK → 4.
 * - P → the palette looked up: channels 3 (RGB), the palette's alpha and any transparency ignored,
 *   as convert('RGB') does. The mode stays 'P' since Pillow resizes P images with NEAREST.
 */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: number;
  mode: PillowMode;
}

export interface ImageReader {
  /** The format's name in decodeImage's result and in errors: 'bmp', 'ico', 'ppm', 'tga'. */
  format: string;
  /** File name extensions (lower case, with the dot) that folder scans pick up. */
  extensions: readonly string[];
  /** Whether the bytes start like this format. Only the first bytes are looked at. */
  sniff(bytes: Uint8Array): boolean;
  /**
   * The image's size from its header, checked, without decoding or allocating pixels (the pixel
   * limit and the decode budget are applied to it before decode runs). E_FORMAT when malformed.
   */
  header(bytes: Uint8Array, name: string): { width: number; height: number };
  /**
   * The first image's pixels, or, for a container whose chosen frame is a PNG (ICO), the bytes of
   * that PNG for decodeImage to decode. E_FORMAT (naming `name`) for anything malformed or
   * truncated that Pillow would refuse; never reads past the bytes given.
   */
  decode(bytes: Uint8Array, name: string): RawImage | { embedded: Uint8Array };
}
