/**
 * OpenAI CLIP's SimpleTokenizer (openai/CLIP `clip/simple_tokenizer.py`) and `clip.tokenize(...,
 * truncate=True)`: ftfy + HTML unescape + whitespace collapse + lower-case, a regex split, byte-level
 * BPE with `</w>` at word ends, then `<|startoftext|> ... <|endoftext|>` in 77 slots padded with 0.
 *
 *   const tok = ClipBpeTokenizer.fromGzip(readFileSync('bpe_simple_vocab_16e6.txt.gz'));
 *   tok.encode(['a photo of a cat'])  // ids: Int32Array [1*77], lengths: Int32Array [7]
 *
 * Id 0 is the real token '!', so padding can't be told from ids: use `lengths`.
 */
import { gunzipSync } from 'node:zlib';
import { ClipkitError } from '../errors';
import { fixText } from './ftfy';
import { htmlUnescape } from './html_unescape';
import { Encoded, expectTexts, packRows, Tokenizer, TokenizerRecipe } from './types';

export const SOT = '<|startoftext|>';
export const EOT = '<|endoftext|>';
const NUM_MERGES = 49152 - 256 - 2; // merges SimpleTokenizer (and transformers' CLIPTokenizer) use

/** Python `re`'s `\s` (str.isspace) for whitespace_clean / strip. */
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPACE_RUN = new RegExp(`[${PY_SPACE}]+`, 'g');
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'g');
/** The `regex` module's `\s` (White_Space), which the split pattern uses; JavaScript's `\s` differs on U+0085 and U+FEFF. */
const WS = '\\t\\n\\x0b\\x0c\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const SPLIT_RE = new RegExp(
  `<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^${WS}\\p{L}\\p{N}]+`,
  'giu',
);

/** GPT-2's byte -> printable char map, in SimpleTokenizer's order (printable bytes first). */
export function bytesToUnicode(): Map<number, string> {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++)
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  return new Map(bs.map((b, i) => [b, String.fromCharCode(cs[i])]));
}

/** ftfy.fix_text, html.unescape twice, strip, collapse whitespace, strip, lower(): the text that is split. */
export function cleanText(text: string): string {
  let t = fixText(text);
  t = htmlUnescape(htmlUnescape(t)).replace(PY_STRIP, '');
  return t.replace(PY_SPACE_RUN, ' ').replace(PY_STRIP, '').toLowerCase();
}

export function preTokenize(cleaned: string): string[] {
  return cleaned.match(SPLIT_RE) ?? [];
}

export class ClipBpeTokenizer implements Tokenizer {
  readonly kind = 'openai_clip_bpe';
  recipe?: TokenizerRecipe;
  readonly padId = 0;
  readonly sotId: number;
  readonly eotId: number;
  private readonly byteEncoder = bytesToUnicode();
  private readonly cache = new Map<string, string>([[SOT, SOT], [EOT, EOT]]);
  private static readonly CACHE_LIMIT = 1 << 16;
  private readonly utf8 = new TextEncoder();

  /** `ranks`: "a b" -> merge priority; `vocab`: token -> id. */
  constructor(
    private readonly vocab: ReadonlyMap<string, number>,
    private readonly ranks: ReadonlyMap<string, number>,
    readonly contextLength = 77,
  ) {
    const sot = vocab.get(SOT), eot = vocab.get(EOT);
    if (sot === undefined || eot === undefined)
      throw new ClipkitError('E_FORMAT', `Expected ${SOT} and ${EOT} in the BPE vocabulary but ${sot === undefined ? SOT : EOT} is missing`);
    this.sotId = sot;
    this.eotId = eot;
  }

  /** From `bpe_simple_vocab_16e6.txt.gz`: the vocabulary is rebuilt as SimpleTokenizer builds it. */
  static fromGzip(gz: Uint8Array, contextLength = 77): ClipBpeTokenizer {
    let text: string;
    try {
      text = gunzipSync(gz).toString('utf8');
    } catch (e) {
      throw new ClipkitError('E_FORMAT', `Expected a gzip file for the BPE merges but gunzip failed: ${(e as Error).message}`);
    }
    const merges = parseMerges(text.split('\n').slice(1, NUM_MERGES + 1), 'bpe_simple_vocab_16e6.txt.gz');
    const symbols = [...bytesToUnicode().values()];
    const vocabList = [...symbols, ...symbols.map((s) => s + '</w>'), ...merges.map(([a, b]) => a + b), SOT, EOT];
    const tok = new ClipBpeTokenizer(new Map(vocabList.map((t, i) => [t, i])), rankMap(merges), contextLength);
    tok.recipe = { from: 'bpe.gz', bytes: gz, contextLength };
    return tok;
  }

