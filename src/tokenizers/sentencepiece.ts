/**
 * SentencePiece unigram encoding, as `SentencePieceProcessor.encode(text, out_type=str)` does it
 * (google/sentencepiece 0.1.97: `normalizer.cc`, `unigram_model.cc` `EncodeOptimized`,
 * `sentencepiece_processor.cc` `PopulateSentencePieceText`), with everything read from the
 * serialized `ModelProto` (`*.model`):
 *
 *   1. Normalise the UTF-8 bytes with `normalizer_spec.precompiled_charsmap`: at each position the
 *      longest key of its Darts double-array trie is replaced (often by nothing), otherwise the
 *      character is kept. User-defined pieces are never normalised. Leading, trailing and repeated
 *      spaces are dropped, one space is prepended (`add_dummy_prefix`), spaces become `▁`.
 *   2. Viterbi over the normalised bytes: every NORMAL / USER_DEFINED piece that matches at a
 *      character boundary is a candidate; a character no one-character piece covers is an unknown
 *      node scored `min_score - 10`. Scores add up in float32 as SentencePiece's do, and on an
 *      exact tie the first candidate found (the earliest start) is kept.
 *   3. Runs of unknown pieces are merged into one piece (id `<unk>`).
 *
 *   const spm = SentencePieceUnigram.fromModelProto(readFileSync('sentencepiece.bpe.model'));
 *   spm.encode('a photo of a cat')  // { pieces: ['▁a', '▁photo', ...], ids: [...] }
 *
 * Text is encoded to UTF-8 first, so a lone surrogate becomes U+FFFD (as Node writes it; the
 * nmt_nfkc charsmap then maps U+FFFD to a space). Python's sentencepiece refuses such a string.
 * Only unigram models without byte fallback are supported (XLM-R's, AltCLIP's); BPE, WORD and
 * CHAR models and `byte_fallback` are refused with E_UNSUPPORTED.
 */
import { Reader } from 'protobufjs/minimal';
import { ClipkitError } from '../errors';

/** `ModelProto.SentencePiece.Type`. */
export const enum PieceType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

/** `TrainerSpec.ModelType` names, by value. */
const MODEL_TYPES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };
const UNIGRAM = 1;

/** SentencePiece's kUnkPenalty: an unknown character scores min_score - 10. */
const UNK_PENALTY = 10;
/** The float FLT_MIN that SentencePiece starts max_score from (only user-defined pieces use it). */
const FLT_MIN = 1.1754943508222875e-38;
const SPACE = 0x20;
const SPACE_SYMBOL = [0xe2, 0x96, 0x81]; // U+2581 '▁'
const REPLACEMENT_CHAR = new Uint8Array([0xef, 0xbf, 0xbd]); // U+FFFD

export interface ModelPiece {
  bytes: Uint8Array; // the piece, valid UTF-8
  score: number; // float32
  type: PieceType;
}

/** The fields of a `ModelProto` that encoding uses (field numbers from sentencepiece_model.proto). */
export interface SentencePieceModel {
  pieces: ModelPiece[];
  modelType: number; // TrainerSpec.model_type (3)
  treatWhitespaceAsSuffix: boolean; // TrainerSpec.treat_whitespace_as_suffix (24)
  byteFallback: boolean; // TrainerSpec.byte_fallback (35)
  precompiledCharsmap: Uint8Array; // NormalizerSpec.precompiled_charsmap (2)
  addDummyPrefix: boolean; // NormalizerSpec.add_dummy_prefix (3)
  removeExtraWhitespaces: boolean; // NormalizerSpec.remove_extra_whitespaces (4)
  escapeWhitespaces: boolean; // NormalizerSpec.escape_whitespaces (5)
}

const WIRE_VARINT = 0, WIRE_LEN = 2, WIRE_FIXED32 = 5;
const UTF8 = new TextDecoder('utf-8');
const UTF8_ENCODER = new TextEncoder();

/**
 * Decodes a serialized ModelProto. Unknown fields are skipped, as protobuf does; a truncated or
 * malformed message is E_FORMAT naming `source`.
 */
