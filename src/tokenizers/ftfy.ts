/**
 * The part of ftfy 6.3.1 `fix_text` (default settings) that OpenAI's CLIP tokenizer runs on every
 * text: HTML entities, mojibake repair (UTF-8 read as a single-byte encoding), C1 controls, Latin
 * ligatures, full/half-width forms, curly quotes, line breaks, lone surrogates, terminal escapes,
 * control characters, then NFC; repeated until the text stops changing, one line at a time.
 *
 * The character tables and the mojibake heuristic come from ftfy itself (ftfy_tables.ts, generated).
 * Byte strings are handled as "binary strings": one char per byte, codes 0-255.
 *
 * Unicode version: ftfy's reference ran on Python's unicodedata 14.0.0; NFC here uses this Node's
 * ICU, which can differ only on characters assigned after Unicode 14.
 */
import { BADNESS_SOURCE, CHARMAPS, UTF8_DETECTOR_SOURCE, WINDOWS_1252_UNDEFINED } from './ftfy_tables';
import { HTML5, htmlUnescape } from './html_unescape';

const MAX_DECODE_LENGTH = 1_000_000; // codepoints per segment, as ftfy

// ---------------------------------------------------------------------------------------------
// Tables built once from the generated data

interface Charmap {
  name: string;
  decode: string; // 256 chars: byte -> char
  encode: Map<string, number>; // char -> byte
  possible: RegExp; // the whole text can be encoded in it
}

const CHARMAP_LIST: Charmap[] = CHARMAPS.map(([name, decode]) => {
  const encode = new Map<string, number>();
  for (let b = 0; b < 256; b++) encode.set(decode[b], b);
  // ASCII except 0x1A, plus what bytes 0x80-0xFF and 0x1A decode to (ftfy's ENCODING_REGEXES).
  const chars = Array.from(decode.slice(0x80) + decode[0x1a], escapeClassChar).join('');
  return { name, decode, encode, possible: new RegExp(`^[\\x00-\\x19\\x1b-\\x7f${chars}]*$`, 'u') };
});
const LATIN_1 = CHARMAP_LIST.find((c) => c.name === 'latin-1')!;
const SLOPPY_1252 = CHARMAP_LIST.find((c) => c.name === 'sloppy-windows-1252')!;

