/** What every clipkit tokenizer returns and offers. */
import { describe } from '../check';
import { typeError } from '../errors';

export interface Encoded {
  ids: Int32Array; // [n, contextLength], padded with padId
  lengths: Int32Array; // [n]: real tokens per row, start/end (or [CLS]/[SEP]) included
}

/**
 * The files and settings a tokenizer was built from, kept so that another thread can build the same
 * tokenizer (src/tokenizers/off_thread.ts: long texts are tokenized off the JavaScript thread).
 */
export type TokenizerRecipe =
  | { from: 'vocab.txt'; text: string; contextLength: number }
  | { from: 'bpe.gz'; bytes: Uint8Array; contextLength: number }
  | { from: 'vocab.json+merges.txt'; vocabJson: string; merges: string; contextLength: number }
  | { from: 'sentencepiece'; bytes: Uint8Array; contextLength: number; source?: string };

export interface Tokenizer {
  /** Which reference this reproduces: 'chinese_clip_bert_wordpiece' | 'openai_clip_bpe' | 'altclip_xlm_roberta_spm'. */
  readonly kind: string;
  /** How to build this tokenizer again elsewhere; set by the from* factories. */
  recipe?: TokenizerRecipe;
  readonly contextLength: number;
  readonly padId: number;
  encode(texts: readonly string[]): Encoded;
  /** encode(texts).ids. For OpenAI CLIP, id 0 is a real token ('!'): take lengths from encode(). */
  tokenize(texts: readonly string[]): Int32Array;
}

/** Checks `texts` is an array of strings, naming the first bad element. */
export function expectTexts(texts: unknown): readonly string[] {
  if (!Array.isArray(texts)) throw typeError('E_ARG', `Expected an array of strings for texts but received ${describe(texts)}`);
  for (let i = 0; i < texts.length; i++)
    if (typeof texts[i] !== 'string')
      throw typeError('E_ARG', `Expected a string for texts[${i}] but received ${describe(texts[i])}`);
  return texts as string[];
}

/** Packs rows of ids into [n, contextLength], padding with padId. Rows must already fit. */
export function packRows(rows: readonly number[][], contextLength: number, padId: number): Encoded {
  const ids = new Int32Array(rows.length * contextLength).fill(padId);
  const lengths = new Int32Array(rows.length);
  rows.forEach((row, i) => {
    ids.set(row, i * contextLength);
    lengths[i] = row.length;
  });
  return { ids, lengths };
}
