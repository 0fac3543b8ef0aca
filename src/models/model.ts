/**
 * loadModel(dir): a Hugging Face CLIP-family folder (chinese_clip or clip) ready to embed texts and
 * preprocessed images.
 *
 *   const model = await loadModel('models/openai_clip_tiny');
 *   const [t] = await model.encodeText('a photo of a cat');           // unit length by default
 *   const [i] = await model.encodePixels(pixels, 1);                  // pixels: [1, 3, S, S] NCHW
 *
 * Weights are packed once at load (fp32, or bf16 with `dtype: 'bf16'`: weights and activations
 * rounded to bf16 inside the GEMMs, fp32 accumulation). Inputs are run `batchSize` at a time; texts
 * are grouped by length and each runs at its true length.
 */
import { describe, expectInt, expectOneOf } from '../check';
import { rangeError, typeError } from '../errors';
import { l2Normalize } from '../ops/l2_normalize';
import { setThreads } from '../runtime';
import { Tensor } from '../tensor';
import { loadTokenizer, Tokenizer } from '../tokenizers';
import { BertTower } from './bert';
import { TextOutput } from './blocks';
import { ClipTextTower } from './clip_text';
import { ClipConfig, ModelType, readClipConfig } from './config';
import { VisionOutput, VisionTower } from './vit';
import { loadClipWeights } from './weights';

export interface LoadModelOptions {
  /** Kernel threads (process-wide, as setThreads); default: leave the current setting. */
  threads?: number;
  /** Inputs per forward pass; default 16. */
  batchSize?: number;
  /** 'fp32' (default, exact) or 'bf16' (faster GEMMs, ~3 significant digits). */
  dtype?: 'fp32' | 'bf16';
  /** Folder with the tokenizer files; default the model folder. Read on first use. */
  tokenizerDir?: string;
}

export interface EncodeOptions {
  /** Divide each embedding by its L2 norm; default true. */
  normalize?: boolean;
}

export interface ModelInfo {
  modelType: ModelType;
  projectionDim: number;
  imageSize: number;
  /** Token ids per text the tokenizer produces (Chinese-CLIP 52, OpenAI CLIP 77). */
  contextLength: number;
  /** The stored logit scale; similarities are multiplied by exp(logitScale). */
  logitScale: number;
  /** The parsed config.json. */
  clip: ClipConfig;
}

const CONTEXT_LENGTH: Record<ModelType, number> = { chinese_clip: 52, clip: 77 };

export class ClipModel {
  private tokenizerCache?: Tokenizer;

  /** @internal */
  constructor(
    readonly config: ModelInfo,
    readonly batchSize: number,
    readonly dtype: 'fp32' | 'bf16',
    /** @internal */ readonly vision: VisionTower,
    /** @internal */ readonly text: BertTower | ClipTextTower,
    private readonly tokenizerDir: string,
  ) {}

  /** The model's tokenizer (loaded from the folder on first use). */
  get tokenizer(): Tokenizer {
    this.tokenizerCache ??= loadTokenizer(this.tokenizerDir, { contextLength: this.config.contextLength });
    return this.tokenizerCache;
  }

  /** texts → ids [n, contextLength] (row-major). */
  tokenize(texts: readonly string[]): Int32Array {
    return this.tokenizer.tokenize(texts);
  }

  /** ids [n, contextLength] → one embedding per text. */
  async encodeTokens(ids: Int32Array, n: number, opts: EncodeOptions = {}): Promise<Float32Array[]> {
    return rowsOf(await this.textForward(ids, n), opts);
  }

  /** A text or texts → one embedding per text. */
  async encodeText(text: string | readonly string[], opts: EncodeOptions = {}): Promise<Float32Array[]> {
    const texts = typeof text === 'string' ? [text] : text;
    if (!Array.isArray(texts)) throw typeError('E_ARG', `Expected a string or an array of strings for text but received ${describe(text)}`);
    return this.encodeTokens(this.tokenize(texts), texts.length, opts);
  }

  /** Preprocessed pixels [n, 3, S, S] (S = config.imageSize) → one embedding per image. */
  async encodePixels(pixels: Float32Array, n: number, opts: EncodeOptions = {}): Promise<Float32Array[]> {
    return rowsOf(await this.visionForward(pixels, n), opts);
  }