function escapeClassChar(c: string): string {
  return `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

const BADNESS_RE = new RegExp(BADNESS_SOURCE, 'u');
const UTF8_DETECTOR_RE = new RegExp(UTF8_DETECTOR_SOURCE, 'gu');
const ASCII_RE = /^[\x00-\x7f]*$/;
const C1_CONTROL_RE = /[\x80-\x9f]/;

/** `&name;` entities ftfy decodes, plus upper-cased names of lower-case entities when unambiguous. */
const HTML_ENTITIES: ReadonlyMap<string, string> = (() => {
  const m = new Map<string, string>();
  for (const [name, char] of HTML5) {
    if (!name.endsWith(';')) continue;
    m.set('&' + name, char);
    if (name === name.toLowerCase()) {
      const upper = '&' + name.toUpperCase();
      if (htmlUnescape(upper) === upper) m.set(upper, char.toUpperCase());
    }
  }
  return m;
})();
const HTML_ENTITY_RE = /&#?[0-9A-Za-z]{1,24};/g;

const LIGATURES: ReadonlyMap<string, string> = new Map([
  ['Ĳ', 'IJ'], ['ĳ', 'ij'], ['ŉ', 'ʼn'], ['Ǳ', 'DZ'], ['ǲ', 'Dz'], ['ǳ', 'dz'], ['Ǆ', 'DŽ'], ['ǅ', 'Dž'],
  ['ǆ', 'dž'], ['Ǉ', 'LJ'], ['ǈ', 'Lj'], ['ǉ', 'lj'], ['Ǌ', 'NJ'], ['ǋ', 'Nj'], ['ǌ', 'nj'], ['ﬀ', 'ff'],
  ['ﬁ', 'fi'], ['ﬂ', 'fl'], ['ﬃ', 'ffi'], ['ﬄ', 'ffl'], ['ﬅ', 'ſt'], ['ﬆ', 'st'],
]);
const LIGATURE_RE = /[ĲĳŉǱǲǳǄǅǆǇǈǉǊǋǌﬀﬁﬂﬃﬄﬅﬆ]/g;

/** U+3000 -> space, and every char of U+FF01-U+FFEF that NFKC changes (full-width ASCII, half-width kana...). */
const WIDTH_MAP: ReadonlyMap<string, string> = (() => {
  const m = new Map<string, string>([['\u3000', ' ']]);
  for (let cp = 0xff01; cp < 0xfff0; cp++) {
    const c = String.fromCharCode(cp);
    const alt = c.normalize('NFKC');
    if (alt !== c) m.set(c, alt);
  }
  return m;
})();
const WIDTH_RE = /[\u3000\uff01-\uffef]/g;

const SINGLE_QUOTE_RE = /[\u02bc\u2018-\u201b]/g;
const DOUBLE_QUOTE_RE = /[\u201c-\u201f]/g;
const ANSI_RE = /\x1b\[((?:\d|;)*)([a-zA-Z])/g;
/** ftfy's CONTROL_CHARS: C0 controls but \t \n \f \r, DEL, deprecated format chars, BOM, interlinear annotation. */
const CONTROL_RE = /[\x00-\x08\x0b\x0e-\x1f\x7f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;
const LONE_SURROGATE_RE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

// Byte-level expressions (on binary strings).
const ALTERED_UTF8_RE = new RegExp(
  '[\\xc2\\xc3\\xc5\\xce\\xd0\\xd9][ ]' +
    '|[\\xe2\\xe3][ ][\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf]' +
    '|[\\xe0-\\xe3][\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf][ ]' +
    '|[\\xf0][ ][\\x80-\\xbf][\\x80-\\xbf]' +
    '|[\\xf0][\\x80-\\xbf][ ][\\x80-\\xbf]' +
    '|[\\xf0][\\x80-\\xbf][\\x80-\\xbf][ ]',
  'g',
);
const A_GRAVE_WORD_RE = /\xc3 (?! |quele|quela|quilo|s )/g;
const LOSSY_UTF8_RE = new RegExp(
  '[\\xc2-\\xdf][\\x1a]' +
    '|[\\xc2-\\xc3][?]' +
    '|\\xed[\\xa0-\\xaf][\\x1a?]\\xed[\\xb0-\\xbf][\\x1a?\\x80-\\xbf]' +
    '|\\xed[\\xa0-\\xaf][\\x1a?\\x80-\\xbf]\\xed[\\xb0-\\xbf][\\x1a?]' +
    '|[\\xe0-\\xef][\\x1a?][\\x1a\\x80-\\xbf]' +
    '|[\\xe0-\\xef][\\x1a\\x80-\\xbf][\\x1a?]' +
    '|[\\xf0-\\xf4][\\x1a?][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf]' +
    '|[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a?][\\x1a\\x80-\\xbf]' +
    '|[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf][\\x1a?]' +
    '|\\x1a',
  'g',
);

// ---------------------------------------------------------------------------------------------
// Entry point

/** ftfy.fix_text(text) with default settings. */
export function fixText(text: string): string {
  const out: string[] = [];
  let unescape = true; // "auto": off from the first line holding a '<' on
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos) + 1;
    if (end === 0) end = text.length;
    end = limitCodepoints(text, pos, end, MAX_DECODE_LENGTH);
    const segment = text.slice(pos, end);
    if (unescape && segment.includes('<')) unescape = false;
    out.push(fixSegment(segment, unescape));
    pos = end;
  }
  return out.join('');
}

/** End of at most `max` codepoints from `start`, but not past `end`. */
function limitCodepoints(text: string, start: number, end: number, max: number): number {
  if (end - start <= max) return end;
  let i = start;
  for (let n = 0; n < max && i < end; n++) i += (text.codePointAt(i)! > 0xffff ? 2 : 1);
  return Math.min(i, end);
}

/** ftfy.fix_and_explain on one segment: every fixer in order, until nothing changes. */
function fixSegment(text: string, unescape: boolean): string {
  for (;;) {
    const orig = text;
    if (unescape) text = unescapeHtml(text);
    text = fixEncoding(text);
    text = fixC1Controls(text);
    text = text.replace(LIGATURE_RE, (c) => LIGATURES.get(c)!);
    text = text.replace(WIDTH_RE, (c) => WIDTH_MAP.get(c) ?? c);
    text = text.replace(DOUBLE_QUOTE_RE, '"').replace(SINGLE_QUOTE_RE, "'");
    text = fixLineBreaks(text);
    text = text.replace(LONE_SURROGATE_RE, '\ufffd');
    text = text.replace(ANSI_RE, '');
    text = text.replace(CONTROL_RE, '');
    text = text.normalize('NFC');
    if (text === orig) return text;
  }
}

function unescapeHtml(text: string): string {
  return text.replace(HTML_ENTITY_RE, (m) => {
    const known = HTML_ENTITIES.get(m);
    if (known !== undefined) return known;
    if (m.startsWith('&#')) {
      const u = htmlUnescape(m);
      return u.includes(';') ? m : u;
    }
    return m;
  });
}

function fixLineBreaks(text: string): string {
  return text.replace(/\r\n/g, '\n').replace(/[\r\u2028\u2029\u0085]/g, '\n');
}

function fixC1Controls(text: string): string {
  if (!C1_CONTROL_RE.test(text)) return text;
  return text.replace(/[\x80-\x9f]/g, (c) => SLOPPY_1252.decode[c.charCodeAt(0)]);
}

// ---------------------------------------------------------------------------------------------
// Mojibake

function isBad(text: string): boolean {
  return BADNESS_RE.test(text);
}

/** ftfy.fix_encoding: one repair step at a time until the text is stable. */
export function fixEncoding(text: string): string {
  for (;;) {
    const prev = text;
    text = fixEncodingOneStep(text);
    if (text === prev) return text;
  }
}

function fixEncodingOneStep(text: string): string {
  if (text.length === 0 || ASCII_RE.test(text) || !isBad(text)) return text;

  const possible: string[] = [];
  for (const cm of CHARMAP_LIST) {
    if (!cm.possible.test(text)) continue;
    possible.push(cm.name);
    let bytes = encodeCharmap(text, cm);
    if (cm.name !== 'macroman' && searchBytes(ALTERED_UTF8_RE, bytes)) bytes = restoreByteA0(bytes);
    if (cm.name.startsWith('sloppy')) bytes = bytes.replace(LOSSY_UTF8_RE, '\xef\xbf\xbd');
    const variants = bytes.includes('\xed') || bytes.includes('\xc0');
    const fixed = variants ? decodeUtf8Variants(bytes) : decodeUtf8(bytes);
    if (fixed !== null) return fixed;
  }

  UTF8_DETECTOR_RE.lastIndex = 0;
  if (UTF8_DETECTOR_RE.test(text)) {
    const fixed = decodeInconsistentUtf8(text);
    if (fixed !== text) return fixed;
  }

  if (possible.includes('latin-1')) {
    if (possible.includes('windows-1252')) return text; // never true: ftfy lists only the sloppy one
    const fixed = decodeWindows1252(encodeCharmap(text, LATIN_1));
    if (fixed !== null && fixed !== text) return fixed;
  }

  if (C1_CONTROL_RE.test(text)) return fixC1Controls(text);
  return text;
}

function decodeInconsistentUtf8(text: string): string {
  return text.replace(UTF8_DETECTOR_RE, (sub) => (sub.length < text.length && isBad(sub) ? fixEncoding(sub) : sub));
}

function searchBytes(re: RegExp, bytes: string): boolean {
  re.lastIndex = 0;
  const hit = re.test(bytes);
  re.lastIndex = 0;
  return hit;
}

function restoreByteA0(bytes: string): string {
  const a = bytes.replace(A_GRAVE_WORD_RE, '\xc3\xa0 ');
  return a.replace(ALTERED_UTF8_RE, (m) => m.replace(/ /g, '\xa0'));
}

/** Text -> binary string in a single-byte encoding; the caller has checked every char fits. */
function encodeCharmap(text: string, cm: Charmap): string {
  let out = '';
  for (const c of text) out += String.fromCharCode(cm.encode.get(c)!);
  return out;
}

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

/** Strict UTF-8, or null where Python's decoder would raise. */
function decodeUtf8(bytes: string): string | null {
  try {
    return STRICT_UTF8.decode(Buffer.from(bytes, 'latin1'));
  } catch {
    return null;
  }
}

function decodeWindows1252(bytes: string): string | null {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes.charCodeAt(i);
    if (WINDOWS_1252_UNDEFINED.includes(b)) return null;
    out += SLOPPY_1252.decode[b];
  }
  return out;
}

const inRange = (b: number, lo: number, hi: number) => b >= lo && b <= hi;

/**
 * ftfy's "utf-8-variants": UTF-8 that also accepts Java's C0 80 for U+0000 and CESU-8 surrogate
 * pairs (ED A0-AF xx ED B0-BF xx). Anything else invalid fails (null), as in Python.
 */
function decodeUtf8Variants(bytes: string): string | null {
  const n = bytes.length;
  const at = (i: number) => (i < n ? bytes.charCodeAt(i) : -1);
  const isSpecial = (j: number): boolean => {
    const b = at(j);
    if (b === 0xc0) return j + 1 === n || at(j + 1) === 0x80;
    if (b !== 0xed) return false;
    if (j + 1 === n) return true;
    if (!inRange(at(j + 1), 0xa0, 0xbf)) return false;
    return j + 2 === n || inRange(at(j + 2), 0x80, 0xbf);
  };
  let out = '';
  let i = 0;
  while (i < n) {
    let j = i;
    while (j < n && !isSpecial(j)) j++;
    if (j > i) {
      const plain = decodeUtf8(bytes.slice(i, j));
      if (plain === null) return null;
      out += plain;
    }
    if (j === n) break;
    if (at(j) === 0xc0) {
      if (n - j < 2) return null;
      out += '\u0000';
      i = j + 2;
      continue;
    }
    const cesu =
      n - j >= 6 && inRange(at(j + 1), 0xa0, 0xaf) && inRange(at(j + 2), 0x80, 0xbf) && at(j + 3) === 0xed &&
      inRange(at(j + 4), 0xb0, 0xbf) && inRange(at(j + 5), 0x80, 0xbf);
    if (!cesu) return null; // an unpaired or truncated surrogate: Python's decoder raises
    const cp =
      ((at(j + 1) & 0x0f) << 16) + ((at(j + 2) & 0x3f) << 10) + ((at(j + 4) & 0x0f) << 6) + (at(j + 5) & 0x3f) + 0x10000;
    out += String.fromCodePoint(cp);
    i = j + 6;
  }
  return out;
}
