/**
 * Infers the Hugging Face `config.json` that a checkpoint's tensor shapes describe, from tensors
 * already under Hugging Face names (layouts.ts renames them).
 */
import { ClipkitError } from '../errors';
import { TensorEntry } from '../io/tensor_entry';

/** The config's model_type: which forward pass the tensors are for. */
export type LayoutModelType = 'clip' | 'chinese_clip' | 'easynlp_clip';

/** What the shapes cannot tell: model names and the activation. */
export interface GeometryOptions {
  /** Vision (and for OpenAI checkpoints, whole-model) name, e.g. `ViT-B-16`; `/` may replace `-`. */
  readonly model?: string;
  /** Chinese-CLIP text tower name, e.g. `RoBERTa-wwm-ext-base-chinese`. */
  readonly text?: string;
  /**
   * Activation of the vision tower and of an OpenAI-style text tower: `quick_gelu` (default; OpenAI
   * CLIP, Chinese-CLIP, open_clip `-quickgelu` models) or `gelu` (open_clip models trained with
   * nn.GELU, such as LAION's). BERT text towers always use `gelu`.
   */
  readonly hiddenAct?: 'quick_gelu' | 'gelu';
}

/** A Hugging Face config.json object (the fields transformers' config classes read). */
export interface HfConfigJson {
  model_type: LayoutModelType;
  projection_dim: number;
  text_config: Record<string, unknown>;
  vision_config: Record<string, unknown>;
  [field: string]: unknown;
}

interface VisionGeometry {
  imageSize: number;
  patchSize: number;
  hiddenSize: number;
  numHiddenLayers: number;
  intermediateSize: number;
  numAttentionHeads: number;
}
interface ClipTextGeometry {
  hiddenSize: number;
  numHiddenLayers: number;
  intermediateSize: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  vocabSize: number;
}
interface BertTextGeometry extends ClipTextGeometry {
  typeVocabSize: number;
}

/** Named vision towers (OpenAI CLIP, open_clip, Chinese-CLIP) with OpenAI's text tower and the projection size. */
const NAMED_MODELS: Record<string, { vision: VisionGeometry; text: Omit<ClipTextGeometry, 'vocabSize' | 'maxPositionEmbeddings'>; projectionDim: number }> = {
  'ViT-B-32': {
    vision: { imageSize: 224, patchSize: 32, hiddenSize: 768, numHiddenLayers: 12, intermediateSize: 3072, numAttentionHeads: 12 },
    text: { hiddenSize: 512, numHiddenLayers: 12, intermediateSize: 2048, numAttentionHeads: 8 },
    projectionDim: 512,
  },
  'ViT-B-16': {
    vision: { imageSize: 224, patchSize: 16, hiddenSize: 768, numHiddenLayers: 12, intermediateSize: 3072, numAttentionHeads: 12 },
    text: { hiddenSize: 512, numHiddenLayers: 12, intermediateSize: 2048, numAttentionHeads: 8 },
    projectionDim: 512,
  },
  'ViT-L-14': {
    vision: { imageSize: 224, patchSize: 14, hiddenSize: 1024, numHiddenLayers: 24, intermediateSize: 4096, numAttentionHeads: 16 },
    text: { hiddenSize: 768, numHiddenLayers: 12, intermediateSize: 3072, numAttentionHeads: 12 },
    projectionDim: 768,
  },
  'ViT-L-14-336': {
    vision: { imageSize: 336, patchSize: 14, hiddenSize: 1024, numHiddenLayers: 24, intermediateSize: 4096, numAttentionHeads: 16 },
    text: { hiddenSize: 768, numHiddenLayers: 12, intermediateSize: 3072, numAttentionHeads: 12 },
    projectionDim: 768,
  },
  'ViT-H-14': {
    vision: { imageSize: 224, patchSize: 14, hiddenSize: 1280, numHiddenLayers: 32, intermediateSize: 5120, numAttentionHeads: 16 },
    text: { hiddenSize: 1024, numHiddenLayers: 24, intermediateSize: 4096, numAttentionHeads: 16 },
    projectionDim: 1024,
  },
};
/** Chinese-CLIP's BERT text towers (cn_clip/clip/model_configs/*.json). */
const NAMED_TEXT: Record<string, BertTextGeometry> = {
  'RoBERTa-wwm-ext-base-chinese': { hiddenSize: 768, numHiddenLayers: 12, intermediateSize: 3072, numAttentionHeads: 12, maxPositionEmbeddings: 512, vocabSize: 21128, typeVocabSize: 2 },
  'RoBERTa-wwm-ext-large-chinese': { hiddenSize: 1024, numHiddenLayers: 24, intermediateSize: 4096, numAttentionHeads: 16, maxPositionEmbeddings: 512, vocabSize: 21128, typeVocabSize: 2 },
  'RBT3-chinese': { hiddenSize: 768, numHiddenLayers: 3, intermediateSize: 3072, numAttentionHeads: 12, maxPositionEmbeddings: 512, vocabSize: 21128, typeVocabSize: 2 },
};
/** Vision widths whose heads are not 64 wide (open_clip ViT-H / ViT-g / ViT-bigG). */
const WIDE_HEAD_VISION: Record<number, number> = { 1280: 16, 1408: 16, 1664: 16 };