export function parseModelProto(bytes: Uint8Array, source: string): SentencePieceModel {
  const model: SentencePieceModel = {
    pieces: [],
    modelType: UNIGRAM,
    treatWhitespaceAsSuffix: false,
    byteFallback: false,
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
  };
  const r = Reader.create(bytes);
  try {
    readFields(r, r.len, (field, wire) => {
      if (wire !== WIRE_LEN) return false;
      if (field === 1) model.pieces.push(readPiece(r, model.pieces.length, source));
      else if (field === 2) readTrainerSpec(r, model);
      else if (field === 3) readNormalizerSpec(r, model);
      else return false;
      return true;
    });
  } catch (e) {
    if (e instanceof ClipkitError) throw e;
    throw new ClipkitError('E_FORMAT', `Expected a SentencePiece ModelProto in ${source} but it is truncated or corrupt (${(e as Error).message})`);
  }
  return model;
}

/** Calls `onField(field, wireType)` for each field up to `end`; a field it declines is skipped. */
function readFields(r: Reader, end: number, onField: (field: number, wire: number) => boolean): void {
  while (r.pos < end) {
    const tag = r.uint32();
    const field = tag >>> 3, wire = tag & 7;
    if (!onField(field, wire)) r.skipType(wire, 0, field);
  }
  if (r.pos !== end) throw new Error(`a field runs past its message (offset ${r.pos}, message end ${end})`);
}

function subMessageEnd(r: Reader): number {
  const length = r.uint32();
  const end = r.pos + length;
  if (end > r.len) throw new Error(`a message of ${length} bytes at offset ${r.pos} runs past the end (${r.len} bytes)`);
  return end;
}

function readPiece(r: Reader, index: number, source: string): ModelPiece {
  let bytes: Uint8Array = new Uint8Array(0), score = 0, type: number = PieceType.Normal;
  readFields(r, subMessageEnd(r), (field, wire) => {
    if (field === 1 && wire === WIRE_LEN) bytes = r.bytes();
    else if (field === 2 && wire === WIRE_FIXED32) score = r.float();
    else if (field === 3 && wire === WIRE_VARINT) type = r.int32();
    else return false;
    return true;
  });
  if (!(type >= PieceType.Normal && type <= PieceType.Byte))
    throw new ClipkitError('E_FORMAT', `Expected a piece type 1..6 for pieces[${index}] in ${source} but received ${type}`);
  for (let i = 0, len; i < bytes.length; i += len)
    if (!(len = validCharLen(bytes, i))) throw new ClipkitError('E_FORMAT', `Expected UTF-8 text for pieces[${index}] in ${source} but byte ${i} is not valid UTF-8`);
  return { bytes, score, type };
}

function readTrainerSpec(r: Reader, model: SentencePieceModel): void {
  readFields(r, subMessageEnd(r), (field, wire) => {
    if (wire !== WIRE_VARINT) return false;
    if (field === 3) model.modelType = r.int32();
    else if (field === 24) model.treatWhitespaceAsSuffix = r.bool();
    else if (field === 35) model.byteFallback = r.bool();
    else return false;
    return true;
  });
}

function readNormalizerSpec(r: Reader, model: SentencePieceModel): void {
  readFields(r, subMessageEnd(r), (field, wire) => {
    if (field === 2 && wire === WIRE_LEN) model.precompiledCharsmap = r.bytes();
    else if (field === 3 && wire === WIRE_VARINT) model.addDummyPrefix = r.bool();
    else if (field === 4 && wire === WIRE_VARINT) model.removeExtraWhitespaces = r.bool();
    else if (field === 5 && wire === WIRE_VARINT) model.escapeWhitespaces = r.bool();
    else return false;
    return true;
  });
}

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

/**
 * A byte trie over the pieces, children of a node stored contiguously and sorted by byte. Each
 * node holds the id of the NORMAL / USER_DEFINED / UNUSED piece spelled by its path (SentencePiece's
 * `pieces_`) and of the CONTROL / UNKNOWN / BYTE piece (`reserved_id_map_`), or -1.
 */
class PieceTrie {
  private constructor(
    private readonly label: Uint8Array, // node -> byte on the edge into it
    private readonly firstChild: Int32Array,
    private readonly childCount: Uint16Array,
    readonly normalId: Int32Array,
    readonly reservedId: Int32Array,
  ) {}

