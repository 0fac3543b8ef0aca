/**
 * Reads a serialized SentencePiece `ModelProto` (`*.model`): the pieces and the trainer and
 * normalizer fields that encoding uses (field numbers from sentencepiece_model.proto).
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
export const MODEL_TYPES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };
export const UNIGRAM = 1;

export interface ModelPiece {
  bytes: Uint8Array; // the piece, valid UTF-8
  score: number; // float32
  type: PieceType;
}

/** The fields of a `ModelProto` that encoding uses. */
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

/** A piece as a JSON string, for error messages. */
export const quotePiece = (p: ModelPiece) => JSON.stringify(UTF8.decode(p.bytes));

/**
 * SentencePiece's IsValidDecodeUTF8: the length of the well-formed UTF-8 character at `pos`
 * (no overlong forms, no surrogates, at most U+10FFFF), or 0.
 */
export function validCharLen(s: Uint8Array, pos: number): number {
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