/**
 * The config of a checkpoint's tensors. Layers are counted from the blocks; widths, MLP sizes,
 * patch size, image size (from the number of positions), context length, vocabulary, token types
 * and projection size are read from shapes. Heads cannot be seen in shapes: they are width / 64,
 * except the vision widths of WIDE_HEAD_VISION; a model name gives the heads and must agree with
 * every shape. LayerNorm eps is fixed by the family: 1e-5 for vision and OpenAI text, 1e-12 for the
 * BERT text towers (which always use erf GELU). The activation of the ViT and OpenAI text towers
 * cannot be seen in the weights: OpenAI's and Chinese-CLIP's models use quick_gelu (the default),
 * while open_clip models trained by LAION (e.g. ViT-H-14 laion2b) use erf GELU, which
 * `hiddenAct: 'gelu'` selects (open_clip's model config says `quick_gelu: false`).
 *
 * Errors: E_WEIGHTS for tensors the geometry needs but `t` lacks, E_SHAPE for shapes that disagree
 * with each other or with the named model, E_ARG for unknown names, E_UNSUPPORTED for a patch that
 * is not square or heads that cannot be inferred.
 */
export function inferConfig(t: ReadonlyMap<string, TensorEntry>, modelType: LayoutModelType, options: GeometryOptions, source: string): HfConfigJson {
  const s = new Shapes(t, source);
  const act = options.hiddenAct ?? 'quick_gelu';
  if (act !== 'quick_gelu' && act !== 'gelu') throw new ClipkitError('E_ARG', `Expected hiddenAct 'quick_gelu' or 'gelu' but received ${JSON.stringify(act)}`);
  let vision = inferVision(s);
  const named = options.model ? canonicalName(options.model, Object.keys(NAMED_MODELS), 'model name') : undefined;
  if (named) {
    vision = applyName(vision, NAMED_MODELS[named].vision, named, source, (k) => `vision ${snake(k)}`);
    if (vision.projectionDim !== NAMED_MODELS[named].projectionDim)
      throw new ClipkitError('E_SHAPE', `${source} does not match ${named}: its projection size is ${vision.projectionDim} but ${named} has ${NAMED_MODELS[named].projectionDim}`);
  }
  if (modelType === 'clip') {
    if (options.text) throw new ClipkitError('E_ARG', `A text tower name (${JSON.stringify(options.text)}) applies to Chinese-CLIP checkpoints only; ${source} has an OpenAI CLIP text tower`);
    let text = inferClipText(s);
    if (named) text = applyName(text, NAMED_MODELS[named].text, named, source, (k) => `text ${snake(k)}`);
    return clipConfig(vision, text, projectionDim(vision.projectionDim, text.projectionDim, source), torchDType(t), act);
  }
  let text = inferBertText(s);
  if (options.text) {
    const textName = canonicalName(options.text, Object.keys(NAMED_TEXT), 'text tower name');
    text = applyName(text, NAMED_TEXT[textName], textName, source, (k) => `text ${snake(k)}`);
  }
  return bertConfig(modelType, vision, text, projectionDim(vision.projectionDim, text.projectionDim, source), torchDType(t), act);
}

