/**
 * A model folder's weights (`model.safetensors` or `pytorch_model.bin`, or the shards of their
 * index, read by read_weights.ts), checked against its config: every Hugging Face parameter that
 * ChineseCLIPModel / CLIPModel / AltCLIPModel has for that geometry must be present with its exact
 * shape. The result is typed, float32 tensors, grouped the way the towers use them. Tensors the
 * model does not use (e.g. `position_ids` buffers of older checkpoints) are ignored and listed in
 * `unexpected`.
 */
import { ClipkitError } from '../errors';
import { expectPath } from '../check';
import { TensorEntry } from '../io/tensor_entry';
import { Tensor } from '../tensor';
import { BertTextConfig, ClipConfig, ClipTextConfig, readClipConfig, VisionConfig } from './config';
import { readWeights } from './read_weights';

/** y = x·weightᵀ + bias. weight [out, in], bias [out]. */
export interface Linear {
  weight: Tensor;
  bias: Tensor;
}
/** LayerNorm scale and shift, each [dim]. */
export interface Norm {
  weight: Tensor;
  bias: Tensor;
}
/** Pre-LayerNorm transformer layer (ViT and CLIP text): x += out(MHA(ln1 x)); x += fc2(act(fc1(ln2 x))). */
export interface PreNormLayer {
  layerNorm1: Norm;
  q: Linear; // [W, W]
  k: Linear;
  v: Linear;
  out: Linear;
  layerNorm2: Norm;
  fc1: Linear; // [I, W]
  fc2: Linear; // [W, I]
}
export interface VisionWeights {
  classEmbedding: Tensor; // [W]
  patchEmbedding: Tensor; // [W, C, P, P] conv weight, no bias
  positionEmbedding: Tensor; // [1 + (S/P)^2, W]
  preLayerNorm: Norm;
  layers: PreNormLayer[];
  postLayerNorm: Norm;
  projection: Tensor; // [E, W] (visual_projection)
  projectionBias?: Tensor; // [E] (EasyNLP only)
}
/** Post-LayerNorm BERT layer: a = LN(dense(MHA(x)) + x); x = LN(output(act(intermediate(a))) + a). */
export interface BertLayer {
  query: Linear; // [W, W]
  key: Linear;
  value: Linear;
  attentionOutput: Linear;
  attentionLayerNorm: Norm;
  intermediate: Linear; // [I, W]
  output: Linear; // [W, I]
  outputLayerNorm: Norm;
}
export interface BertTextWeights {
  kind: 'bert';
  wordEmbeddings: Tensor; // [V, W]
  positionEmbeddings: Tensor; // [maxPositions, W]
  tokenTypeEmbeddings: Tensor; // [typeVocab, W]
  embeddingsLayerNorm: Norm;
  layers: BertLayer[];
  /** AltCLIP: pre_LN [W] and transformation [P, W] after the encoder (pooling 'transformation'). */
  preLayerNorm?: Norm;
  transformation?: Linear;
  /** EasyNLP: BERT's pooler dense [W, W] (pooling 'tanh'). */
  pooler?: Linear;
  projection: Tensor; // [E, P] (text_projection; P = pooledSize)
  projectionBias?: Tensor; // [E] (EasyNLP only)
}
export interface ClipTextWeights {
  kind: 'clip';
  tokenEmbedding: Tensor; // [V, W]
  positionEmbedding: Tensor; // [maxPositions, W]
  layers: PreNormLayer[];
  finalLayerNorm: Norm;
  projection: Tensor; // [E, W]
}
interface ClipWeightsBase {
  vision: VisionWeights;
  /** The stored (trained) logit scale; similarities are multiplied by exp(logitScale). */
  logitScale: number;
  /** Tensors in the checkpoint that the model does not use, sorted. */
  unexpected: string[];
  /** The files the weights came from. */
  files: string[];
}
export type ClipWeights =
  | (ClipWeightsBase & { modelType: 'chinese_clip' | 'altclip' | 'easynlp_clip'; config: ClipConfig & { text: BertTextConfig }; text: BertTextWeights })
  | (ClipWeightsBase & { modelType: 'clip'; config: ClipConfig & { text: ClipTextConfig }; text: ClipTextWeights });

export interface ExpectedParameter {
  name: string;
  shape: readonly number[];
}

