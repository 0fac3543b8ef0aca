/**
 * Google's original BERT FullTokenizer (do_lower_case) as Chinese-CLIP uses it, and
 * `cn_clip.clip.tokenize(texts, context_length=52)`: clean, space out CJK ideographs, split on
 * whitespace, lower-case, strip accents (NFD, drop Mn), split off punctuation, greedy WordPiece.
 * Then `[CLS]` + the first contextLength-2 pieces + `[SEP]`, padded with 0.
 *
 *   const tok = BertWordPieceTokenizer.fromVocabTxt(readFileSync('vocab.txt', 'utf8'));
 *   tok.encode(['一只猫'])  // ids: Int32Array [1*52] = 101, 671, 1372, 4344, 102, 0...; lengths [5]
 *
 * Literal `[CLS]`, `[MASK]`... in the text are ordinary text here (`[`, `cls`, `]`).
 *
 * Character classes come from this Node's ICU, while the reference used Python's unicodedata
 * 14.0.0: characters assigned or re-categorised after Unicode 14 (Cc/Cf/Zs/Mn/P*) can tokenize
 * differently. Everything in Unicode 14 agrees.
 */
import { ClipkitError } from '../errors';
import { Encoded, expectTexts, packRows, Tokenizer, TokenizerRecipe } from './types';

const MAX_CHARS_PER_WORD = 200; // Google's default; Hugging Face's BertTokenizer uses 100

/** Dropped by cleaning: U+0000, U+FFFD, and Cc/Cf except \t \n \r. */
const DROP_RE = /[\0\ufffd]|(?![\t\n\r])[\p{Cc}\p{Cf}]/gu;
/** \t \n \r and Zs become a space. */
const SPACE_RE = /[\t\n\r\p{Zs}]/gu;
/** CJK ideographs that get spaces around them: exactly BERT's _is_chinese_char ranges. */
const CJK_RE = /[\u{4E00}-\u{9FFF}\u{3400}-\u{4DBF}\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\u{F900}-\u{FAFF}\u{2F800}-\u{2FA1F}]/gu;
/** Python's str.split() separators (str.isspace). */
const PY_SPACE_RE = /[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;
const MN_RE = /\p{Mn}/gu;
/** ASCII symbols BERT counts as punctuation, and every Unicode P* character. */
const PUNCT_RE = /[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e\p{P}]/u;

export class BertWordPieceTokenizer implements Tokenizer {
  readonly kind = 'chinese_clip_bert_wordpiece';
  recipe?: TokenizerRecipe;
  readonly padId = 0;
  readonly unkId: number;
  readonly clsId: number;
  readonly sepId: number;

  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    readonly contextLength = 52,
  ) {
    const need = (t: string) => {
      const id = vocab.get(t);
      if (id === undefined) throw new ClipkitError('E_FORMAT', `Expected ${t} in the WordPiece vocabulary but it is missing`);
      return id;
    };
    this.unkId = need('[UNK]');
    this.clsId = need('[CLS]');
    this.sepId = need('[SEP]');
    if (!Number.isInteger(contextLength) || contextLength < 2)
      throw new ClipkitError('E_ARG', `Expected an integer >= 2 for contextLength but received ${contextLength}`);
  }

  /** vocab.txt: one token per line, id = line number; surrounding whitespace stripped, as BERT's load_vocab. */
  static fromVocabTxt(text: string, contextLength = 52): BertWordPieceTokenizer {
    const lines = text.split('\n');
    if (lines[lines.length - 1] === '') lines.pop();
    const vocab = new Map<string, number>();
    lines.forEach((line, i) => vocab.set(line.replace(PY_STRIP_RE, ''), i));
    const tok = new BertWordPieceTokenizer(vocab, contextLength);
    tok.recipe = { from: 'vocab.txt', text, contextLength };
    return tok;
  }

  encode(texts: readonly string[]): Encoded {
    expectTexts(texts);
    const rows = texts.map((t) => [this.clsId, ...this.wordpieceIds(t).slice(0, this.contextLength - 2), this.sepId]);
    return packRows(rows, this.contextLength, this.padId);
  }

  tokenize(texts: readonly string[]): Int32Array {
    return this.encode(texts).ids;
  }

  /** Untruncated piece ids of one text. */
  wordpieceIds(text: string): number[] {
    return this.wordpieces(text).map((p) => this.vocab.get(p) ?? this.unkId);
  }

  /** All word pieces of one text, as strings (`##` on continuations, `[UNK]` for unmatched words). */
  wordpieces(text: string): string[] {
    const out: string[] = [];
    for (const word of basicTokenize(text)) out.push(...this.wordpiece(word));
    return out;
  }

  /** Greedy longest-match-first; a word with an unmatchable rest is one [UNK]. */
  private wordpiece(word: string): string[] {
    const chars = Array.from(word);
    if (chars.length > MAX_CHARS_PER_WORD) return ['[UNK]'];
    const pieces: string[] = [];
    for (let start = 0; start < chars.length; ) {
      let end = chars.length;
      let found: string | null = null;
      for (; start < end; end--) {
        const sub = (start > 0 ? '##' : '') + chars.slice(start, end).join('');
        if (this.vocab.has(sub)) {
          found = sub;
          break;
        }
      }
      if (found === null) return ['[UNK]'];
      pieces.push(found);
      start = end;
    }
    return pieces;
  }
}

const PY_STRIP_RE = /^[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+|[\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+$/g;

/** BERT's BasicTokenizer with do_lower_case: the words WordPiece sees. */
export function basicTokenize(text: string): string[] {
  const cleaned = text.replace(DROP_RE, '').replace(SPACE_RE, ' ');
  const spaced = cleaned.replace(CJK_RE, ' $& ');
  const out: string[] = [];
  for (const token of splitWhitespace(spaced)) {
    const stripped = token.toLowerCase().normalize('NFD').replace(MN_RE, '');
    out.push(...splitPunctuation(stripped));
  }
  return out;
}

function splitWhitespace(text: string): string[] {
  return text.split(PY_SPACE_RE).filter((w) => w.length > 0);
}

/** Every punctuation character becomes its own token. */
function splitPunctuation(word: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (const c of word) {
    if (PUNCT_RE.test(c)) {
      if (cur) out.push(cur);
      out.push(c);
      cur = '';
    } else cur += c;
  }
  if (cur) out.push(cur);
  return out;
}