  /** @internal The text tower's pooled rows and embeddings; `padTo` runs padded (tests). */
  async textForward(ids: Int32Array, n: number, padTo?: number): Promise<TextOutput> {
    if (!(ids instanceof Int32Array)) throw typeError('E_DTYPE', `Expected an Int32Array of token ids but received ${describe(ids)}`);
    const context = this.config.contextLength;
    expectInt('n', n, 0);
    if (ids.length !== n * context)
      throw rangeError('E_SHAPE', `Expected ids of length n·contextLength = ${n}·${context} = ${n * context} but received length ${ids.length}`);
    return this.text.encode(ids, n, context, this.batchSize, padTo);
  }

  /** @internal The image tower's pooled rows and embeddings, batchSize images at a time. */
  async visionForward(pixels: Float32Array, n: number): Promise<VisionOutput> {
    if (!(pixels instanceof Float32Array)) throw typeError('E_DTYPE', `Expected a Float32Array of pixels but received ${describe(pixels)}`);
    const c = this.config.clip.vision, s = c.imageSize, per = c.numChannels * s * s;
    expectInt('n', n, 0);
    if (pixels.length !== n * per)
      throw rangeError('E_SHAPE', `Expected pixels of length n·${c.numChannels}·${s}·${s} = ${n * per} (NCHW at the model's resolution) but received length ${pixels.length}`);
    const width = c.hiddenSize, proj = this.config.projectionDim;
    const pooled = new Float32Array(n * width), embeds = new Float32Array(n * proj);
    for (let i = 0; i < n; i += this.batchSize) {
      const b = Math.min(this.batchSize, n - i);
      const out = await this.vision.encode(new Tensor(pixels.subarray(i * per, (i + b) * per), [b, c.numChannels, s, s]));
      pooled.set(out.pooled.data, i * width);
      embeds.set(out.embeds.data, i * proj);
    }
    return { pooled: new Tensor(pooled, [n, width]), embeds: new Tensor(embeds, [n, proj]) };
  }
}

/** Loads config.json and the weights of a model folder and packs them. */
export async function loadModel(dir: string, opts: LoadModelOptions = {}): Promise<ClipModel> {
  if (typeof dir !== 'string') throw typeError('E_ARG', `Expected a model folder path string for dir but received ${describe(dir)}`);
  if (opts === null || typeof opts !== 'object') throw typeError('E_ARG', `Expected an options object but received ${describe(opts)}`);
  const batchSize = expectInt('batchSize', opts.batchSize ?? 16, 1);
  const dtype = expectOneOf('dtype', opts.dtype ?? 'fp32', ['fp32', 'bf16'] as const);
  if (opts.threads !== undefined) setThreads(opts.threads);
  const tokenizerDir = opts.tokenizerDir ?? dir;
  if (typeof tokenizerDir !== 'string') throw typeError('E_ARG', `Expected a folder path string for tokenizerDir but received ${describe(tokenizerDir)}`);

  const config = readClipConfig(dir);
  const weights = loadClipWeights(dir, config);
  const packed = dtype === 'bf16' ? 'bfloat16' : 'float32';
  const vision = await VisionTower.load(weights.vision, config.vision, packed);
  const text =
    weights.modelType === 'chinese_clip'
      ? await BertTower.load(weights.text, weights.config.text, packed)
      : await ClipTextTower.load(weights.text, weights.config.text, packed);
  const contextLength = Math.min(CONTEXT_LENGTH[config.modelType], config.text.maxPositionEmbeddings);
  const info: ModelInfo = {
    modelType: config.modelType,
    projectionDim: config.projectionDim,
    imageSize: config.vision.imageSize,
    contextLength,
    logitScale: weights.logitScale,
    clip: config,
  };
  return new ClipModel(info, batchSize, dtype, vision, text, tokenizerDir);
}

/** Splits [n, E] into rows, L2-normalised unless normalize is false. */
async function rowsOf(out: { embeds: Tensor }, opts: EncodeOptions): Promise<Float32Array[]> {
  if (opts === null || typeof opts !== 'object') throw typeError('E_ARG', `Expected an options object but received ${describe(opts)}`);
  const normalize = opts.normalize ?? true;
  if (typeof normalize !== 'boolean') throw typeError('E_ARG', `Expected a boolean for normalize but received ${describe(normalize)}`);
  const e = normalize && out.embeds.size ? await l2Normalize(out.embeds) : out.embeds;
  const [n, d] = e.shape;
  return Array.from({ length: n }, (_, i) => e.data.slice(i * d, (i + 1) * d));
}
