/**
 * SentencePiece's normalizer (`normalizer.cc`): the `precompiled_charsmap` rewrite and the
 * whitespace rules, over UTF-8 bytes.
 */
import { ClipkitError } from '../errors';
import { SentencePieceModel, validCharLen } from './sentencepiece_model';

const SPACE = 0x20;
const SPACE_SYMBOL = [0xe2, 0x96, 0x81]; // U+2581 '▁'
const REPLACEMENT_CHAR = new Uint8Array([0xef, 0xbf, 0xbd]); // U+FFFD

/**
 * `precompiled_charsmap`: u32 LE trie size, a Darts-clone double array of that many bytes (u32 LE
 * units), then the NUL-terminated replacement strings that the trie's values index.
 */
class CharsMap {
  private constructor(
    private readonly units: Uint32Array,
    private readonly strings: Uint8Array,
  ) {}

  static parse(blob: Uint8Array, source: string): CharsMap {
    const broken = (what: string) => new ClipkitError('E_FORMAT', `Expected a valid precompiled_charsmap in ${source} but ${what}`);
    if (blob.length <= 4) throw broken(`it has only ${blob.length} bytes`);
    const trieBytes = readU32(blob, 0);
    if (trieBytes > blob.length - 4) throw broken(`its trie size ${trieBytes} exceeds the ${blob.length - 4} bytes after the size field`);
    const units = new Uint32Array(trieBytes >>> 2);
    if (units.length === 0) throw broken('its trie is empty');
    for (let i = 0; i < units.length; i++) units[i] = readU32(blob, 4 + 4 * i);
    const map = new CharsMap(units, blob.subarray(4 + trieBytes));
    const bad = map.firstBrokenNode();
    if (bad) throw broken(bad);
    return map;
  }

  /**
   * Darts-clone `commonPrefixSearch` keeping the longest match: the number of bytes matched at
   * `pos` (0 if none) and, in `out.start/end`, where the replacement lies in `strings`.
   */
  longestMatch(text: Uint8Array, pos: number, out: Replacement): number {
    const units = this.units;
    let node = unitOffset(units[0]);
    let matched = 0;
    for (let i = pos; i < text.length; i++) {
      const b = text[i];
      node ^= b;
      const unit = units[node];
      if (unitLabel(unit) !== b) break;
      node ^= unitOffset(unit);
      if (unitHasLeaf(unit)) {
        matched = i - pos + 1;
        out.start = unitValue(units[node]);
      }
    }
    if (matched) {
      out.src = this.strings;
      out.end = this.strings.indexOf(0, out.start);
    }
    return matched;
  }

  /**
   * Walks every node a lookup can reach and checks that each child probe and each value stays
   * inside the blob, so that `longestMatch` can't read outside it. Returns what is wrong, or ''.
   */
  private firstBrokenNode(): string {
    const units = this.units, n = units.length;
    const lastNul = this.strings.lastIndexOf(0);
    const seen = new Uint8Array(n);
    const stack = [unitOffset(units[0])];
    while (stack.length) {
      const base = stack.pop()!;
      if ((base | 0xff) >= n) return `a node's children at unit ${base} lie outside its ${n} units`;
      if (seen[base]) continue;
      seen[base] = 1;
      for (let b = 0; b < 256; b++) {
        const unit = units[base ^ b];
        if (unitLabel(unit) !== b) continue;
        const child = base ^ b ^ unitOffset(unit);
        if ((child | 0xff) >= n) return `a node's children at unit ${child} lie outside its ${n} units`;
        if (unitHasLeaf(unit) && unitValue(units[child]) > lastNul)
          return `a replacement offset ${unitValue(units[child])} lies outside its ${this.strings.length} bytes of NUL-terminated strings`;
        stack.push(child);
      }
    }
    return '';
  }
}

