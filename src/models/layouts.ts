/**
 * Checkpoint layouts: maps the tensors of an original CLIP checkpoint to Hugging Face names and
 * infers the Hugging Face `config.json` its shapes describe. A pure function of the tensor map:
 * nothing is read or copied; renamed tensors are the same entries, transposes and q/k/v row blocks
 * are lazy views (tensor_entry.ts) computed on first use.
 *
 * Layouts (an optional `module.` DataParallel prefix, and EasyNLP's `open_clip.` / `chinese_clip.`
 * prefixes, are removed first):
 * - `openai`: OpenAI CLIP / open_clip state dicts (`visual.conv1.weight`,
 *   `transformer.resblocks.N.attn.in_proj_weight`, `token_embedding.weight`, ...) → CLIPModel names.
 * - `chinese_clip`: cn_clip's CLIP (`visual.*` as OpenAI, `bert.*` → `text_model.*`, `bert.pooler.*`
 *   dropped) → ChineseCLIPModel names.
 * - `hf`: Hugging Face CLIPModel / ChineseCLIPModel names already; passed through.
 * - `easynlp`: EasyNLP's "huggingface_clip" CLIPApp (`text_encoder.*`, `vision_encoder.vision_model.*`,
 *   `text_projection` / `vision_projection` with biases) → ChineseCLIPModel names plus
 *   `text_model.pooler.dense.{weight,bias}`, `text_projection.bias` and `visual_projection.bias`;
 *   config `model_type` "easynlp_clip" (its text tower numbers positions from pad id 0, RoBERTa
 *   style, pools with tanh(pooler.dense(x[:, 0])) and both projections have biases).
 * In every layout `logit_scale` is a scalar (shape [], as Hugging Face keeps it) even where the file
 * stores shape [1]; the original `in_proj_weight` [3W, W] becomes q/k/v rows [0, W), [W, 2W),
 * [2W, 3W); `visual.proj` [W, E] and `text_projection` [Wt, E] become their transposes [E, W].
 * Buffers (`*.position_ids`) and tensors no layout rule names are listed in `unused`.
 *
 * Geometry comes from shapes: layers by counting blocks, widths, MLP sizes, patch size from the
 * patch conv, image size from the number of positions, context length, vocabulary, token types,
 * projection size. Heads cannot be seen in shapes: they are width / 64, except vision widths 1280,
 * 1408 and 1664 (open_clip's ViT-H, ViT-g and ViT-bigG, head width 80 / 88 / 104), which have 16.
 * A model name (ViT-B-32, ViT-B-16, ViT-L-14, ViT-L-14-336, ViT-H-14; RoBERTa-wwm-ext-base-chinese,
 * RoBERTa-wwm-ext-large-chinese, RBT3-chinese for Chinese-CLIP text) gives the heads and must agree
 * with every shape. LayerNorm eps is fixed by the family: 1e-5 for vision and OpenAI text, 1e-12 for
 * the BERT text towers (which always use erf GELU). The activation of the ViT and OpenAI text towers
 * cannot be seen in the weights: OpenAI's and Chinese-CLIP's models use quick_gelu (the default),
 * while open_clip models trained by LAION (e.g. ViT-H-14 laion2b) use erf GELU: pass
 * `hiddenAct: 'gelu'` for those (open_clip's model config says `quick_gelu: false`).
 *
 * Errors: E_UNSUPPORTED for layouts not recognised (ResNet towers included), E_WEIGHTS for tensors
 * the geometry needs but the checkpoint lacks, E_SHAPE for shapes that disagree with each other or
 * with the named model, E_ARG for unknown model names.
 */
import { ClipkitError } from '../errors';
import { TensorEntry, constantF32, elementCount, rowBlock, transposed, viewAs } from '../io/tensor_entry';

export type CheckpointLayout = 'openai' | 'chinese_clip' | 'hf' | 'easynlp';
/** The config's model_type: which forward pass the tensors are for. */
export type LayoutModelType = 'clip' | 'chinese_clip' | 'easynlp_clip';

export interface LayoutOptions {
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
  /** Names the checkpoint in error messages. */
  readonly source?: string;
}

/** A Hugging Face config.json object (the fields transformers' config classes read). */
export interface HfConfigJson {
  model_type: LayoutModelType;
  projection_dim: number;
  text_config: Record<string, unknown>;
  vision_config: Record<string, unknown>;
  [field: string]: unknown;
}

