/**
 * HTML character references, decoded the way Python's `html.unescape` does (HTML5 rules: named
 * references with or without ';', longest-prefix match for unknown names, Windows-1252 fix-ups for
 * numeric references 0x80-0x9F, U+FFFD for surrogates and values above U+10FFFF, nothing for the
 * codepoints HTML forbids). OpenAI's CLIP tokenizer applies it twice after ftfy.
 */
import { HTML5_ENTITIES } from './ftfy_tables';

/** name (with or without ';') -> characters; a Map, so names like `constructor` never hit Object's prototype. */
export const HTML5: ReadonlyMap<string, string> = new Map(Object.entries(HTML5_ENTITIES));

const CHARREF_RE = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/** Numeric references HTML replaces (Windows-1252 meanings for 0x80-0x9F, U+FFFD for 0). */
const INVALID_CHARREFS: ReadonlyMap<number, string> = new Map([
  [0x00, '\ufffd'], [0x0d, '\r'], [0x80, '\u20ac'], [0x81, '\x81'], [0x82, '\u201a'], [0x83, '\u0192'],
  [0x84, '\u201e'], [0x85, '\u2026'], [0x86, '\u2020'], [0x87, '\u2021'], [0x88, '\u02c6'], [0x89, '\u2030'],
  [0x8a, '\u0160'], [0x8b, '\u2039'], [0x8c, '\u0152'], [0x8d, '\x8d'], [0x8e, '\u017d'], [0x8f, '\x8f'],
  [0x90, '\x90'], [0x91, '\u2018'], [0x92, '\u2019'], [0x93, '\u201c'], [0x94, '\u201d'], [0x95, '\u2022'],
  [0x96, '\u2013'], [0x97, '\u2014'], [0x98, '\u02dc'], [0x99, '\u2122'], [0x9a, '\u0161'], [0x9b, '\u203a'],
  [0x9c, '\u0153'], [0x9d, '\x9d'], [0x9e, '\u017e'], [0x9f, '\u0178'],
]);

/** Codepoints a numeric reference may not produce: they decode to nothing. */
function isInvalidCodepoint(cp: number): boolean {
  return (
    (cp >= 0x1 && cp <= 0x8) || cp === 0xb || (cp >= 0xe && cp <= 0x1f) || (cp >= 0x7f && cp <= 0x9f) ||
    (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe
  );
}

function numericRef(digits: string, radix: number): string {
  const trimmed = digits.replace(/^0+/, '');
  // Anything longer than 8 digits is far above U+10FFFF in either radix.
  const cp = trimmed.length > 8 ? Infinity : trimmed === '' ? 0 : parseInt(trimmed, radix);
  const fixed = INVALID_CHARREFS.get(cp);
  if (fixed !== undefined) return fixed;
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\ufffd';
  if (isInvalidCodepoint(cp)) return '';
  return String.fromCodePoint(cp);
}

function replaceCharref(match: string, s: string): string {
  if (s[0] === '#') {
    const hex = s[1] === 'x' || s[1] === 'X';
    return numericRef(s.slice(hex ? 2 : 1).replace(/;$/, ''), hex ? 16 : 10);
  }
  const whole = HTML5.get(s);
  if (whole !== undefined) return whole;
  // Longest known name that prefixes s (names are ASCII, so UTF-16 and codepoint offsets agree).
  for (let x = s.length - 1; x > 1; x--) {
    const v = HTML5.get(s.slice(0, x));
    if (v !== undefined) return v + s.slice(x);
  }
  return match;
}

export function htmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF_RE, replaceCharref);
}
