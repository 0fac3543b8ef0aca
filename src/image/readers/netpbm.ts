/**
 * PBM / PGM / PPM (Netpbm P1 to P6), decoded as Pillow 9.4's PpmImagePlugin decodes them, quirks
 * included, since the reference pipelines open these files with Pillow:
 *
 * - Header: the magic number is read up to whitespace or 6 bytes, so P1 to P6 must be followed by
 *   whitespace ("P6#c" is no PPM to Pillow). Then width, height and (except for P1/P4) maxval, each a token of at
 *   most 10 bytes ended by one whitespace byte (space, \t, \n, \v, \f, \r), parsed as Python's
 *   int() parses bytes (a sign and single underscores between digits allowed). A '#' starts a
 *   comment up to and including the next \r or \n, anywhere in the header, and a comment does not
 *   end a token: "1#c\n2" is 12. The pixels start right after the byte that ended the last token.
 * - maxval must be 1..65535. Samples are scaled to 0..255 as round(v / maxval * 255) with Python's
 *   round (halves to even), in float64, and clamped to 255 for binary samples over maxval; with
 *   maxval 255 the bytes are taken as they are. Binary samples are 2 bytes, big endian, when maxval
 *   is over 255.
 * - P2/P5 with maxval over 255: Pillow opens them as mode I (32-bit integers scaled to 0..65535),
 *   and its convert('RGB') clamps that to 255, so all but the darkest 1/256 of the range turns white.
 *   A deliberate difference: clipkit scales them to 8 bits as Pillow does P3/P6 with such a maxval,
 *   and as clipkit reads 16-bit greyscale PNG and TIFF (README, "Image formats").
 * - Plain formats (P1, P2, P3) go through Pillow's block decoder, reproduced step by step in
 *   decodePlain: see there for what it does with missing values, negative values and values split
 *   by comments or by its 1 MiB reads.
 * - Pillow's other magic numbers (P0CMYK, and its test variants PyP, PyRGBA, PyCMYK) are read the way
 *   P5/P6 are. PAM (P7), XV thumbnails ("P7 332") and PFM (Pf, PF) are sniffed only to be refused
 *   with E_UNSUPPORTED: Pillow 9.4 reads no PAM or PFM, and its XV thumbnail plugin is not mirrored.
 *
 * Every loop advances through the bytes given or through the pixels the header declared (which
 * decodeImage has already held to its pixel limit); nothing is read past the end of `bytes`.
 */
import { ClipkitError } from '../../errors';
import type { ImageReader, PillowMode, RawImage } from './types';

const HASH = 0x23, CR = 0x0d, LF = 0x0a;
/** Pillow's b_whitespace, which is also what Python's bytes.split() and bytes.isspace() treat as space. */
const isSpace = (c: number) => c === 0x20 || (c >= 0x09 && c <= 0x0d);

/** ImageFile.SAFEBLOCK: the plain decoder reads its input this many bytes at a time. */
const PLAIN_BLOCK = 1 << 20;
/** The longest header token Pillow accepts, and the longest sample token in the plain formats. */
const MAX_TOKEN = 10;

interface Variant {
  mode: PillowMode;
  /** Samples per pixel in the file. */
  bands: number;
  /** P1, P2, P3: samples as decimal text. */
  plain: boolean;
}

/** PpmImagePlugin.MODES. */
const VARIANTS: Readonly<Record<string, Variant>> = {
  P1: { mode: '1', bands: 1, plain: true },
  P2: { mode: 'L', bands: 1, plain: true },
  P3: { mode: 'RGB', bands: 3, plain: true },
  P4: { mode: '1', bands: 1, plain: false },
  P5: { mode: 'L', bands: 1, plain: false },
  P6: { mode: 'RGB', bands: 3, plain: false },
  P0CMYK: { mode: 'CMYK', bands: 4, plain: false },
  PyP: { mode: 'P', bands: 1, plain: false },
  PyRGBA: { mode: 'RGBA', bands: 4, plain: false },
  PyCMYK: { mode: 'CMYK', bands: 4, plain: false },
};

/** Relatives that Pillow 9.4 does not read as PPM, refused by name rather than left to libvips. */
const NOT_READ: Readonly<Record<string, string>> = {
  P7: 'PAM (P7) is not read: Pillow 9.4 does not open it',
  Pf: 'PFM (Pf, floating point) is not read: Pillow 9.4 does not open it',
  PF: 'PFM (PF, floating point) is not read: Pillow 9.4 does not open it',
};

