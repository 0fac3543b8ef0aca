/**
 * Hugging Face model folders: `config.json` (ChineseCLIPModel / CLIPModel / AltCLIPModel) and
 * `preprocessor_config.json` (ChineseCLIPImageProcessor / CLIPImageProcessor) as typed configs.
 *
 * Values come from the file. A field the file leaves out takes the default of transformers' config
 * class for that model type (they differ between types: ChineseCLIPTextConfig.vocab_size is 30522,
 * CLIPTextConfig's 49408), and its path is recorded in `defaulted` so callers can see what was
 * assumed. Fields are type-checked; errors name the field and the file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipkitError } from '../errors';
import { expectPath } from '../check';
import { RESIZE_FILTERS, ResizeFilter } from '../image/resize';
import { readJson } from '../io/read_json';
import { OPENAI_CLIP_MEAN, OPENAI_CLIP_STD } from './family_files';

/**
 * `easynlp_clip` is EasyNLP's Chinese CLIP ("huggingface_clip" CLIPApp): a config clipkit writes
 * for it (EasyNLP's own config.json says `clip`; its checkpoint's names tell it apart).
 */
export const MODEL_TYPES = ['chinese_clip', 'clip', 'altclip', 'easynlp_clip'] as const;
export type ModelType = (typeof MODEL_TYPES)[number];

/** Activations clipkit implements: `gelu` is the exact erf GELU, `quick_gelu` is x·sigmoid(1.702x). */
export const HIDDEN_ACTS = ['gelu', 'quick_gelu'] as const;
export type HiddenAct = (typeof HIDDEN_ACTS)[number];

/** ViT tower (both model types). */
export interface VisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  hiddenAct: HiddenAct;
  layerNormEps: number;
}

/**
 * How a BERT-family tower turns the hidden state of its first token into the pooled output:
 * 'cls' takes it as is (Chinese-CLIP); 'transformation' is AltCLIP's pre_LN + transformation
 * (hidden size → project_dim); 'tanh' is BERT's pooler, tanh(dense(x)) (EasyNLP).
 */
export type BertPooling = 'cls' | 'transformation' | 'tanh';

/** BERT-family text tower (Chinese-CLIP's BERT, AltCLIP's XLM-R RoBERTa): post-LayerNorm. */
export interface BertTextConfig {
  kind: 'bert';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  typeVocabSize: number;
  hiddenAct: HiddenAct;
  layerNormEps: number;
  padTokenId: number;
  /**
   * Real token i reads position embedding i + positionOffset: 0 for BERT; padTokenId + 1 for the
   * RoBERTa numbering (positions = cumsum(ids != pad) + pad), which AltCLIP's XLM-R uses.
   */
  positionOffset: number;
  pooling: BertPooling;
  /** Width of the pooled output: hiddenSize, or AltCLIP's project_dim. */
  pooledSize: number;
}

/** OpenAI CLIP text tower: causal, pre-LayerNorm. */
export interface ClipTextConfig {
  kind: 'clip';
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  hiddenAct: HiddenAct;
  layerNormEps: number;
  padTokenId: number;
  bosTokenId: number;
  eosTokenId: number;
}

interface ClipConfigBase {
  /** The file the config was read from (or the name given to parseClipConfig). */
  source: string;
  projectionDim: number;
  /** The configured initial value; a checkpoint's trained value is its `logit_scale` tensor. */
  logitScaleInitValue: number;
  vision: VisionConfig;
  /** Paths of the fields the file left out and that took transformers' defaults, e.g. `vision_config.num_channels`. */
  defaulted: string[];
  /** Whether text_projection and visual_projection have biases (EasyNLP's do). */
  projectionBias: boolean;
}
export type ClipConfig =
  | (ClipConfigBase & { modelType: 'chinese_clip' | 'altclip' | 'easynlp_clip'; text: BertTextConfig })
  | (ClipConfigBase & { modelType: 'clip'; text: ClipTextConfig });