/** Shape lookups that name the checkpoint and the tensor when something is missing or misshaped. */
class Shapes {
  constructor(private readonly t: ReadonlyMap<string, TensorEntry>, readonly source: string) {}

  get(name: string, rank: number, why: string): readonly number[] {
    const e = this.t.get(name);
    if (!e) throw new ClipkitError('E_WEIGHTS', `${this.source} lacks ${name}, which gives the ${why}`);
    if (e.shape.length !== rank) throw new ClipkitError('E_SHAPE', `${this.source}: ${name} must have ${rank} dimensions but has shape [${e.shape.join(', ')}]`);
    return e.shape;
  }
  /** Number of blocks `<prefix>N.` for N = 0, 1, ...; a gap is an error. */
  layers(prefix: string): number {
    const seen = new Set<number>();
    for (const name of this.t.keys()) {
      const m = name.startsWith(prefix) ? /^(0|[1-9]\d*)\./.exec(name.slice(prefix.length)) : null;
      if (m) seen.add(Number(m[1]));
    }
    for (let i = 0; i < seen.size; i++)
      if (!seen.has(i)) throw new ClipkitError('E_WEIGHTS', `${this.source} has blocks ${prefix}{${[...seen].sort((a, b) => a - b).join(',')}} but lacks block ${i}`);
    return seen.size;
  }
  same(what: string, values: [string, number][]): number {
    const [first] = values;
    for (const [name, v] of values)
      if (v !== first[1]) throw new ClipkitError('E_SHAPE', `${this.source}: ${what} disagrees between ${first[0]} (${first[1]}) and ${name} (${v})`);
    return first[1];
  }
}

function inferVision(s: Shapes): VisionGeometry & { numChannels: number; projectionDim: number } {
  const patch = s.get('vision_model.embeddings.patch_embedding.weight', 4, 'vision width and patch size');
  const positions = s.get('vision_model.embeddings.position_embedding.weight', 2, 'image size');
  const projection = s.get('visual_projection.weight', 2, 'projection size');
  const hiddenSize = s.same('the vision width', [
    ['vision_model.embeddings.patch_embedding.weight', patch[0]],
    ['vision_model.embeddings.position_embedding.weight', positions[1]],
    ['visual_projection.weight', projection[1]],
  ]);
  if (patch[2] !== patch[3]) throw new ClipkitError('E_UNSUPPORTED', `${s.source}: patch ${patch[2]}x${patch[3]} is not square`);
  const grid = Math.round(Math.sqrt(positions[0] - 1));
  if (grid * grid + 1 !== positions[0])
    throw new ClipkitError('E_SHAPE', `${s.source}: ${positions[0]} vision positions are not a square grid plus a class token`);
  const numHiddenLayers = s.layers('vision_model.encoder.layers.');
  const intermediateSize = numHiddenLayers ? s.get('vision_model.encoder.layers.0.mlp.fc1.weight', 2, 'vision MLP size')[0] : 4 * hiddenSize;
  return {
    imageSize: grid * patch[2],
    patchSize: patch[2],
    hiddenSize,
    numHiddenLayers,
    intermediateSize,
    numAttentionHeads: WIDE_HEAD_VISION[hiddenSize] ?? headsOf(hiddenSize, 'vision', s.source),
    numChannels: patch[1],
    projectionDim: projection[0],
  };
}

/**
 * What the two text towers read alike. Every embedding ([rows, width], `[name, what it gives]`)
 * and the projection must agree on the width; the blocks `<layers>N.` give the depth and the first
 * block's `mlp` weight the MLP size. `rows` holds each embedding's first dimension, in order.
 */