interface Header {
  magic: string;
  variant: Variant;
  width: number;
  height: number;
  /** null for P1 and P4, which have none. */
  maxval: number | null;
  /** Where the pixel data starts. */
  dataAt: number;
}

export const NETPBM: ImageReader = {
  format: 'ppm',
  extensions: ['.pbm', '.pgm', '.ppm', '.pnm'],
  // Pillow's _accept ('P' then one of 0123456y), whatever follows; header() then refuses what
  // Pillow's _open refuses. P7/Pf/PF only when followed by whitespace, as those files are.
  sniff: (b) =>
    b.length >= 2 && b[0] === 0x50 &&
    ('0123456y'.includes(String.fromCharCode(b[1])) || ('7fF'.includes(String.fromCharCode(b[1])) && b.length > 2 && isSpace(b[2]))),
  header: (bytes, name) => {
    const h = readHeader(bytes, name);
    return { width: h.width, height: h.height };
  },
  decode: (bytes, name) => {
    const h = readHeader(bytes, name);
    return h.variant.plain ? decodePlain(bytes, name, h) : decodeBinary(bytes, name, h);
  },
};

// ---------------------------------------------------------------------------------------------
// Header

function readHeader(b: Uint8Array, name: string): Header {
  // _read_magic: up to 6 bytes, ended early (and consumed) by whitespace or by the end of the file.
  let at = 0, magic = '';
  while (at < b.length && magic.length < 6) {
    const c = b[at++];
    if (isSpace(c)) break;
    magic += String.fromCharCode(c);
  }
  const variant = Object.prototype.hasOwnProperty.call(VARIANTS, magic) ? VARIANTS[magic] : undefined;
  if (!variant) {
    const two = magic.slice(0, 2);
    if (two === 'P7' && b.length >= 6 && String.fromCharCode(...b.subarray(0, 6)) === 'P7 332')
      throw new ClipkitError('E_UNSUPPORTED', `Cannot decode ${name}: XV thumbnails ("P7 332") are not read`);
    if (magic === two && Object.prototype.hasOwnProperty.call(NOT_READ, two))
      throw new ClipkitError('E_UNSUPPORTED', `Cannot decode ${name}: ${NOT_READ[two]}`);
    throw new ClipkitError(
      'E_FORMAT',
      `Cannot decode ${name}: not a Netpbm file Pillow opens (magic number ${quote(b.subarray(0, Math.min(b.length, 6)))}; ` +
        'expected P1 to P6 followed by whitespace)',
    );
  }

  const next = (what: string): number => {
    const t = readToken(b, at, name, what);
    at = t.next;
    return t.value;
  };
  const width = next('width');
  const height = next('height');
  let maxval: number | null = null;
  if (variant.mode !== '1') {
    maxval = next('maxval');
    if (!(maxval > 0 && maxval < 65536))
      throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: maxval ${maxval} is outside 1..65535`);
  }
  // Pillow checks the size after the whole header is read (ImageFile: "not identified by this driver").
  if (width < 1 || height < 1)
    throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: the header gives a size of ${width}x${height}; both must be at least 1`);
  return { magic, variant, width, height, maxval, dataAt: at };
}

/**
 * _read_token from `at`: leading whitespace skipped, comments skipped (without ending the token),
 * ended by one whitespace byte (consumed) or the end of the file; then parsed as int(bytes).
 */
function readToken(b: Uint8Array, at: number, name: string, what: string): { value: number; next: number } {
  const start = at;
  const token: number[] = [];
  while (token.length <= MAX_TOKEN && at < b.length) {
    const c = b[at++];
    if (isSpace(c)) {
      if (token.length === 0) continue;
      break;
    }
    if (c === HASH) {
      while (at < b.length) {
        const d = b[at++];
        if (d === CR || d === LF) break;
      }
      continue;
    }
    token.push(c);
  }
  if (token.length === 0)
    throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: the header ends at byte ${b.length} before its ${what} (from byte ${start})`);
  if (token.length > MAX_TOKEN)
    throw new ClipkitError(
      'E_FORMAT',
      `Cannot decode ${name}: the header's ${what} ${quote(token)}... is longer than ${MAX_TOKEN} characters, Pillow's limit`,
    );
  const value = pythonInt(token, 0, token.length);
  if (value === undefined) throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: the header's ${what} ${quote(token)} is not a number`);
  return { value, next: at };
}