// transformers' defaults per config class (configuration_chinese_clip.py, configuration_clip.py).
const TOP_DEFAULTS = { projection_dim: 512, logit_scale_init_value: 2.6592 };
const VISION_DEFAULTS = {
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12,
  num_channels: 3, image_size: 224, patch_size: 32, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
};
const BERT_TEXT_DEFAULTS = {
  vocab_size: 30522, hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12,
  max_position_embeddings: 512, type_vocab_size: 2, hidden_act: 'gelu', layer_norm_eps: 1e-12, pad_token_id: 0,
  position_embedding_type: 'absolute',
};
// AltCLIPTextConfig (configuration_altclip.py): an XLM-R large with a project_dim transformation.
const ALTCLIP_TEXT_DEFAULTS = {
  vocab_size: 250002, hidden_size: 1024, intermediate_size: 4096, num_hidden_layers: 24, num_attention_heads: 16,
  max_position_embeddings: 514, type_vocab_size: 1, hidden_act: 'gelu', layer_norm_eps: 1e-5, pad_token_id: 1,
  position_embedding_type: 'absolute', project_dim: 768,
};
const ALTCLIP_TOP_DEFAULTS = { projection_dim: 768, logit_scale_init_value: 2.6592 };
const CLIP_TEXT_DEFAULTS = {
  vocab_size: 49408, hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12, num_attention_heads: 8,
  max_position_embeddings: 77, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, pad_token_id: 1,
  bos_token_id: 49406, eos_token_id: 49407,
};

const configError = (source: string, problem: string) => new ClipkitError('E_FORMAT', `Invalid config ${source}: ${problem}`);

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `array ${JSON.stringify(v).slice(0, 60)}`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

/** Reads one section's fields, falling back to `defaults` and recording each fallback. */
class Fields {
  constructor(
    private readonly obj: Json,
    private readonly prefix: string,
    private readonly defaults: Record<string, unknown>,
    private readonly source: string,
    private readonly defaulted: string[],
  ) {}

  /** The file's value, or the default (recorded in `defaulted`); missing without a default is an error. */
  raw(key: string): unknown {
    const v = this.obj[key];
    if (v !== undefined && v !== null) return v;
    if (!(key in this.defaults)) throw configError(this.source, `required field ${this.prefix}${key} is missing`);
    this.defaulted.push(this.prefix + key);
    return this.defaults[key];
  }
  fail(key: string, want: string, v: unknown): never {
    throw configError(this.source, `expected ${want} for ${this.prefix}${key} but found ${kind(v)}`);
  }
  int(key: string, min: number): number {
    const v = this.raw(key);
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail(key, `an integer >= ${min}`, v);
    return v;
  }
  positive(key: string): number {
    const v = this.raw(key);
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) this.fail(key, 'a positive number', v);
    return v;
  }
  finite(key: string): number {
    const v = this.raw(key);
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, 'a finite number', v);
    return v;
  }
  /** An int, or a square [n, n] pair (newer configs may write image_size/patch_size as pairs). */
  square(key: string): number {
    const v = this.raw(key);
    if (Array.isArray(v) && v.length === 2 && v[0] === v[1]) return this.checkedSquare(key, v[0]);
    if (Array.isArray(v))
      throw new ClipkitError('E_UNSUPPORTED', `Unsupported ${this.prefix}${key} ${JSON.stringify(v)} in ${this.source}: clipkit supports square sizes only`);
    return this.checkedSquare(key, v);
  }
  private checkedSquare(key: string, v: unknown): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) this.fail(key, 'a positive integer', v);
    return v;
  }
  act(key: string): HiddenAct {
    const v = this.raw(key);
    if (typeof v !== 'string') this.fail(key, 'an activation name', v);
    if (!(HIDDEN_ACTS as readonly string[]).includes(v))
      throw new ClipkitError('E_UNSUPPORTED', `Unsupported ${this.prefix}${key} "${v}" in ${this.source}; supported: ${HIDDEN_ACTS.join(', ')}`);
    return v as HiddenAct;
  }
  literal(key: string, allowed: readonly string[]): string {
    const v = this.raw(key);
    if (typeof v !== 'string' || !allowed.includes(v))
      throw new ClipkitError('E_UNSUPPORTED', `Unsupported ${this.prefix}${key} ${kind(v)} in ${this.source}; supported: ${allowed.join(', ')}`);
    return v;
  }
}