/** Looks a parameter up by Hugging Face name and expected shape. */
type Take = (name: string, shape: readonly number[]) => Tensor;

const linear = (take: Take, prefix: string, out: number, inp: number): Linear => ({
  weight: take(`${prefix}.weight`, [out, inp]),
  bias: take(`${prefix}.bias`, [out]),
});
const norm = (take: Take, prefix: string, dim: number): Norm => ({
  weight: take(`${prefix}.weight`, [dim]),
  bias: take(`${prefix}.bias`, [dim]),
});

function preNormLayer(take: Take, p: string, w: number, inter: number): PreNormLayer {
  return {
    layerNorm1: norm(take, `${p}.layer_norm1`, w),
    q: linear(take, `${p}.self_attn.q_proj`, w, w),
    k: linear(take, `${p}.self_attn.k_proj`, w, w),
    v: linear(take, `${p}.self_attn.v_proj`, w, w),
    out: linear(take, `${p}.self_attn.out_proj`, w, w),
    layerNorm2: norm(take, `${p}.layer_norm2`, w),
    fc1: linear(take, `${p}.mlp.fc1`, inter, w),
    fc2: linear(take, `${p}.mlp.fc2`, w, inter),
  };
}

function visionTower(take: Take, c: VisionConfig, proj: number, bias: boolean): VisionWeights {
  const w = c.hiddenSize, grid = c.imageSize / c.patchSize;
  return {
    classEmbedding: take('vision_model.embeddings.class_embedding', [w]),
    patchEmbedding: take('vision_model.embeddings.patch_embedding.weight', [w, c.numChannels, c.patchSize, c.patchSize]),
    positionEmbedding: take('vision_model.embeddings.position_embedding.weight', [1 + grid * grid, w]),
    preLayerNorm: norm(take, 'vision_model.pre_layrnorm', w), // sic: transformers' spelling
    layers: range(c.numHiddenLayers).map((i) => preNormLayer(take, `vision_model.encoder.layers.${i}`, w, c.intermediateSize)),
    postLayerNorm: norm(take, 'vision_model.post_layernorm', w),
    projection: take('visual_projection.weight', [proj, w]),
    ...(bias && { projectionBias: take('visual_projection.bias', [proj]) }),
  };
}

/** ChineseCLIPModel's BERT lives at `text_model.`, AltCLIPModel's RoBERTa at `text_model.roberta.`. */
function bertTower(take: Take, c: BertTextConfig, proj: number, bias: boolean): BertTextWeights {
  const w = c.hiddenSize, inter = c.intermediateSize;
  const bert = c.pooling === 'transformation' ? 'text_model.roberta' : 'text_model';
  return {
    kind: 'bert',
    wordEmbeddings: take(`${bert}.embeddings.word_embeddings.weight`, [c.vocabSize, w]),
    positionEmbeddings: take(`${bert}.embeddings.position_embeddings.weight`, [c.maxPositionEmbeddings, w]),
    tokenTypeEmbeddings: take(`${bert}.embeddings.token_type_embeddings.weight`, [c.typeVocabSize, w]),
    embeddingsLayerNorm: norm(take, `${bert}.embeddings.LayerNorm`, w),
    layers: range(c.numHiddenLayers).map((i) => {
      const p = `${bert}.encoder.layer.${i}`;
      return {
        query: linear(take, `${p}.attention.self.query`, w, w),
        key: linear(take, `${p}.attention.self.key`, w, w),
        value: linear(take, `${p}.attention.self.value`, w, w),
        attentionOutput: linear(take, `${p}.attention.output.dense`, w, w),
        attentionLayerNorm: norm(take, `${p}.attention.output.LayerNorm`, w),
        intermediate: linear(take, `${p}.intermediate.dense`, inter, w),
        output: linear(take, `${p}.output.dense`, w, inter),
        outputLayerNorm: norm(take, `${p}.output.LayerNorm`, w),
      };
    }),
    ...(c.pooling === 'transformation' && {
      preLayerNorm: norm(take, 'text_model.pre_LN', w),
      transformation: linear(take, 'text_model.transformation', c.pooledSize, w),
    }),
    ...(c.pooling === 'tanh' && { pooler: linear(take, 'text_model.pooler.dense', w, w) }),
    projection: take('text_projection.weight', [proj, c.pooledSize]),
    ...(bias && { projectionBias: take('text_projection.bias', [proj]) }),
  };
}

