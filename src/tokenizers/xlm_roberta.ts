/**
 * Hugging Face's slow `XLMRobertaTokenizer` as AltCLIP's processor calls it
 * (`tokenizer(texts, padding='max_length', truncation=True, max_length=77)`): SentencePiece
 * unigram pieces (./sentencepiece.ts), fairseq ids (`<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, any
 * other piece spm id + 1, `<mask>` = spm size + 1), then `<s>` + the first contextLength-2 ids +
 * `</s>`, padded with `<pad>`=1.
 *
 *   const tok = XlmRobertaTokenizer.fromModelProto(readFileSync('sentencepiece.bpe.model'));
 *   tok.encode(['一只猫'])  // ids: Int32Array [1*77] = 0, ..., 2, 1, 1...; lengths: the real tokens
 *
 * Literal special tokens in the text are split off first, as transformers' slow
 * `PreTrainedTokenizer.tokenize` does (4.34 and later: `tokens_trie.split`, then each AddedToken's
 * lstrip/rstrip; `XLMRobertaTokenizer.__init__` makes `<mask>` lstrip=True, and the other special
 * tokens strip nothing). `<s>`, `</s>`, `<unk>`, `<pad>` and `<mask>` become their ids; `<mask>`
 * also removes the Python-whitespace (`str.rstrip`) at the end of the text before it. Each piece
 * of text between them is encoded by SentencePiece on its own, so it gets its own dummy-prefix `▁`.
 * (Before 4.34 the other special tokens stripped whitespace on both sides; that only differs where
 * the whitespace is one SentencePiece keeps, such as U+0085.)
 */
import { ClipkitError } from '../errors';
import { SentencePieceUnigram } from './sentencepiece';
import { Encoded, expectTexts, packRows, Tokenizer, TokenizerRecipe } from './types';

const FAIRSEQ_OFFSET = 1; // spm id + 1 = fairseq id
/** None of these is a prefix of another or contains '<' after its start, so the leftmost match is Trie.split's. */
const SPECIAL_RE = /<s>|<\/s>|<unk>|<pad>|<mask>/g;
/** Python's str.isspace characters (all in the BMP), for str.rstrip(). */
const PY_SPACE_RE = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

export class XlmRobertaTokenizer implements Tokenizer {
  readonly kind = 'altclip_xlm_roberta_spm';
  recipe?: TokenizerRecipe;
  readonly clsId = 0;
  readonly padId = 1;
  readonly sepId = 2;
  readonly unkId = 3;
  readonly maskId: number;
  /** Ids of the special-token strings (transformers' added_tokens_encoder). */
  private readonly specialIds: ReadonlyMap<string, number>;

  constructor(
    readonly spm: SentencePieceUnigram,
    readonly contextLength = 77,
  ) {
    if (!Number.isInteger(contextLength) || contextLength < 2)
      throw new ClipkitError('E_ARG', `Expected an integer >= 2 for contextLength but received ${contextLength}`);
    this.maskId = spm.size + FAIRSEQ_OFFSET;
    this.specialIds = new Map([
      ['<s>', this.clsId],
      ['<pad>', this.padId],
      ['</s>', this.sepId],
      ['<unk>', this.unkId],
      ['<mask>', this.maskId],
    ]);
  }

  /** From the bytes of `sentencepiece.bpe.model`; `source` names it in errors. */
  static fromModelProto(bytes: Uint8Array, contextLength = 77, source?: string): XlmRobertaTokenizer {
    const tok = new XlmRobertaTokenizer(SentencePieceUnigram.fromModelProto(bytes, source), contextLength);
    tok.recipe = { from: 'sentencepiece', bytes, contextLength, source };
    return tok;
  }

  encode(texts: readonly string[]): Encoded {
    expectTexts(texts);
    const rows = texts.map((t) => [this.clsId, ...this.tokenIds(t).slice(0, this.contextLength - 2), this.sepId]);
    return packRows(rows, this.contextLength, this.padId);
  }

  tokenize(texts: readonly string[]): Int32Array {
    return this.encode(texts).ids;
  }

  /** Untruncated ids of one text, without `<s>` and `</s>` around it. */
  tokenIds(text: string): number[] {
    const ids: number[] = [];
    for (const chunk of this.splitSpecialTokens(text)) {
      if (chunk === '') continue;
      const special = this.specialIds.get(chunk);
      if (special !== undefined) ids.push(special);
      else for (const piece of this.spm.encode(chunk).pieces) ids.push(this.pieceId(piece));
    }
    return ids;
  }

  /** XLMRobertaTokenizer._convert_token_to_id: special strings, else spm id + 1, with spm id 0 -> <unk>. */
  private pieceId(piece: string): number {
    const special = this.specialIds.get(piece);
    if (special !== undefined) return special;
    const spmId = this.spm.pieceToId(piece);
    return spmId ? spmId + FAIRSEQ_OFFSET : this.unkId;
  }

  /** The text cut around special-token strings (kept as chunks), with `<mask>`'s lstrip applied. */
  private splitSpecialTokens(text: string): string[] {
    const chunks: string[] = [];
    let last = 0;
    for (const m of text.matchAll(SPECIAL_RE)) {
      if (m.index > last) chunks.push(text.slice(last, m.index));
      chunks.push(m[0]);
      last = m.index + m[0].length;
    }
    if (last < text.length) chunks.push(text.slice(last));
    for (let i = 1; i < chunks.length; i++)
      if (chunks[i] === '<mask>') chunks[i - 1] = pyRstrip(chunks[i - 1]);
    return chunks;
  }
}

/** Python's str.rstrip() (a loop, not a regex: a long run of spaces must stay linear). */
function pyRstrip(s: string): string {
  let end = s.length;
  while (end > 0 && PY_SPACE_RE.test(s[end - 1])) end--;
  return s.slice(0, end);
}