/** `hidden_size` must split evenly into heads. */
function checkHeads(source: string, prefix: string, hidden: number, heads: number): void {
  if (hidden % heads !== 0)
    throw configError(source, `${prefix}hidden_size ${hidden} is not divisible by ${prefix}num_attention_heads ${heads}`);
}

/**
 * A sub-config as transformers builds it: `<name>_dict` (legacy configs), when present, replaces
 * `<name>`; a missing section means all defaults.
 */
function section(json: Json, name: string, source: string): Json {
  const legacy = json[`${name}_dict`];
  const v = legacy !== undefined && legacy !== null ? legacy : json[name];
  if (v === undefined || v === null) return {};
  if (!isObject(v)) throw configError(source, `expected an object for ${legacy != null ? name + '_dict' : name} but found ${kind(v)}`);
  return v;
}

function parseVision(json: Json, source: string, defaulted: string[]): VisionConfig {
  const f = new Fields(section(json, 'vision_config', source), 'vision_config.', VISION_DEFAULTS, source, defaulted);
  const v: VisionConfig = {
    hiddenSize: f.int('hidden_size', 1),
    intermediateSize: f.int('intermediate_size', 1),
    numHiddenLayers: f.int('num_hidden_layers', 0),
    numAttentionHeads: f.int('num_attention_heads', 1),
    numChannels: f.int('num_channels', 1),
    imageSize: f.square('image_size'),
    patchSize: f.square('patch_size'),
    hiddenAct: f.act('hidden_act'),
    layerNormEps: f.positive('layer_norm_eps'),
  };
  checkHeads(source, 'vision_config.', v.hiddenSize, v.numAttentionHeads);
  if (v.imageSize % v.patchSize !== 0)
    throw configError(source, `vision_config.image_size ${v.imageSize} is not a multiple of vision_config.patch_size ${v.patchSize}`);
  return v;
}

function parseBertText(json: Json, source: string, defaulted: string[], modelType: 'chinese_clip' | 'altclip' | 'easynlp_clip'): BertTextConfig {
  const altclip = modelType === 'altclip';
  const f = new Fields(section(json, 'text_config', source), 'text_config.', altclip ? ALTCLIP_TEXT_DEFAULTS : BERT_TEXT_DEFAULTS, source, defaulted);
  const t: BertTextConfig = {
    kind: 'bert',
    vocabSize: f.int('vocab_size', 1),
    hiddenSize: f.int('hidden_size', 1),
    intermediateSize: f.int('intermediate_size', 1),
    numHiddenLayers: f.int('num_hidden_layers', 0),
    numAttentionHeads: f.int('num_attention_heads', 1),
    maxPositionEmbeddings: f.int('max_position_embeddings', 1),
    typeVocabSize: f.int('type_vocab_size', 1),
    hiddenAct: f.act('hidden_act'),
    layerNormEps: f.positive('layer_norm_eps'),
    padTokenId: f.int('pad_token_id', 0),
    positionOffset: 0,
    pooling: 'cls',
    pooledSize: 0,
  };
  t.pooledSize = t.hiddenSize;
  if (modelType === 'easynlp_clip') {
    // EasyNLP runs its RobertaModel on a BERT checkpoint: positions cumsum(ids != pad) + pad, a tanh pooler.
    t.positionOffset = t.padTokenId + 1;
    t.pooling = 'tanh';
  }
  if (altclip) {
    t.positionOffset = t.padTokenId + 1;
    t.pooling = 'transformation';
    t.pooledSize = f.int('project_dim', 1);
  }
  if (t.maxPositionEmbeddings <= t.positionOffset)
    throw configError(source, `text_config.max_position_embeddings ${t.maxPositionEmbeddings} leaves no positions after the padding offset ${t.positionOffset}`);
  f.literal('position_embedding_type', ['absolute']);
  checkHeads(source, 'text_config.', t.hiddenSize, t.numAttentionHeads);
  return t;
}