  /**
   * Breadth-first, so that each node's children get consecutive numbers. Node k spans
   * order[lo[k], hi[k]), the pieces sharing its first depth[k] bytes; partitioning that span by
   * the next byte (a radix sort) gives the children in byte order. Throws E_FORMAT naming the
   * piece when two pieces of the same kind share a string.
   */
  static build(pieces: readonly ModelPiece[], types: Uint8Array, source: string): PieceTrie {
    // All pieces in one buffer: piece i is text[start[i], start[i + 1]).
    const start = new Int32Array(pieces.length + 1);
    pieces.forEach((p, i) => (start[i + 1] = start[i] + p.bytes.length));
    const text = new Uint8Array(start[pieces.length]);
    pieces.forEach((p, i) => text.set(p.bytes, start[i]));
    const maxNodes = text.length + 1; // at most one node per byte
    const label = new Uint8Array(maxNodes), firstChild = new Int32Array(maxNodes), childCount = new Uint16Array(maxNodes);
    const normalId = new Int32Array(maxNodes).fill(-1), reservedId = new Int32Array(maxNodes).fill(-1);
    const lo = new Int32Array(maxNodes), hi = new Int32Array(maxNodes), depth = new Int32Array(maxNodes);
    const order = Int32Array.from(pieces, (_, i) => i), scratch = new Int32Array(pieces.length);
    const next = new Int32Array(pieces.length); // byte at the current depth, -1 past the end
    const count = new Int32Array(257);
    hi[0] = pieces.length;
    let nodes = 1;
    for (let node = 0; node < nodes; node++) {
      const d = depth[node], end = hi[node];
      for (let i = lo[node]; i < end; i++) {
        const id = order[i], at = start[id] + d;
        next[id] = at < start[id + 1] ? text[at] : -1;
      }
      if (end - lo[node] > SMALL_SPAN) countingSort(order, lo[node], end, next, count, scratch);
      else insertionSort(order, lo[node], end, next);
      let i = lo[node];
      for (; i < end && next[order[i]] === -1; i++) {
        const id = order[i];
        const ids = isReserved(types[id]) ? reservedId : normalId;
        if (ids[node] !== -1) throw new ClipkitError('E_FORMAT', `Expected unique pieces in ${source} but ${quote(pieces[id])} is defined twice (pieces[${ids[node]}] and pieces[${id}])`);
        ids[node] = id;
      }
      firstChild[node] = nodes;
      while (i < end) {
        const b = next[order[i]];
        const start = i;
        while (i < end && next[order[i]] === b) i++;
        label[nodes] = b;
        lo[nodes] = start;
        hi[nodes] = i;
        depth[nodes] = d + 1;
        nodes++;
        childCount[node]++;
      }
    }
    return new PieceTrie(label.slice(0, nodes), firstChild.slice(0, nodes), childCount.slice(0, nodes), normalId.slice(0, nodes), reservedId.slice(0, nodes));
  }

  /** The child of `node` along byte `b`, or -1. */
  child(node: number, b: number): number {
    let lo = this.firstChild[node], hi = lo + this.childCount[node];
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const l = this.label[mid];
      if (l === b) return mid;
      if (l < b) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  /** The node spelled by `bytes`, or -1. */
  find(bytes: Uint8Array): number {
    let node = 0;
    for (let i = 0; i < bytes.length && node >= 0; i++) node = this.child(node, bytes[i]);
    return node;
  }
}

/** Spans up to this long are sorted by insertion, longer ones by counting. */
const SMALL_SPAN = 32;

/** Sorts order[lo, hi) by key[order[i]] (-1..255), stably. */
function countingSort(order: Int32Array, lo: number, hi: number, key: Int32Array, count: Int32Array, scratch: Int32Array): void {
  count.fill(0);
  for (let i = lo; i < hi; i++) count[key[order[i]] + 1]++;
  for (let k = 0, at = lo; k < 257; k++) {
    const n = count[k];
    count[k] = at;
    at += n;
  }
  for (let i = lo; i < hi; i++) scratch[count[key[order[i]] + 1]++] = order[i];
  order.set(scratch.subarray(lo, hi), lo);
}

function insertionSort(order: Int32Array, lo: number, hi: number, key: Int32Array): void {
  for (let i = lo + 1; i < hi; i++) {
    const v = order[i];
    let j = i - 1;
    for (; j >= lo && key[order[j]] > key[v]; j--) order[j + 1] = order[j];
    order[j + 1] = v;
  }
}

const quote = (p: ModelPiece) => JSON.stringify(UTF8.decode(p.bytes));
const isReserved = (t: PieceType) => t === PieceType.Control || t === PieceType.Unknown || t === PieceType.Byte;

/** UTF-8 length from the lead byte, as SentencePiece's OneCharLen (no validation). */
const oneCharLen = (lead: number) => (lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4);

/**
 * SentencePiece's IsValidDecodeUTF8: the length of the well-formed UTF-8 character at `pos`
 * (no overlong forms, no surrogates, at most U+10FFFF), or 0.
 */
function validCharLen(s: Uint8Array, pos: number): number {
  const b0 = s[pos];
  if (b0 < 0x80) return 1;
  const len = (b0 & 0xe0) === 0xc0 ? 2 : (b0 & 0xf0) === 0xe0 ? 3 : (b0 & 0xf8) === 0xf0 ? 4 : 0;
  if (len === 0 || pos + len > s.length) return 0;
  let cp = b0 & (0x7f >> len);
  for (let k = 1; k < len; k++) {
    if ((s[pos + k] & 0xc0) !== 0x80) return 0;
    cp = (cp << 6) | (s[pos + k] & 0x3f);
  }
  const min = len === 2 ? 0x80 : len === 3 ? 0x800 : 0x10000;
  return cp >= min && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff) ? len : 0;
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

type NormalizerOptions = Pick<SentencePieceModel, 'removeExtraWhitespaces' | 'escapeWhitespaces' | 'addDummyPrefix' | 'treatWhitespaceAsSuffix'>;

export interface SpmEncoding {
  pieces: string[];
  ids: number[]; // SentencePiece ids; a merged unknown run has the <unk> id
}

export class SentencePieceUnigram {
  /** Number of pieces (`len(SentencePieceProcessor)`). */
  readonly size: number;
  readonly unkId: number;
  private readonly options: NormalizerOptions;
  private readonly charsmap: CharsMap | null;
  private readonly trie: PieceTrie;
  private readonly scores: Float32Array;
  private readonly types: Uint8Array;
  private readonly hasUserDefined: boolean;
  private readonly minScore: number;
  private readonly maxScore: number;