/**
 * int(b[from:to]) as Python parses bytes that hold no whitespace: an optional sign, then digits
 * with single underscores between them; undefined when that is not what they are. At most 10 bytes
 * come here, so the value is exact in a double.
 */
function pythonInt(b: ArrayLike<number>, from: number, to: number): number | undefined {
  let i = from, sign = 1;
  if (i < to && (b[i] === 0x2b || b[i] === 0x2d)) sign = b[i++] === 0x2d ? -1 : 1;
  if (i >= to) return undefined;
  let value = 0, lastWasDigit = false;
  for (; i < to; i++) {
    const c = b[i];
    if (c >= 0x30 && c <= 0x39) {
      value = value * 10 + (c - 0x30);
      lastWasDigit = true;
    } else if (c === 0x5f && lastWasDigit) lastWasDigit = false;
    else return undefined;
  }
  return lastWasDigit ? sign * value : undefined;
}

// ---------------------------------------------------------------------------------------------
// Binary formats (P4, P5, P6 and Pillow's own)

function decodeBinary(b: Uint8Array, name: string, h: Header): RawImage {
  const { width: w, height: hgt, variant, maxval } = h;
  const have = b.length - h.dataAt;
  if (variant.mode === '1') {
    // P4, Pillow's raw mode "1;I": rows padded to whole bytes, a set bit is black.
    const stride = Math.ceil(w / 8);
    checkPresent(name, have, stride * hgt);
    const out = allocate(name, w * hgt);
    for (let y = 0; y < hgt; y++) {
      const row = h.dataAt + y * stride;
      for (let x = 0; x < w; x++) out[y * w + x] = (b[row + (x >> 3)] >> (7 - (x & 7))) & 1 ? 0 : 255;
    }
    return { data: out, width: w, height: hgt, channels: 1, mode: '1' };
  }

  const samples = w * hgt * variant.bands;
  const wide = maxval! > 255; // Pillow's ppm decoder: 2 bytes a sample, big endian
  checkPresent(name, have, samples * (wide ? 2 : 1));
  let out: Uint8Array;
  if (maxval === 255) {
    // The raw decoder: the bytes as they are.
    out = allocate(name, samples);
    out.set(b.subarray(h.dataAt, h.dataAt + samples));
  } else {
    // Every possible sample, over maxval too: min(255, round(v / maxval * 255)).
    const scale = new Uint8Array(wide ? 65536 : 256);
    for (let v = 0; v < scale.length; v++) scale[v] = Math.min(255, roundHalfEven((v / maxval!) * 255));
    out = allocate(name, samples);
    if (wide) for (let i = 0, at = h.dataAt; i < samples; i++, at += 2) out[i] = scale[(b[at] << 8) | b[at + 1]];
    else for (let i = 0, at = h.dataAt; i < samples; i++, at++) out[i] = scale[b[at]];
  }
  // PyP has no palette of its own: Pillow's default one is the grey ramp, index i → (i, i, i).
  if (variant.mode === 'P') return { data: spread(name, out, 3), width: w, height: hgt, channels: 3, mode: 'P' };
  return { data: out, width: w, height: hgt, channels: variant.bands, mode: variant.mode };
}

function checkPresent(name: string, have: number, need: number): void {
  if (have < need)
    throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: the pixel data ends at byte ${Math.max(0, have)} of ${need} (truncated)`);
}

// ---------------------------------------------------------------------------------------------
// Plain formats (P1, P2, P3)

/**
 * PpmPlainDecoder, step by step, since its steps show in its output:
 *
 * - The data is read in blocks of 1 MiB from the end of the header. In each block, comments ('#' up
 *   to and including the next \r or \n) are cut out and what is on either side joined, so "1#c\n2"
 *   is the sample 12. A comment still open at a block's end continues into the next block; there
 *   its end is found with Pillow's slip: when the block starts with \n (or \r) and has a \r (or \n)
 *   further on, the comment runs to that further one.
 * - P1: every non-space byte of each block read must be '0' or '1' (even past the last pixel); '1'
 *   is black. Too few pixels: E_FORMAT.
 * - P2/P3: tokens of at most 10 bytes, int() as Python parses them, not over maxval (negative ones
 *   pass, and round(v / maxval * 255) is then kept modulo 256). A block that does not end in
 *   whitespace keeps its last token back (the "half token") and puts it before the next block.
 *   Pillow never clears that token once set, so it is put before every later block too, and at
 *   the end of the file it is repeated until the image is full: "P2 2 2 255\n1 2 3" gives 1 2 3 3,
 *   while "1 2 3\n" is too short (E_FORMAT). Tokens past the last sample are not looked at.
 */
function decodePlain(b: Uint8Array, name: string, h: Header): RawImage {
  const { width: w, height: hgt, variant } = h;
  const total = w * hgt * variant.bands;
  const input = new PlainInput(b, h.dataAt);
  const out = allocate(name, total);
  const filled = variant.mode === '1' ? decodeBits(input, out, name) : decodeSamples(input, out, h.maxval!, name);
  if (filled < total)
    throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: the pixel data ends after ${filled} of ${total} samples (truncated)`);
  return { data: out, width: w, height: hgt, channels: variant.bands, mode: variant.mode };
}