export interface HfCheckpoint {
  readonly layout: CheckpointLayout;
  /** The prefix removed from every name ('' when none). */
  readonly prefix: string;
  readonly config: HfConfigJson;
  /** Tensors under Hugging Face names. */
  readonly tensors: Map<string, TensorEntry>;
  /** Names of the input that map to nothing (buffers, poolers the model drops, unknown keys), sorted. */
  readonly unused: string[];
}

/** The value of logit_scale EasyNLP's CLIPApp uses when a checkpoint has none: log(1 / 0.07). */
export const EASYNLP_DEFAULT_LOGIT_SCALE = Math.log(1 / 0.07);

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
interface BertTextGeometry {
  hiddenSize: number;
  numHiddenLayers: number;
  intermediateSize: number;
  numAttentionHeads: number;
  maxPositionEmbeddings: number;
  vocabSize: number;
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

/** Prefixes removed before matching, longest first. */
const PREFIXES = ['module.open_clip.', 'module.chinese_clip.', 'open_clip.', 'chinese_clip.', 'module.', ''];

/** Which layout a set of names is in, and the prefix every relevant name carries. */
export function detectLayout(names: Iterable<string>, source = 'checkpoint'): { layout: CheckpointLayout; prefix: string } {
  const set = new Set(names);
  for (const prefix of PREFIXES) {
    const has = (n: string) => set.has(prefix + n);
    if (has('visual.layer1.0.conv1.weight') || has('visual.attnpool.c_proj.weight'))
      throw new ClipkitError('E_UNSUPPORTED', `${source} has a ResNet image tower (visual.layer1..., as in RN50); clipkit supports ViT towers only`);
    if (has('visual.conv1.weight') && has('bert.embeddings.word_embeddings.weight')) return { layout: 'chinese_clip', prefix };
    if (has('visual.conv1.weight') && has('token_embedding.weight')) return { layout: 'openai', prefix };
    if (has('vision_encoder.vision_model.embeddings.patch_embedding.weight')) return { layout: 'easynlp', prefix };
    if (has('vision_model.embeddings.patch_embedding.weight')) return { layout: 'hf', prefix };
  }
  const sample = [...set].slice(0, 5).map((n) => JSON.stringify(n)).join(', ');
  throw new ClipkitError(
    'E_UNSUPPORTED',
    `${source} is not in a CLIP layout clipkit knows (OpenAI / open_clip, Chinese-CLIP, EasyNLP or Hugging Face names); its first names are ${sample || '(none)'}`,
  );
}

/** Maps a checkpoint's tensors to Hugging Face names and infers their config (see the file comment). */
export function toHfLayout(tensors: ReadonlyMap<string, TensorEntry>, options: LayoutOptions = {}): HfCheckpoint {
  const source = options.source ?? 'checkpoint';
  const { layout, prefix } = detectLayout(tensors.keys(), source);
  const out = new Map<string, TensorEntry>();
  const unused: string[] = [];
  for (const [name, entry] of tensors) {
    if (!name.startsWith(prefix)) {
      unused.push(name);
      continue;
    }
    const mapped = mapName(layout, name.slice(prefix.length), entry, source);
    if (mapped.length === 0) unused.push(name);
    for (const e of mapped) {
      if (out.has(e.name)) throw new ClipkitError('E_FORMAT', `${source}: two tensors map to ${e.name} (the second is ${JSON.stringify(name)})`);
      out.set(e.name, e);
    }
  }
  const modelType: LayoutModelType =
    layout === 'openai' ? 'clip' : layout === 'chinese_clip' ? 'chinese_clip' : layout === 'easynlp' ? 'easynlp_clip' : hfModelType(out, source);
  if (layout === 'easynlp' && !out.has('logit_scale')) out.set('logit_scale', constantF32('logit_scale', [], [EASYNLP_DEFAULT_LOGIT_SCALE]));
  const config = inferConfig(out, modelType, options, source);
  return { layout, prefix, config, tensors: out, unused: unused.sort() };
}

// ---------------------------------------------------------------------------------------------
// Names

/** The Hugging Face entries one original tensor becomes (none: unused). */
function mapName(layout: CheckpointLayout, name: string, e: TensorEntry, source: string): TensorEntry[] {
  if (name === 'logit_scale') return [scalar(e, source)];
  if (name.endsWith('.position_ids') && layout !== 'hf') return [];
  switch (layout) {
    case 'hf':
      return [e];
    case 'openai':
      return mapVisual(name, e, source) ?? mapOpenAiText(name, e, source) ?? [];
    case 'chinese_clip': {
      const visual = mapVisual(name, e, source);
      if (visual) return visual;
      if (name === 'text_projection') return [transposed(e, 'text_projection.weight', source)];
      if (name.startsWith('bert.pooler.') || !name.startsWith('bert.')) return [];
      return [viewAs(e, 'text_model.' + name.slice('bert.'.length), e.shape, source)];
    }
    case 'easynlp': {
      const text = /^text_encoder\.(?:roberta\.)?((?:embeddings|encoder|pooler)\..+)$/.exec(name);
      if (text) return [viewAs(e, `text_model.${text[1]}`, e.shape, source)];
      if (name.startsWith('vision_encoder.vision_model.')) return [viewAs(e, name.slice('vision_encoder.'.length), e.shape, source)];
      if (name === 'text_projection.weight' || name === 'text_projection.bias') return [e];
      if (name === 'vision_projection.weight' || name === 'vision_projection.bias') return [viewAs(e, name.replace('vision_', 'visual_'), e.shape, source)];
      return [];
    }
  }
}

/** `logit_scale` as a scalar (files often store shape [1]). */
function scalar(e: TensorEntry, source: string): TensorEntry {
  if (elementCount(e.shape) !== 1) throw new ClipkitError('E_SHAPE', `${source}: logit_scale must hold one value but its shape is [${e.shape.join(', ')}]`);
  return viewAs(e, 'logit_scale', [], source);
}

const VISUAL_RENAMES: [RegExp, string][] = [
  [/^visual\.class_embedding$/, 'vision_model.embeddings.class_embedding'],
  [/^visual\.positional_embedding$/, 'vision_model.embeddings.position_embedding.weight'],
  [/^visual\.conv1\.weight$/, 'vision_model.embeddings.patch_embedding.weight'],
  [/^visual\.ln_pre\.(weight|bias)$/, 'vision_model.pre_layrnorm.$1'], // sic: transformers' spelling
  [/^visual\.ln_post\.(weight|bias)$/, 'vision_model.post_layernorm.$1'],
];
const TEXT_RENAMES: [RegExp, string][] = [
  [/^token_embedding\.weight$/, 'text_model.embeddings.token_embedding.weight'],
  [/^positional_embedding$/, 'text_model.embeddings.position_embedding.weight'],
  [/^ln_final\.(weight|bias)$/, 'text_model.final_layer_norm.$1'],
];
/** One residual attention block's parameters, OpenAI names → CLIPEncoderLayer names. */
const BLOCK_RENAMES: [RegExp, string][] = [
  [/^attn\.out_proj\.(weight|bias)$/, 'self_attn.out_proj.$1'],
  [/^ln_1\.(weight|bias)$/, 'layer_norm1.$1'],
  [/^ln_2\.(weight|bias)$/, 'layer_norm2.$1'],
  [/^mlp\.c_fc\.(weight|bias)$/, 'mlp.fc1.$1'],
  [/^mlp\.c_proj\.(weight|bias)$/, 'mlp.fc2.$1'],
];

function rename(rules: [RegExp, string][], name: string): string | undefined {
  for (const [re, to] of rules) if (re.test(name)) return name.replace(re, to);
  return undefined;
}

function mapVisual(name: string, e: TensorEntry, source: string): TensorEntry[] | undefined {
  if (name === 'visual.proj') return [transposed(e, 'visual_projection.weight', source)];
  const to = rename(VISUAL_RENAMES, name);
  if (to) return [viewAs(e, to, e.shape, source)];
  const block = /^visual\.transformer\.resblocks\.(\d+)\.(.+)$/.exec(name);
  return block ? mapBlock(`vision_model.encoder.layers.${block[1]}.`, block[2], e, source) : undefined;
}

function mapOpenAiText(name: string, e: TensorEntry, source: string): TensorEntry[] | undefined {
  if (name === 'text_projection') return [transposed(e, 'text_projection.weight', source)];
  const to = rename(TEXT_RENAMES, name);
  if (to) return [viewAs(e, to, e.shape, source)];
  const block = /^transformer\.resblocks\.(\d+)\.(.+)$/.exec(name);
  return block ? mapBlock(`text_model.encoder.layers.${block[1]}.`, block[2], e, source) : undefined;
}

function mapBlock(to: string, part: string, e: TensorEntry, source: string): TensorEntry[] {
  const packed = /^attn\.in_proj_(weight|bias)$/.exec(part);
  if (packed) {
    // nn.MultiheadAttention packs q, k and v as three row blocks of in_proj_weight [3W, W] / in_proj_bias [3W].
    const rows = e.shape[0];
    const rank = packed[1] === 'weight' ? 2 : 1;
    if (e.shape.length !== rank || rows % 3 !== 0 || (rank === 2 && rows !== 3 * e.shape[1]))
      throw new ClipkitError('E_SHAPE', `${source}: ${e.name} must have shape [3W${rank === 2 ? ', W' : ''}] but has [${e.shape.join(', ')}]`);
    const w = rows / 3;
    return ['q', 'k', 'v'].map((p, i) => rowBlock(e, i * w, w, `${to}self_attn.${p}_proj.${packed[1]}`, source));
  }
  const renamed = rename(BLOCK_RENAMES, part);
  return renamed ? [viewAs(e, to + renamed, e.shape, source)] : [];
}

function hfModelType(t: ReadonlyMap<string, TensorEntry>, source: string): LayoutModelType {
  if (t.has('text_model.embeddings.token_embedding.weight')) return 'clip';
  if (t.has('text_model.embeddings.word_embeddings.weight')) return 'chinese_clip';
  const roberta = [...t.keys()].some((n) => n.startsWith('text_model.roberta.'));
  throw new ClipkitError(
    'E_UNSUPPORTED',
    `${source} has Hugging Face names but ${roberta ? 'an AltCLIP (XLM-R) text tower' : 'no text tower clipkit knows'}; its config cannot be inferred from shapes (use the model's config.json)`,
  );
}

// ---------------------------------------------------------------------------------------------
// Geometry

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

function inferClipText(s: Shapes): ClipTextGeometry & { projectionDim: number } {
  const tokens = s.get('text_model.embeddings.token_embedding.weight', 2, 'vocabulary and text width');
  const positions = s.get('text_model.embeddings.position_embedding.weight', 2, 'context length');
  const projection = s.get('text_projection.weight', 2, 'projection size');
  const hiddenSize = s.same('the text width', [
    ['text_model.embeddings.token_embedding.weight', tokens[1]],
    ['text_model.embeddings.position_embedding.weight', positions[1]],
    ['text_projection.weight', projection[1]],
  ]);
  const numHiddenLayers = s.layers('text_model.encoder.layers.');
  return {
    hiddenSize,
    numHiddenLayers,
    intermediateSize: numHiddenLayers ? s.get('text_model.encoder.layers.0.mlp.fc1.weight', 2, 'text MLP size')[0] : 4 * hiddenSize,
    numAttentionHeads: headsOf(hiddenSize, 'text', s.source),
    maxPositionEmbeddings: positions[0],
    vocabSize: tokens[0],
    projectionDim: projection[0],
  };
}

function inferBertText(s: Shapes): BertTextGeometry & { projectionDim: number } {
  const words = s.get('text_model.embeddings.word_embeddings.weight', 2, 'vocabulary and text width');
  const positions = s.get('text_model.embeddings.position_embeddings.weight', 2, 'number of positions');
  const types = s.get('text_model.embeddings.token_type_embeddings.weight', 2, 'number of token types');
  const projection = s.get('text_projection.weight', 2, 'projection size');
  const hiddenSize = s.same('the text width', [
    ['text_model.embeddings.word_embeddings.weight', words[1]],
    ['text_model.embeddings.position_embeddings.weight', positions[1]],
    ['text_model.embeddings.token_type_embeddings.weight', types[1]],
    ['text_projection.weight', projection[1]],
  ]);
  const numHiddenLayers = s.layers('text_model.encoder.layer.');
  return {
    hiddenSize,
    numHiddenLayers,
    intermediateSize: numHiddenLayers ? s.get('text_model.encoder.layer.0.intermediate.dense.weight', 2, 'text MLP size')[0] : 4 * hiddenSize,
    numAttentionHeads: headsOf(hiddenSize, 'text', s.source),
    maxPositionEmbeddings: positions[0],
    vocabSize: words[0],
    typeVocabSize: types[0],
    projectionDim: projection[0],
  };
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

function inferConfig(t: ReadonlyMap<string, TensorEntry>, modelType: LayoutModelType, options: LayoutOptions, source: string): HfConfigJson {
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