  private constructor(model: SentencePieceModel, source: string) {
    if (model.modelType !== UNIGRAM)
      throw new ClipkitError('E_UNSUPPORTED', `Unsupported SentencePiece model_type ${MODEL_TYPES[model.modelType] ?? model.modelType} in ${source}: only UNIGRAM models are supported`);
    if (model.byteFallback)
      throw new ClipkitError('E_UNSUPPORTED', `Unsupported SentencePiece byte_fallback in ${source}: only models without byte fallback are supported`);
    const pieces = model.pieces;
    if (pieces.length === 0) throw new ClipkitError('E_FORMAT', `Expected pieces in the SentencePiece model ${source} but it has none`);
    this.size = pieces.length;
    this.scores = Float32Array.from(pieces, (p) => p.score);
    this.types = Uint8Array.from(pieces, (p) => p.type);
    let unkId = -1, minScore = 3.4028234663852886e38, maxScore = FLT_MIN;
    pieces.forEach((p, i) => {
      if (p.bytes.length === 0) throw new ClipkitError('E_FORMAT', `Expected a non-empty piece for pieces[${i}] in ${source} but it is empty`);
      if (p.type === PieceType.Byte) throw new ClipkitError('E_FORMAT', `Expected no BYTE pieces in ${source} (byte_fallback is false) but pieces[${i}] ${quote(p)} is one`);
      if (p.type === PieceType.Unknown) {
        if (unkId >= 0) throw new ClipkitError('E_FORMAT', `Expected one UNKNOWN piece in ${source} but pieces[${unkId}] and pieces[${i}] both are`);
        unkId = i;
      }
      if (p.type === PieceType.Normal) {
        minScore = Math.min(minScore, p.score);
        maxScore = Math.max(maxScore, p.score);
      }
    });
    if (unkId < 0) throw new ClipkitError('E_FORMAT', `Expected an UNKNOWN (<unk>) piece in ${source} but there is none`);
    this.unkId = unkId;
    this.minScore = minScore;
    this.maxScore = maxScore;
    this.hasUserDefined = pieces.some((p) => p.type === PieceType.UserDefined);
    this.trie = PieceTrie.build(pieces, this.types, source);
    this.charsmap = model.precompiledCharsmap.length ? CharsMap.parse(model.precompiledCharsmap, source) : null;
    const { removeExtraWhitespaces, escapeWhitespaces, addDummyPrefix, treatWhitespaceAsSuffix } = model;
    this.options = { removeExtraWhitespaces, escapeWhitespaces, addDummyPrefix, treatWhitespaceAsSuffix };
  }