function inferText(s: Shapes, embeddings: readonly (readonly [string, string])[], layers: string, mlp: string) {
  const shapes = embeddings.map(([name, why]) => s.get(name, 2, why));
  const projection = s.get('text_projection.weight', 2, 'projection size');
  const hiddenSize = s.same('the text width', [
    ...embeddings.map(([name], i): [string, number] => [name, shapes[i][1]]),
    ['text_projection.weight', projection[1]],
  ]);
  const numHiddenLayers = s.layers(layers);
  return {
    rows: shapes.map((shape) => shape[0]),
    hiddenSize,
    numHiddenLayers,
    intermediateSize: numHiddenLayers ? s.get(`${layers}0.${mlp}`, 2, 'text MLP size')[0] : 4 * hiddenSize,
    numAttentionHeads: headsOf(hiddenSize, 'text', s.source),
    projectionDim: projection[0],
  };
}

const CLIP_TEXT_EMBEDDINGS = [
  ['text_model.embeddings.token_embedding.weight', 'vocabulary and text width'],
  ['text_model.embeddings.position_embedding.weight', 'context length'],
] as const;
const BERT_TEXT_EMBEDDINGS = [
  ['text_model.embeddings.word_embeddings.weight', 'vocabulary and text width'],
  ['text_model.embeddings.position_embeddings.weight', 'number of positions'],
  ['text_model.embeddings.token_type_embeddings.weight', 'number of token types'],
] as const;

function inferClipText(s: Shapes): ClipTextGeometry & { projectionDim: number } {
  const { rows, projectionDim, ...tower } = inferText(s, CLIP_TEXT_EMBEDDINGS, 'text_model.encoder.layers.', 'mlp.fc1.weight');
  const [vocabSize, maxPositionEmbeddings] = rows;
  return { ...tower, maxPositionEmbeddings, vocabSize, projectionDim };
}

function inferBertText(s: Shapes): BertTextGeometry & { projectionDim: number } {
  const { rows, projectionDim, ...tower } = inferText(s, BERT_TEXT_EMBEDDINGS, 'text_model.encoder.layer.', 'intermediate.dense.weight');
  const [vocabSize, maxPositionEmbeddings, typeVocabSize] = rows;
  return { ...tower, maxPositionEmbeddings, vocabSize, typeVocabSize, projectionDim };
}

function headsOf(width: number, tower: string, source: string): number {
  if (width % 64 !== 0)
    throw new ClipkitError('E_UNSUPPORTED', `${source}: cannot infer the ${tower} heads of width ${width} (not a multiple of 64); give the model name`);
  return width / 64;
}

function canonicalName(name: string, known: readonly string[], what: string): string {
  const key = name.replace(/\//g, '-').toLowerCase();
  const hit = known.find((k) => k.toLowerCase() === key);
  if (!hit) throw new ClipkitError('E_ARG', `Unknown ${what} ${JSON.stringify(name)}; known: ${known.join(', ')}`);
  return hit;
}

/** Replaces the inferred heads by the named ones after checking every other field against the name. */
function applyName<G extends object>(inferred: G, named: Partial<G>, label: string, source: string, field: (k: string) => string): G {
  const out = { ...inferred };
  for (const [k, want] of Object.entries(named) as [keyof G & string, unknown][]) {
    if (k === 'numAttentionHeads') continue;
    if (inferred[k] !== want)
      throw new ClipkitError('E_SHAPE', `${source} does not match ${label}: its ${field(k)} is ${String(inferred[k])} but ${label} has ${String(want)}`);
  }
  if ('numAttentionHeads' in named) (out as Record<string, unknown>).numAttentionHeads = (named as Record<string, unknown>).numAttentionHeads;
  return out;
}

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());

function projectionDim(vision: number, text: number, source: string): number {
  if (vision !== text) throw new ClipkitError('E_SHAPE', `${source}: the image projection gives ${vision} dimensions but the text projection ${text}`);
  return vision;
}