function clipTextTower(take: Take, c: ClipTextConfig, proj: number): ClipTextWeights {
  const w = c.hiddenSize;
  return {
    kind: 'clip',
    tokenEmbedding: take('text_model.embeddings.token_embedding.weight', [c.vocabSize, w]),
    positionEmbedding: take('text_model.embeddings.position_embedding.weight', [c.maxPositionEmbeddings, w]),
    layers: range(c.numHiddenLayers).map((i) => preNormLayer(take, `text_model.encoder.layers.${i}`, w, c.intermediateSize)),
    finalLayerNorm: norm(take, 'text_model.final_layer_norm', w),
    projection: take('text_projection.weight', [proj, w]),
  };
}

/** Builds the whole model's weights through `take`, in one order: vision, text, logit scale. */
function buildModel(take: Take, config: ClipConfig) {
  const vision = visionTower(take, config.vision, config.projectionDim, config.projectionBias);
  const text = config.text.kind === 'bert' ? bertTower(take, config.text, config.projectionDim, config.projectionBias) : clipTextTower(take, config.text, config.projectionDim);
  const logitScale = take('logit_scale', []);
  return { vision, text, logitScale };
}

/** Every parameter name and shape the model needs for this config, in load order. */
export function expectedParameters(config: ClipConfig): ExpectedParameter[] {
  const out: ExpectedParameter[] = [];
  buildModel((name, shape) => {
    out.push({ name, shape: [...shape] });
    return undefined as unknown as Tensor; // shapes only; no tensor is built
  }, config);
  return out;
}

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const LIST_AT_MOST = 10;

/**
 * Checks `tensors` against the config and returns the typed weights (float32). Every problem is
 * collected first: missing parameters throw E_WEIGHTS, misshaped ones E_SHAPE, each named with the
 * expected and actual shape.
 */
export function checkClipWeights(tensors: ReadonlyMap<string, TensorEntry>, config: ClipConfig, source: string, files: string[] = [source]): ClipWeights {
  const expected = expectedParameters(config);
  const missing: ExpectedParameter[] = [];
  const misshaped: string[] = [];
  for (const p of expected) {
    const t = tensors.get(p.name);
    if (!t) missing.push(p);
    else if (!sameShape(t.shape, p.shape) && !(p.name === 'logit_scale' && sameShape(t.shape, [1]))) // older checkpoints store [1]
      misshaped.push(`${p.name}: expected ${fmt(p.shape)} but received ${fmt(t.shape)}`);
  }
  const what = `a ${config.modelType} model with the geometry of ${config.source}`;
  const list = (items: string[]) => items.slice(0, LIST_AT_MOST).join('; ') + (items.length > LIST_AT_MOST ? `; and ${items.length - LIST_AT_MOST} more` : '');
  if (missing.length)
    throw new ClipkitError(
      'E_WEIGHTS',
      `Checkpoint ${source} lacks ${missing.length} of the ${expected.length} parameters ${what} needs: ` +
        list(missing.map((p) => `${p.name} ${fmt(p.shape)}`)) +
        (misshaped.length ? `. Also misshaped: ${list(misshaped)}` : ''),
    );
  if (misshaped.length)
    throw new ClipkitError('E_SHAPE', `Checkpoint ${source} has ${misshaped.length} parameters of the wrong shape for ${what}: ${list(misshaped)}`);

  const { vision, text, logitScale } = buildModel((name) => tensors.get(name)!.tensor(), config);
  const used = new Set(expected.map((p) => p.name));
  const unexpected = [...tensors.keys()].filter((n) => !used.has(n)).sort();
  const base = { vision, logitScale: logitScale.data[0], unexpected, files };
  return config.modelType === 'clip'
    ? { ...base, modelType: 'clip', config, text: text as ClipTextWeights }
    : { ...base, modelType: config.modelType, config, text: text as BertTextWeights };
}

/**
 * Loads a Hugging Face model folder: `config.json` (unless given) and its weights (read_weights.ts:
 * safetensors or pytorch_model.bin, single or sharded), checked against each other.
 */
export function loadClipWeights(dir: string, config?: ClipConfig): ClipWeights {
  expectPath('dir', dir);
  config ??= readClipConfig(dir);
  const { tensors, files, source } = readWeights(dir, { hasConfig: true });
  return checkClipWeights(tensors, config, source, files);
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
