/**
 * Header fields libvips does not report but Pillow acts on, read straight from the file's bytes.
 * Each reads only the bytes given and returns undefined for anything malformed: the decoder proper
 * reports the damage.
 */

/** IHDR's colour type (0 grey, 2 RGB, 3 palette, 4 grey + alpha, 6 RGBA), or undefined when not a PNG. */
export function pngColourType(b: Uint8Array): number | undefined {
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (b.length < 26 || signature.some((v, i) => b[i] !== v)) return undefined;
  if (String.fromCharCode(b[12], b[13], b[14], b[15]) !== 'IHDR') return undefined;
  return b[25];
}

/**
 * The palette colour at the first frame's transparent index (its graphic control extension), from
 * its local colour table or else the global one; undefined when the first frame has none. Reads
 * only the blocks before the first image's pixel data; anything malformed gives undefined.
 */
export function gifTransparentColour(b: Uint8Array): Uint8Array | undefined {
  if (b.length < 13 || String.fromCharCode(b[0], b[1], b[2]) !== 'GIF') return undefined;
  const tableBytes = (packed: number) => (packed & 0x80 ? 3 * (1 << ((packed & 7) + 1)) : 0);
  let at = 13;
  const globalAt = at, globalLen = tableBytes(b[10]);
  at += globalLen;
  let transparent: number | undefined;
  while (at < b.length) {
    const block = b[at];
    if (block === 0x21) {
      // Extension: label, then sub-blocks; a graphic control extension names the transparent index.
      if (b[at + 1] === 0xf9 && b[at + 2] === 4) transparent = b[at + 3] & 1 ? b[at + 6] : undefined;
      at += 2;
      while (at < b.length && b[at] !== 0) at += b[at] + 1;
      at += 1;
    } else if (block === 0x2c) {
      if (transparent === undefined || at + 10 > b.length) return undefined;
      const localLen = tableBytes(b[at + 9]);
      const table = localLen ? at + 10 : globalLen ? globalAt : -1;
      const len = localLen || globalLen;
      if (table < 0 || 3 * transparent + 3 > len || table + len > b.length) return undefined;
      return b.slice(table + 3 * transparent, table + 3 * transparent + 3);
    } else return undefined;
  }
  return undefined;
}

/**
 * Whether a TIFF's first image has associated (premultiplied) alpha, ExtraSamples = 1, and the bits
 * of its samples; undefined when it has none or the IFD cannot be read.
 */
export function tiffAssociatedAlpha(b: Uint8Array): { bits: number } | undefined {
  if (b.length < 8) return undefined;
  const le = b[0] === 0x49 && b[1] === 0x49, be = b[0] === 0x4d && b[1] === 0x4d;
  if (!le && !be) return undefined;
  const u16 = (at: number) => (le ? b[at] | (b[at + 1] << 8) : (b[at] << 8) | b[at + 1]);
  const u32 = (at: number) => (le ? (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 2 ** 24 : b[at] * 2 ** 24 + ((b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]));
  if (u16(2) !== 42) return undefined; // BigTIFF (43) and others: not looked at
  const ifd = u32(4);
  if (ifd + 2 > b.length) return undefined;
  const count = u16(ifd);
  if (ifd + 2 + count * 12 > b.length) return undefined;
  let extra: number | undefined, bits: number | undefined;
  for (let e = 0; e < count; e++) {
    const at = ifd + 2 + e * 12, tag = u16(at), type = u16(at + 2), n = u32(at + 4);
    // The first value, where it sits in the entry (SHORT) or at its offset (more than two SHORTs).
    const first = type !== 3 ? undefined : n <= 2 ? u16(at + 8) : u32(at + 8) + 2 <= b.length ? u16(u32(at + 8)) : undefined;
    if (tag === 338) extra = first;
    if (tag === 258) bits = first;
  }
  return extra === 1 && (bits === 8 || bits === 16) ? { bits } : undefined;
}