/** _decode_bitonal: '0' → 255 (white), '1' → 0 (black). Returns the pixels filled. */
function decodeBits(input: PlainInput, out: Uint8Array, name: string): number {
  let filled = 0;
  while (filled !== out.length) {
    if (!input.nextBlock()) break;
    const { buf, len } = input.withoutComments(0);
    for (let i = 0; i < len; i++) {
      const c = buf[i];
      if (isSpace(c)) continue;
      if (c !== 0x30 && c !== 0x31) throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: ${quote([c])} in a P1 file's pixels, where only 0 and 1 belong`);
      if (filled < out.length) out[filled++] = c === 0x31 ? 0 : 255;
    }
  }
  return filled;
}

/** _decode_blocks for L and RGB. Returns the samples filled. */
function decodeSamples(input: PlainInput, out: Uint8Array, maxval: number, name: string): number {
  const half = new Uint8Array(MAX_TOKEN);
  let halfLen = 0; // 0: none yet (Pillow's half_token = False); a token is never empty
  let filled = 0;
  // round(v / maxval * 255) for every sample from 0 to maxval; negative ones are computed as met.
  const scale = new Uint8Array(maxval + 1);
  for (let v = 0; v <= maxval; v++) scale[v] = roundHalfEven((v / maxval) * 255);
  const sample = (buf: Uint8Array, from: number, to: number): number => {
    if (to - from > MAX_TOKEN) throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: a sample ${quote(buf.subarray(from, from + MAX_TOKEN + 1))}... is longer than ${MAX_TOKEN} characters`);
    const v = pythonInt(buf, from, to);
    if (v === undefined) throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: the sample ${quote(buf.subarray(from, to))} is not a number`);
    if (v > maxval) throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: the sample ${v} is over maxval ${maxval}`);
    return v >= 0 ? scale[v] : roundHalfEven((v / maxval) * 255) & 255;
  };

  while (filled !== out.length) {
    let len: number, buf: Uint8Array;
    if (input.nextBlock()) ({ buf, len } = input.withoutComments(halfLen));
    else if (halfLen === 0) break;
    else {
      // End of file with a half token: Pillow feeds a block of one space. Unless a comment was
      // still open (which swallows that space), the half token is then a whole token, added once
      // per round until the image is full.
      ({ buf, len } = input.withoutCommentsOfSpace(halfLen));
      if (len === halfLen) continue; // the space went into the comment; the next round has it
      const v = sample(half, 0, halfLen);
      out.fill(v, filled);
      return out.length;
    }
    buf.set(half.subarray(0, halfLen), 0); // the half token, before the block

    // The block's last token, when the block does not end in whitespace, is kept back, and checked
    // for length before anything else in the block.
    let end = len;
    if (len > 0 && !isSpace(buf[len - 1])) {
      let s = len - 1;
      while (s > 0 && !isSpace(buf[s - 1])) s--;
      if (len - s > MAX_TOKEN)
        throw new ClipkitError('E_FORMAT', `Cannot decode ${name}: a sample ${quote(buf.subarray(s, s + MAX_TOKEN + 1))}... is longer than ${MAX_TOKEN} characters`);
      half.set(buf.subarray(s, len));
      halfLen = len - s;
      end = s;
    }
    for (let i = 0; i < end && filled !== out.length; ) {
      while (i < end && isSpace(buf[i])) i++;
      if (i >= end) break;
      // Plain digits, the usual case, are read here; anything else goes to sample().
      const s = i;
      let v = 0, c = buf[i];
      while (i < end && c >= 0x30 && c <= 0x39 && i - s < MAX_TOKEN) {
        v = v * 10 + (c - 0x30);
        c = buf[++i];
      }
      if ((i === end || isSpace(c)) && v <= maxval) {
        out[filled++] = scale[v];
        continue;
      }
      while (i < end && !isSpace(buf[i])) i++;
      out[filled++] = sample(buf, s, i);
    }
  }
  return filled;
}

/**
 * The plain decoder's reads: 1 MiB blocks of the data, and _ignore_comments on each, written into
 * one scratch buffer after room for the half token.
 */
class PlainInput {
  private pos: number;
  private blockStart = 0;
  private blockEnd = 0;
  private commentSpans = false;
  private readonly scratch: Uint8Array;

  constructor(private readonly b: Uint8Array, dataAt: number) {
    this.pos = dataAt;
    this.scratch = new Uint8Array(Math.min(PLAIN_BLOCK, Math.max(0, b.length - dataAt)) + MAX_TOKEN + 1);
  }

  /** Reads the next block; false at the end of the file. */
  nextBlock(): boolean {
    this.blockStart = this.pos;
    this.blockEnd = Math.min(this.b.length, this.pos + PLAIN_BLOCK);
    this.pos = this.blockEnd;
    return this.blockEnd > this.blockStart;
  }

  /** The block read last, comments cut out, at scratch[room...]: { buf: scratch, len: room + its length }. */
  withoutComments(room: number): { buf: Uint8Array; len: number } {
    return this.strip(this.b, room);
  }

  /** The same for the one-space block fed at the end of the file. */
  withoutCommentsOfSpace(room: number): { buf: Uint8Array; len: number } {
    this.blockStart = 0;
    this.blockEnd = 1;
    return this.strip(SPACE, room);
  }

  private strip(src: Uint8Array, room: number): { buf: Uint8Array; len: number } {
    let s = this.blockStart, e = this.blockEnd;
    if (this.commentSpans) {
      // Finish the comment left open by the previous block, reading on while it goes on.
      while (s < e) {
        const end = commentEndFromBlockStart(src, s, e);
        if (end >= 0) {
          s = end + 1;
          break;
        }
        if (!this.nextBlock()) {
          s = e = 0;
          break;
        }
        src = this.b;
        s = this.blockStart;
        e = this.blockEnd;
      }
    }
    this.commentSpans = false;
    const buf = this.scratch;
    let o = room;
    for (let i = s; i < e; ) {
      const c = src[i];
      if (c !== HASH) {
        buf[o++] = c;
        i++;
        continue;
      }
      let j = i + 1;
      while (j < e && src[j] !== LF && src[j] !== CR) j++;
      if (j >= e) {
        this.commentSpans = true;
        break;
      }
      i = j + 1;
    }
    return { buf, len: o };
  }
}

const SPACE = new Uint8Array([0x20]);

/**
 * _find_comment_end(block) at a block's start: the lower of the first \n and the first \r, except
 * that one found at the block's first byte loses to the other when the other is found too
 * (Pillow's `min(a, b) if a * b > 0 else max(a, b)`). An index into src, or -1.
 */
function commentEndFromBlockStart(src: Uint8Array, s: number, e: number): number {
  let lf = -1, cr = -1;
  for (let i = s; i < e && (lf < 0 || cr < 0); i++) {
    if (lf < 0 && src[i] === LF) lf = i - s;
    else if (cr < 0 && src[i] === CR) cr = i - s;
  }
  const rel = lf * cr > 0 ? Math.min(lf, cr) : Math.max(lf, cr);
  return rel < 0 ? -1 : s + rel;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Python's round() of a float: halves to the even neighbour. */
function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d === 0.5) return f % 2 === 0 ? f : f + 1;
  return d < 0.5 ? f : f + 1;
}

/** A zeroed pixel buffer; an allocation the process cannot make is an E_LIMIT, not a RangeError. */
function allocate(name: string, n: number): Uint8Array {
  try {
    return new Uint8Array(n);
  } catch {
    throw new ClipkitError('E_LIMIT', `Cannot decode ${name}: ${n} bytes of pixels could not be allocated`);
  }
}

/** One channel → `channels` equal channels (the grey-ramp palette looked up). */
function spread(name: string, src: Uint8Array, channels: number): Uint8Array {
  const out = allocate(name, src.length * channels);
  for (let i = 0; i < src.length; i++) out.fill(src[i], i * channels, i * channels + channels);
  return out;
}

/** Bytes for an error message: printable ASCII as is, others as \xNN, in quotes. */
function quote(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) {
    const c = bytes[i];
    s += c >= 0x20 && c < 0x7f && c !== 0x27 && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return `'${s}'`;
}
