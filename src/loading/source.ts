/**
 * What loadModel reads, from wherever the model is:
 *
 *   a Hugging Face folder   config.json + model.safetensors (or its shards), or pytorch_model.bin
 *                           (or its shards) read without Python; tokenizer and preprocessor files
 *   an original checkpoint  a .pt / .bin / .pth / .safetensors file, or a folder whose weights use
 *                           original names (OpenAI / open_clip, Chinese-CLIP, EasyNLP): the tensors
 *                           are mapped to Hugging Face names and the geometry read off their shapes
 *                           (layouts.ts); EasyNLP's own config.json adds what shapes cannot say
 *
 * The weights are read by read_weights.ts, as for loadClipWeights and convert.
 *
 * Files the model needs besides its weights come from the folder when it has them; otherwise the
 * tokenizer is the family's own vocabulary shipped in assets/ (OpenAI's BPE, Chinese-CLIP's
 * vocab.txt) and the preprocessor config the family's standard one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipkitError } from '../errors';
import { readFileBounded, readTextBounded } from '../io/read_file';
import { readJson } from '../io/read_json';
import { ReadOptions } from '../io/safetensors';
import { TensorEntry } from '../io/tensor_entry';
import { BertWordPieceTokenizer, ClipBpeTokenizer, loadTokenizer, Tokenizer } from '../tokenizers';
import { ClipConfig, parseClipConfig, parsePreprocessConfig, PreprocessConfig, readPreprocessConfig } from './config';
import { assetsDir, defaultPreprocessorConfig } from './family_files';
import { HfConfigJson } from './infer_geometry';
import { CheckpointLayout, LayoutOptions } from './layouts';
import { readStoredWeights, toHfWeights } from './read_weights';

export interface ModelSource {
  config: ClipConfig;
  /** Tensors under Hugging Face names. */
  tensors: ReadonlyMap<string, TensorEntry>;
  /** The weight files read, and how they name their tensors. */
  files: string[];
  layout: CheckpointLayout;
  /** The tokenizer, with `contextLength` ids per text. */
  tokenizer(contextLength: number): Tokenizer;
  preprocess(): PreprocessConfig;
}

const CHECKPOINT_EXTENSIONS = ['.pt', '.pth', '.bin', '.safetensors'];
const TOKENIZER_FILES = ['tokenizer_config.json', 'vocab.txt', 'vocab.json', 'sentencepiece.bpe.model', 'bpe_simple_vocab_16e6.txt.gz'];

/**
 * Reads a model folder or checkpoint file (see the file comment). `layout` names the geometry of
 * an original checkpoint (e.g. `{ model: 'ViT-B-16' }`, checked against its shapes) or its
 * activation (`hiddenAct: 'gelu'` for LAION's open_clip models); Hugging Face folders ignore it.
 * `read.mapped`: weight files already mapped, whose tensors are then views into their mappings.
 */
export function readModelSource(location: string, layout: LayoutOptions = {}, read: ReadOptions = {}): ModelSource {
  const stat = fs.statSync(location, { throwIfNoEntry: false });
  if (!stat) throw new ClipkitError('E_IO', `No such model folder or checkpoint file: ${location}`);
  if (stat.isFile() && !CHECKPOINT_EXTENSIONS.includes(path.extname(location).toLowerCase()))
    throw new ClipkitError('E_UNSUPPORTED', `Cannot load ${location}: expected a model folder or a checkpoint file (${CHECKPOINT_EXTENSIONS.join(', ')})`);
  const dir = stat.isFile() ? path.dirname(location) : location;
  const stored = readStoredWeights(location, read);
  const configPath = path.join(dir, 'config.json');
  const configJson = fs.existsSync(configPath) ? readJson(configPath, 'config') : undefined;
  // Hugging Face names with a config.json: as they are (this also covers AltCLIP, whose geometry shapes cannot give).
  const hf = toHfWeights(stored, { ...layout, hasConfig: configJson !== undefined });
  const config = hf.inferred
    ? parseClipConfig(hf.layout === 'easynlp' ? withEasyNlpConfig(hf.inferred, configJson) : hf.inferred, `the shapes of ${hf.source}`)
    : parseClipConfig(configJson, configPath);
  return { config, tensors: hf.tensors, files: hf.files, layout: hf.layout, ...modelSideFiles(location, config) };
}

/**
 * The tokenizer and preprocessing of the model at `location` (a folder, or a checkpoint file whose
 * folder is looked in), as readModelSource gives them; for a model whose weights come from elsewhere
 * (the weight cache). Nothing is read until they are called.
 */
export function modelSideFiles(location: string, config: ClipConfig): Pick<ModelSource, 'tokenizer' | 'preprocess'> {
  const dir = fs.statSync(location, { throwIfNoEntry: false })?.isFile() ? path.dirname(location) : location;
  const hasTokenizer = TOKENIZER_FILES.some((f) => fs.existsSync(path.join(dir, f)));
  const preprocessorPath = path.join(dir, 'preprocessor_config.json');
  return {
    tokenizer: (contextLength) => (hasTokenizer ? loadTokenizer(dir, { contextLength }) : bundledTokenizer(config, contextLength)),
    preprocess: () =>
      fs.existsSync(preprocessorPath)
        ? readPreprocessConfig(preprocessorPath)
        : parsePreprocessConfig(defaultPreprocessorConfig(config.modelType, config.vision.imageSize), `the standard ${config.modelType} preprocessing at ${config.vision.imageSize} px`),
  };
}

/**
 * EasyNLP's config.json (model_type "clip", BERT-style text_config) says what the shapes cannot:
 * the pad id that numbers positions, and the text tower's LayerNorm eps.
 */
function withEasyNlpConfig(inferred: HfConfigJson, own: Record<string, unknown> | undefined): HfConfigJson {
  const text = (own?.text_config ?? {}) as Record<string, unknown>;
  const pick = (key: string) => (text[key] !== undefined && text[key] !== null ? { [key]: text[key] } : {});
  return { ...inferred, text_config: { ...inferred.text_config, ...pick('pad_token_id'), ...pick('layer_norm_eps') } };
}

function bundledTokenizer(config: ClipConfig, contextLength: number): Tokenizer {
  const dir = assetsDir();
  if (config.text.kind === 'clip') return ClipBpeTokenizer.fromGzip(readFileBounded(path.join(dir, 'bpe_simple_vocab_16e6.txt.gz'), 'vocabulary'), contextLength);
  if (config.modelType === 'altclip')
    throw new ClipkitError('E_IO', 'An AltCLIP model needs its sentencepiece.bpe.model beside the weights');
  return BertWordPieceTokenizer.fromVocabTxt(readTextBounded(path.join(dir, 'vocab.txt'), 'vocabulary'), contextLength);
}