  /** From the bytes of a `.model` file; `source` names it in errors. */
  static fromModelProto(bytes: Uint8Array, source = 'the SentencePiece model'): SentencePieceUnigram {
    return new SentencePieceUnigram(parseModelProto(bytes, source), source);
  }

  /** The pieces and ids of one text. */
  encode(text: string): SpmEncoding {
    const normalized = this.normalizeBytes(UTF8_ENCODER.encode(text));
    const path = this.viterbi(normalized);
    const pieces: string[] = [], ids: number[] = [];
    for (let k = 0, start = 0; k < path.ends.length; k++) {
      const id = path.ids[k];
      if (id === this.unkId) while (k + 1 < path.ends.length && path.ids[k + 1] === this.unkId) k++; // merge the unknown run
      pieces.push(UTF8.decode(normalized.subarray(start, path.ends[k])));
      ids.push(id);
      start = path.ends[k];
    }
    return { pieces, ids };
  }

  /** `PieceToId`: reserved pieces first, then the others; an unknown string gives the <unk> id. */
  pieceToId(piece: string): number {
    const node = this.trie.find(UTF8_ENCODER.encode(piece));
    if (node < 0) return this.unkId;
    const reserved = this.trie.reservedId[node];
    if (reserved >= 0) return reserved;
    const id = this.trie.normalId[node];
    return id >= 0 ? id : this.unkId;
  }

  /** The normalised text the lattice is built on (`▁` for spaces). */
  normalize(text: string): string {
    return UTF8.decode(this.normalizeBytes(UTF8_ENCODER.encode(text)));
  }

  /** SentencePiece's Normalizer::Normalize over UTF-8 bytes. */
  private normalizeBytes(input: Uint8Array): Uint8Array {
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
    if (this.hasUserDefined) {
      const len = this.longestUserDefined(input, pos);
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

  /** Byte length of the longest USER_DEFINED piece starting at `pos`, or 0 (SentencePiece's PrefixMatcher). */
  private longestUserDefined(s: Uint8Array, pos: number): number {
    let best = 0;
    for (let i = pos, node = 0; i < s.length; i++) {
      node = this.trie.child(node, s[i]);
      if (node < 0) break;
      const id = this.trie.normalId[node];
      if (id >= 0 && this.types[id] === PieceType.UserDefined) best = i - pos + 1;
    }
    return best;
  }

  /**
   * `EncodeOptimized`: the best path over byte positions, as each piece's end and id (a piece
   * starts where the previous one ends). Scores are float32 as in SentencePiece: a piece's score
   * plus the path score is compared in double and stored as float; the unknown candidate is summed
   * in float.
   */
  private viterbi(s: Uint8Array): { ends: number[]; ids: number[] } {
    const size = s.length;
    const bestScore = new Float32Array(size + 1);
    const startsAt = new Int32Array(size + 1).fill(-1);
    const idAt = new Int32Array(size + 1);
    const unkScore = Math.fround(this.minScore - UNK_PENALTY);
    const trie = this.trie, types = this.types, scores = this.scores;
    for (let start = 0; start < size; ) {
      const scoreHere = bestScore[start];
      const charLen = Math.min(oneCharLen(s[start]), size - start);
      let hasSingleChar = false;
      for (let i = start, node = 0; i < size; i++) {
        node = trie.child(node, s[i]);
        if (node < 0) break;
        const id = trie.normalId[node];
        if (id < 0 || types[id] === PieceType.Unused) continue;
        const end = i + 1, length = end - start;
        const score = types[id] === PieceType.UserDefined ? Math.fround(length * this.maxScore) - 0.1 : scores[id];
        const candidate = score + scoreHere;
        if (startsAt[end] === -1 || candidate > bestScore[end]) {
          bestScore[end] = candidate;
          startsAt[end] = start;
          idAt[end] = id;
        }
        if (length === charLen) hasSingleChar = true;
      }
      if (!hasSingleChar) {
        const end = start + charLen;
        const candidate = Math.fround(unkScore + scoreHere);
        if (startsAt[end] === -1 || candidate > bestScore[end]) {
          bestScore[end] = candidate;
          startsAt[end] = start;
          idAt[end] = this.unkId;
        }
      }
      start += charLen;
    }
    const ends: number[] = [];
    for (let end = size; end > 0; end = startsAt[end]) ends.push(end);
    ends.reverse();
    return { ends, ids: ends.map((end) => idAt[end]) };
  }
}
