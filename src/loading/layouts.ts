/**
 * Checkpoint layouts: renames the tensors of an original CLIP checkpoint to Hugging Face names, and
 * infers the `config.json` their shapes describe (infer_geometry.ts). A pure function of the tensor
 * map: nothing is read or copied; renamed tensors are the same entries, and transposes and q/k/v
 * row blocks are lazy views (tensor_entry.ts) computed on first use.
 */
import { ClipkitError } from '../errors';
import { TensorEntry, constantF32, elementCount, rowBlock, transposed, viewAs } from '../io/tensor_entry';
import { GeometryOptions, HfConfigJson, LayoutModelType, inferConfig } from './infer_geometry';

/**
 * Where a checkpoint comes from (an optional `module.` DataParallel prefix, and EasyNLP's
 * `open_clip.` / `chinese_clip.` prefixes, are removed first):
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
 */
export type CheckpointLayout = 'openai' | 'chinese_clip' | 'hf' | 'easynlp';

export interface LayoutOptions extends GeometryOptions {
  /** Names the checkpoint in error messages. */
  readonly source?: string;
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

/**
 * Maps a checkpoint's tensors to Hugging Face names and infers their config. In every layout
 * `logit_scale` is a scalar (shape [], as Hugging Face keeps it) even where the file stores shape
 * [1]; the original `in_proj_weight` [3W, W] becomes q/k/v rows [0, W), [W, 2W), [2W, 3W);
 * `visual.proj` [W, E] and `text_projection` [Wt, E] become their transposes [E, W]. Buffers
 * (`*.position_ids`) and tensors no layout rule names are listed in `unused`.
 *
 * Errors: E_UNSUPPORTED for layouts not recognised (ResNet towers included), E_SHAPE for a
 * `logit_scale` or packed q/k/v tensor of the wrong shape, E_FORMAT for two tensors that map to one
 * name, and those of inferConfig.
 */
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