/** The float dtype most tensors have, as transformers writes torch_dtype. */
function torchDType(t: ReadonlyMap<string, TensorEntry>): string {
  const counts = new Map<string, number>();
  for (const e of t.values()) if (e.dtype === 'F32' || e.dtype === 'F16' || e.dtype === 'BF16') counts.set(e.dtype, (counts.get(e.dtype) ?? 0) + 1);
  const top = [...counts].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'F32';
  return { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[top as 'F32' | 'F16' | 'BF16'];
}

function visionConfig(v: ReturnType<typeof inferVision>, modelType: string, projection: number | undefined, act: string): Record<string, unknown> {
  return {
    model_type: modelType,
    hidden_size: v.hiddenSize,
    intermediate_size: v.intermediateSize,
    ...(projection !== undefined ? { projection_dim: projection } : {}),
    num_hidden_layers: v.numHiddenLayers,
    num_attention_heads: v.numAttentionHeads,
    num_channels: v.numChannels,
    image_size: v.imageSize,
    patch_size: v.patchSize,
    hidden_act: act,
    layer_norm_eps: 1e-5,
    attention_dropout: 0.0,
    initializer_range: 0.02,
    initializer_factor: 1.0,
  };
}

function clipConfig(vision: ReturnType<typeof inferVision>, text: ClipTextGeometry, projection: number, dtype: string, act: string): HfConfigJson {
  return {
    architectures: ['CLIPModel'],
    model_type: 'clip',
    projection_dim: projection,
    logit_scale_init_value: 2.6592,
    initializer_factor: 1.0,
    torch_dtype: dtype,
    text_config: {
      model_type: 'clip_text_model',
      vocab_size: text.vocabSize,
      hidden_size: text.hiddenSize,
      intermediate_size: text.intermediateSize,
      projection_dim: projection,
      num_hidden_layers: text.numHiddenLayers,
      num_attention_heads: text.numAttentionHeads,
      max_position_embeddings: text.maxPositionEmbeddings,
      hidden_act: act,
      layer_norm_eps: 1e-5,
      attention_dropout: 0.0,
      initializer_range: 0.02,
      initializer_factor: 1.0,
      pad_token_id: 1,
      bos_token_id: 49406,
      eos_token_id: 49407,
    },
    vision_config: visionConfig(vision, 'clip_vision_model', projection, act),
  };
}

function bertConfig(
  modelType: 'chinese_clip' | 'easynlp_clip',
  vision: ReturnType<typeof inferVision>,
  text: BertTextGeometry,
  projection: number,
  dtype: string,
  act: string,
): HfConfigJson {
  const chinese = modelType === 'chinese_clip';
  return {
    architectures: [chinese ? 'ChineseCLIPModel' : 'EasyNLPCLIPModel'],
    model_type: modelType,
    projection_dim: projection,
    logit_scale_init_value: 2.6592,
    initializer_factor: 1.0,
    torch_dtype: dtype,
    text_config: {
      model_type: chinese ? 'chinese_clip_text_model' : 'easynlp_clip_text_model',
      vocab_size: text.vocabSize,
      hidden_size: text.hiddenSize,
      num_hidden_layers: text.numHiddenLayers,
      num_attention_heads: text.numAttentionHeads,
      intermediate_size: text.intermediateSize,
      hidden_act: 'gelu',
      hidden_dropout_prob: 0.1,
      attention_probs_dropout_prob: 0.1,
      max_position_embeddings: text.maxPositionEmbeddings,
      type_vocab_size: text.typeVocabSize,
      initializer_range: 0.02,
      initializer_factor: 1.0,
      layer_norm_eps: 1e-12,
      pad_token_id: 0,
      position_embedding_type: 'absolute',
      use_cache: true,
    },
    vision_config: visionConfig(vision, chinese ? 'chinese_clip_vision_model' : 'clip_vision_model', chinese ? projection : undefined, act),
  };
}
