/** The formats clipkit reads itself (src/image/readers/*.ts, one format a file). */
import { BMP } from './bmp';
import { ICO } from './ico';
import { NETPBM } from './netpbm';
import { TGA } from './tga';
import type { ImageReader } from './types';

export const OWN_READERS: readonly ImageReader[] = [BMP, ICO, NETPBM, TGA];

/** Formats known by their first bytes: sniffed before libvips is asked. */
const BY_SIGNATURE: readonly ImageReader[] = [BMP, ICO, NETPBM];

/** The reader for bytes that start with its signature, or undefined. */
export function ownReader(bytes: Uint8Array): ImageReader | undefined {
  return BY_SIGNATURE.find((r) => r.sniff(bytes));
}

/**
 * TGA has no signature, only a header whose fields must agree: tried after libvips has found no
 * format of its own in the bytes, so no file libvips reads is ever taken for a TGA.
 */
export function lastResortReader(bytes: Uint8Array): ImageReader | undefined {
  return TGA.sniff(bytes) ? TGA : undefined;
}

export type { ImageReader, PillowMode, RawImage } from './types';
