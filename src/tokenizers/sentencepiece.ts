/**
 * SentencePiece unigram encoding, as `SentencePieceProcessor.encode(text, out_type=str)` does it
 * (google/sentencepiece 0.1.97: `unigram_model.cc` `EncodeOptimized`, `sentencepiece_processor.cc`
 * `PopulateSentencePieceText`): normalise the text, find the best segmentation by Viterbi over the
 * piece trie, then merge runs of unknown pieces into one piece (id `<unk>`).
 *
 *   const spm = SentencePieceUnigram.fromModelProto(readFileSync('sentencepiece.bpe.model'));
 *   spm.encode('a photo of a cat')  // { pieces: ['▁a', '▁photo', ...], ids: [...] }
 */
import { ClipkitError } from '../errors';
import { MODEL_TYPES, PieceType, SentencePieceModel, UNIGRAM, parseModelProto, quotePiece } from './sentencepiece_model';
import { Normalizer } from './sentencepiece_normalizer';
import { PieceTrie } from './sentencepiece_trie';

/** SentencePiece's kUnkPenalty: an unknown character scores min_score - 10. */
const UNK_PENALTY = 10;
/** The float FLT_MIN that SentencePiece starts max_score from (only user-defined pieces use it). */
const FLT_MIN = 1.1754943508222875e-38;
const UTF8 = new TextDecoder('utf-8');
const UTF8_ENCODER = new TextEncoder();

/** UTF-8 length from the lead byte, as SentencePiece's OneCharLen (no validation). */
const oneCharLen = (lead: number) => (lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4);

export interface SpmEncoding {
  pieces: string[];
  ids: number[]; // SentencePiece ids; a merged unknown run has the <unk> id
}

/**
 * A unigram model read from a `.model` file. Text is encoded to UTF-8 first, so a lone surrogate
 * becomes U+FFFD (as Node writes it; the nmt_nfkc charsmap then maps U+FFFD to a space). Python's
 * sentencepiece refuses such a string. Only unigram models without byte fallback are supported
 * (XLM-R's, AltCLIP's); BPE, WORD and CHAR models and `byte_fallback` are refused with E_UNSUPPORTED.
 */
export class SentencePieceUnigram {
  /** Number of pieces (`len(SentencePieceProcessor)`). */
  readonly size: number;
  readonly unkId: number;
  private readonly normalizer: Normalizer;
  private readonly trie: PieceTrie;
  private readonly scores: Float32Array;
  private readonly types: Uint8Array;
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
      if (p.type === PieceType.Byte) throw new ClipkitError('E_FORMAT', `Expected no BYTE pieces in ${source} (byte_fallback is false) but pieces[${i}] ${quotePiece(p)} is one`);
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
    const hasUserDefined = pieces.some((p) => p.type === PieceType.UserDefined);
    this.trie = PieceTrie.build(pieces, this.types, source);
    this.normalizer = new Normalizer(model, source, hasUserDefined ? (s, pos) => this.longestUserDefined(s, pos) : null);
  }

  /** From the bytes of a `.model` file; `source` names it in errors. */
  static fromModelProto(bytes: Uint8Array, source = 'the SentencePiece model'): SentencePieceUnigram {
    return new SentencePieceUnigram(parseModelProto(bytes, source), source);
  }

  /** The pieces and ids of one text; runs of unknown pieces are merged into one. */
  encode(text: string): SpmEncoding {
    const normalized = this.normalizer.normalize(UTF8_ENCODER.encode(text));
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
    return UTF8.decode(this.normalizer.normalize(UTF8_ENCODER.encode(text)));
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
   * starts where the previous one ends). Every NORMAL / USER_DEFINED piece that matches at a
   * character boundary is a candidate; a character no one-character piece covers is an unknown node
   * scored `min_score - 10`. Scores are float32 as in SentencePiece: a piece's score plus the path
   * score is compared in double and stored as float; the unknown candidate is summed in float. On
   * an exact tie the first candidate found (the earliest start) is kept.
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