const readU32 = (b: Uint8Array, at: number) => (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;

// Darts-clone DoubleArrayUnit fields.
const unitHasLeaf = (u: number) => ((u >>> 8) & 1) === 1;
const unitValue = (u: number) => u & 0x7fffffff;
const unitLabel = (u: number) => (u & 0x800000ff) >>> 0;
const unitOffset = (u: number) => ((u >>> 10) << ((u & 0x200) >>> 6)) >>> 0;

/** Where the normalised form of one prefix lies: src[start, end). */
interface Replacement {
  src: Uint8Array;
  start: number;
  end: number;
}

/** A growable byte buffer. */
class Bytes {
  buf = new Uint8Array(64);
  length = 0;
  push(b: number): void {
    if (this.length === this.buf.length) this.grow();
    this.buf[this.length++] = b;
  }
  append(bytes: readonly number[]): void {
    for (const b of bytes) this.push(b);
  }
  endsWith(tail: readonly number[]): boolean {
    if (this.length < tail.length) return false;
    for (let i = 0; i < tail.length; i++) if (this.buf[this.length - tail.length + i] !== tail[i]) return false;
    return true;
  }
  private grow(): void {
    const next = new Uint8Array(2 * this.buf.length);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }
}

export type NormalizerOptions = Pick<SentencePieceModel, 'removeExtraWhitespaces' | 'escapeWhitespaces' | 'addDummyPrefix' | 'treatWhitespaceAsSuffix'>;

/** Byte length of the longest user-defined piece at `pos`, or 0 (SentencePiece's PrefixMatcher). */
export type UserDefinedMatcher = (s: Uint8Array, pos: number) => number;

/**
 * At each position the longest key of the charsmap's trie is replaced (often by nothing), otherwise
 * the character is kept; user-defined pieces are never normalised. With the model's defaults,
 * leading, trailing and repeated spaces are dropped, one space is prepended (`add_dummy_prefix`)
 * and spaces become `▁`.
 */
export class Normalizer {
  private readonly options: NormalizerOptions;
  private readonly charsmap: CharsMap | null;

  /** `userDefined` is null when the model has no user-defined pieces. */
  constructor(
    model: NormalizerOptions & Pick<SentencePieceModel, 'precompiledCharsmap'>,
    source: string,
    private readonly userDefined: UserDefinedMatcher | null,
  ) {
    this.charsmap = model.precompiledCharsmap.length ? CharsMap.parse(model.precompiledCharsmap, source) : null;
    const { removeExtraWhitespaces, escapeWhitespaces, addDummyPrefix, treatWhitespaceAsSuffix } = model;
    this.options = { removeExtraWhitespaces, escapeWhitespaces, addDummyPrefix, treatWhitespaceAsSuffix };
  }

  /** SentencePiece's Normalizer::Normalize over UTF-8 bytes. */
  normalize(input: Uint8Array): Uint8Array {
    const { removeExtraWhitespaces, escapeWhitespaces, addDummyPrefix, treatWhitespaceAsSuffix } = this.options;
    const rep: Replacement = { src: input, start: 0, end: 0 };
    let pos = 0;
    if (removeExtraWhitespaces) {
      // Leading input whose normalised form is exactly one space is skipped.
      while (pos < input.length) {
        const consumed = this.normalizePrefix(input, pos, rep);
        if (rep.end - rep.start !== 1 || rep.src[rep.start] !== SPACE) break;
        pos += consumed;
      }
    }
    if (pos === input.length) return new Uint8Array(0);
    const out = new Bytes();
    const space = escapeWhitespaces ? SPACE_SYMBOL : [SPACE];
    if (addDummyPrefix && !treatWhitespaceAsSuffix) out.append(space);
    let prevIsSpace = removeExtraWhitespaces;
    while (pos < input.length) {
      pos += this.normalizePrefix(input, pos, rep);
      let i = rep.start;
      if (prevIsSpace) while (i < rep.end && rep.src[i] === SPACE) i++;
      if (i < rep.end) {
        for (; i < rep.end; i++) {
          const b = rep.src[i];
          if (b === SPACE) out.append(space);
          else out.push(b);
        }
        prevIsSpace = rep.src[rep.end - 1] === SPACE;
      }
      if (!removeExtraWhitespaces) prevIsSpace = false;
    }
    if (removeExtraWhitespaces) while (out.endsWith(space)) out.length -= space.length;
    if (addDummyPrefix && treatWhitespaceAsSuffix) out.append(space);
    return out.buf.slice(0, out.length);
  }

  /**
   * Normalizer::NormalizePrefix: how many input bytes at `pos` the next rule consumes, with their
   * normalised form in `rep`. User-defined pieces pass through unchanged; then the longest charsmap
   * key; else one character as is (a malformed byte becomes U+FFFD).
   */
  private normalizePrefix(input: Uint8Array, pos: number, rep: Replacement): number {
    if (this.userDefined) {
      const len = this.userDefined(input, pos);
      if (len) return this.keep(input, pos, len, rep);
    }
    const matched = this.charsmap ? this.charsmap.longestMatch(input, pos, rep) : 0;
    if (matched) return matched;
    const len = validCharLen(input, pos);
    if (len) return this.keep(input, pos, len, rep);
    rep.src = REPLACEMENT_CHAR;
    rep.start = 0;
    rep.end = 3;
    return 1;
  }

  private keep(input: Uint8Array, pos: number, len: number, rep: Replacement): number {
    rep.src = input;
    rep.start = pos;
    rep.end = pos + len;
    return len;
  }
}
