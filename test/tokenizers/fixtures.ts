/**
 * Paths and case files of the tokenizer fixtures: the reference cases and vocabularies (the
 * reference set's tokenizer/), the tiny models' own tokenizer files (beside their weights in its
 * models/) and the cases this repository generates (test/fixtures/tokenizer/).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OWN_FIXTURES, REF_MODELS, REF_TOKENIZER } from '../reference_fixtures';

export const path = (...parts: string[]) => join(REF_TOKENIZER, ...parts);
/** A tiny model's folder, which holds its tokenizer files (tokenizer_config.json, vocab.json + merges.txt, sentencepiece.bpe.model, ...). */
export const modelTokenizer = (name: 'chinese_clip_tiny' | 'openai_clip_tiny' | 'altclip_tiny', ...parts: string[]) => join(REF_MODELS, name, ...parts);
export const readJson = <T>(...parts: string[]): T => JSON.parse(readFileSync(path(...parts), 'utf8')) as T;
/** A case file this repository generates (scripts/gen_ftfy_cases.py). */
export const readOwnJson = <T>(name: string): T => JSON.parse(readFileSync(join(OWN_FIXTURES, 'tokenizer', name), 'utf8')) as T;

export interface CnCase {
  id: string;
  text: string;
  ids: number[];
  num_tokens: number;
  wordpieces: string[];
  wordpiece_ids: number[];
  truncated: boolean;
  has_unk: boolean;
}

export interface OaCase {
  id: string;
  text: string;
  ids: number[];
  num_tokens: number;
  bpe_ids: number[];
  bpe_tokens: string[];
  cleaned_text: string;
  pre_tokens: string[];
  truncated: boolean;
  ftfy_changed: boolean;
}

export interface XrCase {
  id: string;
  text: string;
  ids: number[];
  attention_mask: number[];
  num_tokens: number;
  pieces: string[];
  spm_ids: number[];
  piece_ids: number[];
  truncated: boolean;
  has_unk: boolean;
}

export const cnCases = () => readJson<{ context_length: number; cases: CnCase[] }>('chinese_clip_tokenizer_cases.json');
export const oaCases = () => readJson<{ context_length: number; cases: OaCase[] }>('openai_clip_tokenizer_cases.json');
export const xrCases = () => readJson<{ context_length: number; spm_vocab_size: number; mask_id: number; cases: XrCase[] }>('altclip_tokenizer_cases.json');

/** First index where two sequences differ, with both values, or '' when equal. */
export function firstDiff(got: ArrayLike<unknown>, want: ArrayLike<unknown>): string {
  const n = Math.max(got.length, want.length);
  for (let i = 0; i < n; i++)
    if (got[i] !== want[i]) return `[${i}] got ${JSON.stringify(got[i])} want ${JSON.stringify(want[i])} (lengths ${got.length}/${want.length})`;
  return '';
}
