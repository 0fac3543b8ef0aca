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
 * Files the model needs besides its weights come from the folder when it has them; otherwise the
 * tokenizer is the family's own vocabulary shipped in assets/ (OpenAI's BPE, Chinese-CLIP's
 * vocab.txt) and the preprocessor config the family's standard one.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipkitError } from '../errors';
import { readTorchCheckpoint } from '../io/pytorch';
import { readSafetensors, readSafetensorsIndex } from '../io/safetensors';
import { TensorEntry } from '../io/tensor_entry';
import { BertWordPieceTokenizer, ClipBpeTokenizer, loadTokenizer, Tokenizer } from '../tokenizers';
import { ClipConfig, parseClipConfig, parsePreprocessConfig, PreprocessConfig, readPreprocessConfig } from './config';
import { assetsDir, defaultPreprocessorConfig } from './family_files';
import { HfConfigJson } from './infer_geometry';
import { CheckpointLayout, LayoutOptions, toHfLayout } from './layouts';
import { readFileBounded, readTextBounded } from '../io/read_file';

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
 */
export function readModelSource(location: string, layout: LayoutOptions = {}): ModelSource {
  const stat = fs.statSync(location, { throwIfNoEntry: false });
  if (!stat) throw new ClipkitError('E_IO', `No such model folder or checkpoint file: ${location}`);
  if (stat.isFile()) {
    if (!CHECKPOINT_EXTENSIONS.includes(path.extname(location).toLowerCase()))
      throw new ClipkitError('E_UNSUPPORTED', `Cannot load ${location}: expected a model folder or a checkpoint file (${CHECKPOINT_EXTENSIONS.join(', ')})`);
    return fromTensors(readWeightFile(location), [location], path.dirname(location), layout);
  }
  const { tensors, files } = readFolderWeights(location);
  return fromTensors(tensors, files, location, layout);
}

function fromTensors(tensors: ReadonlyMap<string, TensorEntry>, files: string[], dir: string, layout: LayoutOptions): ModelSource {
  const source = files.length === 1 ? files[0] : `${dir} (${files.length} weight files)`;
  const configPath = path.join(dir, 'config.json');
  const configJson = fs.existsSync(configPath) ? readJson(configPath) : undefined;
  // Hugging Face names with a config.json: as they are (this also covers AltCLIP, whose geometry shapes cannot give).
  const hf = configJson && tensors.has('vision_model.embeddings.patch_embedding.weight')
    ? { layout: 'hf' as const, tensors, config: undefined }
    : toHfLayout(tensors, { ...layout, source });
  let config: ClipConfig;
  if (hf.layout === 'hf') config = configJson ? parseClipConfig(configJson, configPath) : parseClipConfig(hf.config!, `the shapes of ${source}`);
  else config = parseClipConfig(hf.layout === 'easynlp' ? withEasyNlpConfig(hf.config!, configJson) : hf.config!, `the shapes of ${source}`);
  const hasTokenizer = TOKENIZER_FILES.some((f) => fs.existsSync(path.join(dir, f)));
  const preprocessorPath = path.join(dir, 'preprocessor_config.json');
  return {
    config,
    tensors: hf.tensors,
    files,
    layout: hf.layout,
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

function readWeightFile(file: string): ReadonlyMap<string, TensorEntry> {
  return file.toLowerCase().endsWith('.safetensors') ? readSafetensors(file).tensors : readTorchCheckpoint(file).tensors;
}

/**
 * A folder's weights: model.safetensors, its index's shards, pytorch_model.bin, or its index's
 * shards, first found in that order.
 */
function readFolderWeights(dir: string): { tensors: ReadonlyMap<string, TensorEntry>; files: string[] } {
  const at = (f: string) => path.join(dir, f);
  if (fs.existsSync(at('model.safetensors'))) return { tensors: readSafetensors(at('model.safetensors')).tensors, files: [at('model.safetensors')] };
  if (fs.existsSync(at('model.safetensors.index.json'))) {
    const ck = readSafetensorsIndex(dir);
    return { tensors: ck.tensors, files: ck.files.map((f) => at(f)) };
  }
  for (const name of ['pytorch_model.bin', 'model.bin']) if (fs.existsSync(at(name))) return { tensors: readTorchCheckpoint(at(name)).tensors, files: [at(name)] };
  if (fs.existsSync(at('pytorch_model.bin.index.json'))) return readTorchShards(dir, at('pytorch_model.bin.index.json'));
  throw new ClipkitError(
    'E_IO',
    `No weights in ${dir}: expected model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json`,
  );
}

/** pytorch_model.bin.index.json: `weight_map` name → shard file; every shard read once. */
function readTorchShards(dir: string, indexPath: string): { tensors: Map<string, TensorEntry>; files: string[] } {
  const index = readJson(indexPath) as { weight_map?: unknown };
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map))
    throw new ClipkitError('E_FORMAT', `Invalid ${indexPath}: expected a weight_map object`);
  const shards = [...new Set(Object.values(map as Record<string, unknown>))];
  const tensors = new Map<string, TensorEntry>();
  for (const shard of shards) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.'))
      throw new ClipkitError('E_FORMAT', `Invalid ${indexPath}: shard ${JSON.stringify(shard)} is not a file name in the folder`);
    for (const [name, t] of readTorchCheckpoint(path.join(dir, shard)).tensors) {
      if ((map as Record<string, string>)[name] !== shard) continue;
      tensors.set(name, t);
    }
  }
  const missing = Object.keys(map as object).filter((n) => !tensors.has(n));
  if (missing.length) throw new ClipkitError('E_WEIGHTS', `${indexPath} lists ${missing.length} tensors its shards lack, e.g. ${missing.slice(0, 3).join(', ')}`);
  return { tensors, files: shards.map((s) => path.join(dir, s as string)) };
}

function readJson(file: string): Record<string, unknown> {
  const text = readTextBounded(file, 'file');
  try {
    const v = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v;
  } catch (err) {
    throw new ClipkitError('E_FORMAT', `Invalid JSON in ${file}: ${(err as Error).message}`);
  }
}