function parseClipText(json: Json, source: string, defaulted: string[]): ClipTextConfig {
  const f = new Fields(section(json, 'text_config', source), 'text_config.', CLIP_TEXT_DEFAULTS, source, defaulted);
  const t: ClipTextConfig = {
    kind: 'clip',
    vocabSize: f.int('vocab_size', 1),
    hiddenSize: f.int('hidden_size', 1),
    intermediateSize: f.int('intermediate_size', 1),
    numHiddenLayers: f.int('num_hidden_layers', 0),
    numAttentionHeads: f.int('num_attention_heads', 1),
    maxPositionEmbeddings: f.int('max_position_embeddings', 1),
    hiddenAct: f.act('hidden_act'),
    layerNormEps: f.positive('layer_norm_eps'),
    padTokenId: f.int('pad_token_id', 0),
    bosTokenId: f.int('bos_token_id', 0),
    eosTokenId: f.int('eos_token_id', 0),
  };
  checkHeads(source, 'text_config.', t.hiddenSize, t.numAttentionHeads);
  return t;
}

/** Parses an already-loaded `config.json`; `source` names it in errors. */
export function parseClipConfig(json: unknown, source: string): ClipConfig {
  if (!isObject(json)) throw configError(source, `expected a JSON object but found ${kind(json)}`);
  const modelType = json.model_type;
  if (modelType === undefined || modelType === null) throw configError(source, 'required field model_type is missing');
  if (typeof modelType !== 'string' || !(MODEL_TYPES as readonly string[]).includes(modelType))
    throw new ClipkitError('E_UNSUPPORTED', `Unsupported model_type ${kind(modelType)} in ${source}; supported: ${MODEL_TYPES.join(', ')}`);
  const defaulted: string[] = [];
  const top = new Fields(json, '', modelType === 'altclip' ? ALTCLIP_TOP_DEFAULTS : TOP_DEFAULTS, source, defaulted);
  const projectionDim = top.int('projection_dim', 1);
  const logitScaleInitValue = top.finite('logit_scale_init_value');
  const vision = parseVision(json, source, defaulted);
  // EasyNLP builds every vision LayerNorm without an eps argument: 1e-5 whatever the config says.
  if (modelType === 'easynlp_clip') vision.layerNormEps = 1e-5;
  const base = { source, projectionDim, logitScaleInitValue, vision, defaulted, projectionBias: modelType === 'easynlp_clip' };
  return modelType === 'clip'
    ? { ...base, modelType, text: parseClipText(json, source, defaulted) }
    : { ...base, modelType: modelType as 'chinese_clip' | 'altclip' | 'easynlp_clip', text: parseBertText(json, source, defaulted, modelType as 'chinese_clip' | 'altclip' | 'easynlp_clip') };
}

/** Reads `config.json` from a model folder, or the given file. */
export function readClipConfig(fileOrDir: string): ClipConfig {
  expectPath('fileOrDir', fileOrDir);
  const file = isDir(fileOrDir) ? path.join(fileOrDir, 'config.json') : fileOrDir;
  return parseClipConfig(readJson(file, 'config'), file);
}

// ----------------------------------------------------------------------------------------------
// preprocessor_config.json

export type ResizeSize = { shortestEdge: number } | { height: number; width: number };

export interface PreprocessConfig {
  source: string;
  /** `image_processor_type` (or legacy `feature_extractor_type`), when the file names one. */
  processorType: string | null;
  doConvertRgb: boolean;
  doResize: boolean;
  /** `{shortestEdge}`: scale the shorter side to it, keeping the aspect ratio; `{height, width}`: exactly. */
  size: ResizeSize;
  /** `resample`, a PIL filter number, by name (RESIZE_FILTERS is in PIL's numbering). */
  resample: ResizeFilter;
  doCenterCrop: boolean;
  cropSize: { height: number; width: number };
  doRescale: boolean;
  rescaleFactor: number;
  doNormalize: boolean;
  mean: [number, number, number];
  std: [number, number, number];
  /** Fields the file left out that took CLIPImageProcessor's defaults. */
  defaulted: string[];
}

// CLIPImageProcessor and ChineseCLIPImageProcessor share these defaults.
const PREPROCESS_DEFAULTS = {
  do_convert_rgb: true, do_resize: true, size: { shortest_edge: 224 }, resample: 3, do_center_crop: true,
  crop_size: { height: 224, width: 224 }, do_rescale: true, rescale_factor: 1 / 255, do_normalize: true,
  image_mean: OPENAI_CLIP_MEAN, image_std: OPENAI_CLIP_STD,
};

