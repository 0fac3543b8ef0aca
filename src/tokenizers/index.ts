/**
 * loadTokenizer(dir): the tokenizer of a Hugging Face model folder, chosen by
 * `tokenizer_config.json`'s `tokenizer_class` (or, without one, by the files present).
 *
 *   const tok = loadTokenizer('models/openai_clip_tiny');
 *   const { ids, lengths } = tok.encode(['a photo of a cat']);  // ids: Int32Array [1*77]
 *
 * An unknown class is refused (E_UNSUPPORTED): guessing would silently give wrong tokens.
 */
import { existsSync } from 'node:fs';
import { readFileBounded } from '../io/read_file';
import { readJson } from '../io/read_json';
import { join } from 'node:path';
import { describe, expectOptions, expectPath, OptionKeys } from '../check';
import { ClipkitError } from '../errors';
import { BertWordPieceTokenizer } from './bert_wordpiece';
import { ClipBpeTokenizer } from './clip_bpe';
import { Tokenizer } from './types';
import { XlmRobertaTokenizer } from './xlm_roberta';

export { BertWordPieceTokenizer } from './bert_wordpiece';
export { ClipBpeTokenizer } from './clip_bpe';
export { fixText } from './ftfy';
export { SentencePieceUnigram } from './sentencepiece';
export { XlmRobertaTokenizer } from './xlm_roberta';
export type { Encoded, Tokenizer } from './types';

type Builder = (dir: string, contextLength: number | undefined) => Tokenizer;

const BUILDERS: ReadonlyMap<string, Builder> = new Map<string, Builder>([
  ['BertTokenizer', bertFromDir],
  ['BertTokenizerFast', bertFromDir],
  ['CLIPTokenizer', clipFromDir],
  ['CLIPTokenizerFast', clipFromDir],
  ['XLMRobertaTokenizer', xlmRobertaFromDir],
  ['XLMRobertaTokenizerFast', xlmRobertaFastFromDir],
]);

export interface LoadTokenizerOptions {
  /**
   * Overrides the context length (default: Chinese-CLIP 52, OpenAI CLIP 77, AltCLIP
   * tokenizer_config.json's model_max_length or else 77).
   */
  contextLength?: number;
}

export function loadTokenizer(dir: string, options: LoadTokenizerOptions = {}): Tokenizer {
  expectPath('dir', dir);
  expectOptions('loadTokenizer', options, { contextLength: true } satisfies OptionKeys<LoadTokenizerOptions>);
  const cls = tokenizerClass(dir);
  const build = BUILDERS.get(cls);
  if (!build)
    throw new ClipkitError('E_UNSUPPORTED', `Unsupported tokenizer_class ${JSON.stringify(cls)} in ${join(dir, 'tokenizer_config.json')}: expected one of ${[...BUILDERS.keys()].join(', ')}`);
  return build(dir, options.contextLength);
}

function tokenizerClass(dir: string): string {
  const configPath = join(dir, 'tokenizer_config.json');
  if (existsSync(configPath)) {
    const cls = readJson(configPath, 'tokenizer config').tokenizer_class;
    if (cls !== undefined && cls !== null) {
      if (typeof cls !== 'string') throw new ClipkitError('E_FORMAT', `Expected a string tokenizer_class in ${configPath} but received ${describe(cls)}`);
      return cls;
    }
  }
  if (existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'))) return 'CLIPTokenizer';
  if (existsSync(join(dir, 'bpe_simple_vocab_16e6.txt.gz'))) return 'CLIPTokenizer';
  if (existsSync(join(dir, 'vocab.txt'))) return 'BertTokenizer';
  if (existsSync(join(dir, SPM_MODEL))) return 'XLMRobertaTokenizer';
  throw new ClipkitError('E_IO', `Expected tokenizer files in ${dir} (tokenizer_config.json, vocab.txt, vocab.json + merges.txt, or ${SPM_MODEL}) but found none`);
}

function bertFromDir(dir: string, contextLength = 52): Tokenizer {
  return BertWordPieceTokenizer.fromVocabTxt(readText(join(dir, 'vocab.txt')), contextLength);
}

function clipFromDir(dir: string, contextLength = 77): Tokenizer {
  const vocab = join(dir, 'vocab.json'), merges = join(dir, 'merges.txt'), gz = join(dir, 'bpe_simple_vocab_16e6.txt.gz');
  if (!existsSync(vocab) && existsSync(gz)) return ClipBpeTokenizer.fromGzip(readBytes(gz), contextLength);
  return ClipBpeTokenizer.fromVocabMerges(readText(vocab), readText(merges), contextLength);
}

const SPM_MODEL = 'sentencepiece.bpe.model';
/** The largest model_max_length taken as a context length; transformers writes 1e30 for "no limit". */
const MAX_CONFIG_CONTEXT = 1 << 16;

function xlmRobertaFromDir(dir: string, contextLength?: number): Tokenizer {
  const model = join(dir, SPM_MODEL);
  return XlmRobertaTokenizer.fromModelProto(readBytes(model), contextLength ?? configContextLength(dir) ?? 77, model);
}

/** The fast tokenizer's class is read with the slow tokenizer's files; a tokenizer.json-only folder is refused. */
function xlmRobertaFastFromDir(dir: string, contextLength?: number): Tokenizer {
  if (!existsSync(join(dir, SPM_MODEL)))
    throw new ClipkitError('E_UNSUPPORTED', `Unsupported XLMRobertaTokenizerFast folder ${dir}: expected ${SPM_MODEL} (a folder with only tokenizer.json is not supported)`);
  return xlmRobertaFromDir(dir, contextLength);
}

/** tokenizer_config.json's model_max_length when it is a usable context length. */
function configContextLength(dir: string): number | undefined {
  const configPath = join(dir, 'tokenizer_config.json');
  if (!existsSync(configPath)) return undefined;
  const n = readJson(configPath, 'tokenizer config').model_max_length;
  return Number.isInteger(n) && (n as number) >= 2 && (n as number) <= MAX_CONFIG_CONTEXT ? (n as number) : undefined;
}

function readBytes(path: string): Buffer {
  return readFileBounded(path, 'tokenizer file');
}

const readText = (path: string) => readBytes(path).toString('utf8');