  /** From Hugging Face `vocab.json` + `merges.txt` (first line `#version: ...`). */
  static fromVocabMerges(vocabJson: string, mergesTxt: string, contextLength = 77): ClipBpeTokenizer {
    let obj: unknown;
    try {
      obj = JSON.parse(vocabJson);
    } catch (e) {
      throw new ClipkitError('E_FORMAT', `Expected JSON in vocab.json but parsing failed: ${(e as Error).message}`);
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
      throw new ClipkitError('E_FORMAT', `Expected an object of token -> id in vocab.json`);
    const vocab = new Map<string, number>();
    for (const [k, v] of Object.entries(obj)) {
      if (!Number.isInteger(v)) throw new ClipkitError('E_FORMAT', `Expected an integer id for ${JSON.stringify(k)} in vocab.json but received ${JSON.stringify(v)}`);
      vocab.set(k, v as number);
    }
    const merges = parseMerges(mergesTxt.trim().split('\n').slice(1, NUM_MERGES + 1), 'merges.txt');
    const tok = new ClipBpeTokenizer(vocab, rankMap(merges), contextLength);
    tok.recipe = { from: 'vocab.json+merges.txt', vocabJson, merges: mergesTxt, contextLength };
    return tok;
  }

  encode(texts: readonly string[]): Encoded {
    expectTexts(texts);
    const rows = texts.map((t) => {
      const row = [this.sotId, ...this.bpeIds(t), this.eotId];
      if (row.length > this.contextLength) {
        row.length = this.contextLength;
        row[this.contextLength - 1] = this.eotId;
      }
      return row;
    });
    return packRows(rows, this.contextLength, this.padId);
  }

  tokenize(texts: readonly string[]): Int32Array {
    return this.encode(texts).ids;
  }

  /** Untruncated BPE ids of one text, without start and end tokens. */
  bpeIds(text: string): number[] {
    return this.bpeTokens(text).map((t) => this.vocab.get(t)!);
  }

  /** BPE token strings (byte-unicode alphabet, `</w>` at word ends). */
  bpeTokens(text: string): string[] {
    const out: string[] = [];
    for (const piece of preTokenize(cleanText(text))) {
      let mapped = '';
      for (const b of this.utf8.encode(piece)) mapped += this.byteEncoder.get(b)!;
      for (const t of this.bpe(mapped).split(' ')) {
        if (!this.vocab.has(t)) throw new ClipkitError('E_FORMAT', `BPE produced ${JSON.stringify(t)}, which the vocabulary lacks`);
        out.push(t);
      }
    }
    return out;
  }

  /** Merges the lowest-ranked adjacent pair until none is in the table; symbols joined by ' '. */
  private bpe(token: string): string {
    const hit = this.cache.get(token);
    if (hit !== undefined) return hit;
    let word = [...token.slice(0, -1)].concat(token.slice(-1) + '</w>');
    for (;;) {
      let best = -1, bestRank = Infinity;
      for (let i = 0; i + 1 < word.length; i++) {
        const r = this.ranks.get(word[i] + ' ' + word[i + 1]);
        if (r !== undefined && r < bestRank) (bestRank = r), (best = i);
      }
      if (best < 0) break;
      const first = word[best], second = word[best + 1];
      const merged: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (word[i] === first && i + 1 < word.length && word[i + 1] === second) {
          merged.push(first + second);
          i += 2;
        } else merged.push(word[i++]);
      }
      word = merged;
      if (word.length === 1) break;
    }
    const result = word.join(' ');
    if (this.cache.size >= ClipBpeTokenizer.CACHE_LIMIT) this.cache.clear(), this.cache.set(SOT, SOT).set(EOT, EOT);
    this.cache.set(token, result);
    return result;
  }
}

function parseMerges(lines: string[], file: string): [string, string][] {
  return lines.map((line, i) => {
    const parts = line.trim().split(/\s+/);
    if (parts.length !== 2)
      throw new ClipkitError('E_FORMAT', `Expected two symbols on merge line ${i + 2} of ${file} but received ${JSON.stringify(line)}`);
    return [parts[0], parts[1]];
  });
}

function rankMap(merges: [string, string][]): Map<string, number> {
  const m = new Map<string, number>();
  merges.forEach(([a, b], i) => m.set(a + ' ' + b, i)); // a repeated merge keeps its last rank, as dict(zip(...))
  return m;
}