/** Parses an already-loaded `preprocessor_config.json`; `source` names it in errors. */
export function parsePreprocessConfig(json: unknown, source: string): PreprocessConfig {
  if (!isObject(json)) throw configError(source, `expected a JSON object but found ${kind(json)}`);
  const defaulted: string[] = [];
  const f: Fields = new Fields(json, '', PREPROCESS_DEFAULTS, source, defaulted);
  const raw = (key: string) => f.raw(key);
  const bool = (key: string): boolean => {
    const v = raw(key);
    if (typeof v !== 'boolean') f.fail(key, 'true or false', v);
    return v;
  };
  const positiveInt = (key: string, v: unknown): number => {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) f.fail(key, 'a positive integer', v);
    return v;
  };

  // size: {shortest_edge} | {height, width} | a legacy int meaning shortest_edge (as transformers reads it).
  const sizeRaw = raw('size');
  let size: ResizeSize;
  if (typeof sizeRaw === 'number') size = { shortestEdge: positiveInt('size', sizeRaw) };
  else if (isObject(sizeRaw) && sizeRaw.shortest_edge !== undefined) {
    if (sizeRaw.longest_edge !== undefined && sizeRaw.longest_edge !== null)
      throw new ClipkitError('E_UNSUPPORTED', `Unsupported size.longest_edge in ${source}; supported: size {shortest_edge} or {height, width}`);
    size = { shortestEdge: positiveInt('size.shortest_edge', sizeRaw.shortest_edge) };
  } else if (isObject(sizeRaw) && (sizeRaw.height !== undefined || sizeRaw.width !== undefined))
    size = { height: positiveInt('size.height', sizeRaw.height), width: positiveInt('size.width', sizeRaw.width) };
  else f.fail('size', '{shortest_edge}, {height, width} or an integer', sizeRaw);

  // crop_size: {height, width} or a legacy int for a square.
  const cropRaw = raw('crop_size');
  let cropSize: { height: number; width: number };
  if (typeof cropRaw === 'number') cropSize = { height: positiveInt('crop_size', cropRaw), width: cropRaw };
  else if (isObject(cropRaw)) cropSize = { height: positiveInt('crop_size.height', cropRaw.height), width: positiveInt('crop_size.width', cropRaw.width) };
  else f.fail('crop_size', '{height, width} or an integer', cropRaw);

  const resampleRaw = raw('resample');
  if (typeof resampleRaw !== 'number' || !Number.isInteger(resampleRaw) || resampleRaw < 0 || resampleRaw >= RESIZE_FILTERS.length)
    f.fail('resample', `a PIL resampling filter 0..${RESIZE_FILTERS.length - 1} (${RESIZE_FILTERS.map((r, i) => `${i} ${r}`).join(', ')})`, resampleRaw);

  const triple = (key: string): [number, number, number] => {
    const v = raw(key);
    if (!Array.isArray(v) || v.length !== 3 || !v.every((x) => typeof x === 'number' && Number.isFinite(x)))
      f.fail(key, 'three finite numbers (one per RGB channel)', v);
    return [v[0], v[1], v[2]];
  };
  const mean = triple('image_mean');
  const std = triple('image_std');
  std.forEach((s, i) => {
    if (!(s > 0)) f.fail(`image_std[${i}]`, 'a positive number', s);
  });

  const type = json.image_processor_type ?? json.feature_extractor_type ?? null;
  return {
    source,
    processorType: typeof type === 'string' ? type : null,
    doConvertRgb: bool('do_convert_rgb'),
    doResize: bool('do_resize'),
    size,
    resample: RESIZE_FILTERS[resampleRaw as number],
    doCenterCrop: bool('do_center_crop'),
    cropSize,
    doRescale: bool('do_rescale'),
    rescaleFactor: f.positive('rescale_factor'),
    doNormalize: bool('do_normalize'),
    mean,
    std,
    defaulted,
  };
}

/** Reads `preprocessor_config.json` from a model folder, or the given file. */
export function readPreprocessConfig(fileOrDir: string): PreprocessConfig {
  expectPath('fileOrDir', fileOrDir);
  const file = isDir(fileOrDir) ? path.join(fileOrDir, 'preprocessor_config.json') : fileOrDir;
  return parsePreprocessConfig(readJson(file, 'preprocessor config'), file);
}

function isDir(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
