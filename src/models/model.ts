/**
 * loadModel(nameOrDir): a CLIP-family model (Chinese-CLIP, OpenAI CLIP, AltCLIP, EasyNLP) from a
 * hub id, a Hugging Face folder or an original checkpoint (src/loading/source.ts), ready to embed texts and images.
 *
 *   const model = await loadModel('models/openai_clip_tiny');
 *   const [t] = await model.encodeText('a photo of a cat');           // unit length by default
 *   const [i] = await model.encodePixels(pixels, 1);                  // pixels: [1, 3, S, S] NCHW
 *   const [img] = await model.encodeImage('cat.jpg');                 // decode + preprocess + embed
 *   const sims = await model.similarity([img], [t]);                  // logits_per_image [1, 1]
 *   const top = await model.classify('cat.jpg', ['cat', 'dog']);      // [{ label, score }], best first
 *
 * Weights are packed once at load (fp32, or bf16 with `dtype: 'bf16'`: weights and activations
 * rounded to bf16 inside the GEMMs, fp32 accumulation) and written to the weight cache
 * (loading/weight_cache.ts), which later loads of the same model map instead of reading and
 * packing again. Inputs are run `batchSize` at a time; texts are grouped by length and each runs
 * at its true length.
 */
import { realpathSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expectInt, expectOneOf, expectOptions, OptionKeys } from '../check';
import { ClipkitError, rangeError, typeError } from '../errors';
import { preprocess as preprocessImage } from '../image/preprocess';
import { encodeTexts } from '../tokenizers/off_thread';
import { resolveModel } from '../io/hub';
import { infonce, InfonceResult } from '../ops/infonce';
import { l2Normalize } from '../ops/l2_normalize';
import { WeightDType } from '../ops/gemm';
import { logits } from '../ops/logits';
import { setThreads } from '../runtime';
import { Tensor } from '../tensor';
import { loadTokenizer, Tokenizer } from '../tokenizers';
import { BertTower } from './bert';
import { HiddenStates, TextOutput } from './blocks';
import { memorySink, PackSettings } from './packing';
import { ClipTextTower } from './clip_text';
import { ClipConfig, ModelType, PreprocessConfig } from '../loading/config';
import { TEMPLATES, TemplateSet } from './templates';
import { VisionOutput, VisionTower } from './vit';
import { modelSideFiles, readModelSource } from '../loading/source';
import { CacheHit, CacheKey, CacheMiss, CacheWriter, keyFileName, modelKey, readCacheFile, weightCacheFolder } from '../loading/weight_cache';
import { checkClipWeights } from '../loading/weights';
import { weightFileList } from '../loading/read_weights';
import { mapFile } from '../io/mapped';
import { BertState } from './bert';
import { ClipTextState } from './clip_text';
import { VisionState } from './vit';

export interface LoadModelOptions {
  /** Kernel threads (process-wide, as setThreads); default: leave the current setting. */
  threads?: number;
  /** Inputs per forward pass; default 16. */
  batchSize?: number;
  /** 'fp32' (default, exact) or 'bf16' (faster GEMMs, ~3 significant digits). */
  dtype?: 'fp32' | 'bf16';
  /** Folder with the tokenizer files; default the model folder (or the family's bundled vocabulary). Read on first use. */
  tokenizerDir?: string;
  /** Token ids per text; default the family's (Chinese-CLIP 52, OpenAI CLIP and AltCLIP 77, EasyNLP 32). */
  contextLength?: number;
  /** Show a download progress bar on stderr when a hub model is fetched; default false. */
  progress?: boolean;
  /** Hub revision (branch, tag or commit) when `dir` is a hub id; `org/name@rev` says the same. */
  revision?: string;
  /** Hugging Face hub cache folder; default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Use the hub cache only (as HF_HUB_OFFLINE=1). */
  offline?: boolean;
  /**
   * For an original checkpoint (OpenAI / open_clip, Chinese-CLIP, EasyNLP names), whose geometry is
   * read off its shapes: `model` names it instead (ViT-B-32, ViT-B-16, ViT-L-14, ViT-L-14-336,
   * ViT-H-14; checked against the shapes), `text` the Chinese-CLIP text tower
   * (RoBERTa-wwm-ext-base-chinese, RoBERTa-wwm-ext-large-chinese, RBT3-chinese), `hiddenAct`
   * 'gelu' for open_clip models trained with erf GELU (LAION's). Hugging Face folders ignore it.
   */
  checkpoint?: { model?: string; text?: string; hiddenAct?: 'quick_gelu' | 'gelu' };
  /**
   * The weight cache folder, where the packed weights are written on the first load and mapped on
   * later ones; false: no cache. Default $CLIPKIT_CACHE (`off` disables it), else
   * `<$XDG_CACHE_HOME or ~/.cache>/clipkit/weights`.
   */
  weightCache?: string | false;
}

/**
 * How a load used the weight cache: 'mapped' (the towers compute on the cache file, mapped),
 * 'built' (packed from the checkpoint and written to `file`), 'unwritable' (packed; the cache
 * folder could not take the file, a warning said so), 'uncacheable' (packed; the weight files could
 * not be keyed, or changed while they were read), 'off' (the cache is disabled).
 */
export interface WeightCacheInfo {
  status: 'mapped' | 'built' | 'unwritable' | 'uncacheable' | 'off';
  /** The cache file mapped or written. */
  file?: string;
  /** Why a cache file that was there was not used (damaged, another key), when one was. */
  reason?: string;
}

export interface EncodeOptions {
  /** Divide each embedding by its L2 norm; default true. */
  normalize?: boolean;
}

/** An image file path, or the bytes of an image file (a Buffer is a Uint8Array). */
export type ImageSource = string | Uint8Array;

export interface ClassifyOptions {
  /**
   * Prompt templates with a `{}` where the label goes, averaged per label (a template ensemble):
   * 'en' (OpenAI CLIP's 80 ImageNet templates), 'zh' (Chinese-CLIP's 80) or your own list.
   * Default 'zh' for the Chinese models (chinese_clip, easynlp_clip), 'en' for clip and altclip.
   */
  templates?: TemplateSet | readonly string[];
}

export interface LabelScore {
  label: string;
  /** Softmax probability over the labels given. */
  score: number;
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

/** Token ids per text: Chinese-CLIP's 52, OpenAI's and AltCLIP's 77, EasyNLP's examples' 32. */
const CONTEXT_LENGTH: Record<ModelType, number> = { chinese_clip: 52, clip: 77, altclip: 77, easynlp_clip: 32 };

/** Label embeddings kept per (labels, templates); the oldest is dropped past this many. */
const LABEL_CACHE_SIZE = 32;

export class ClipModel {
  private tokenizerCache?: Tokenizer;
  private preprocessCache?: PreprocessConfig;
  private readonly labelCache = new Map<string, Promise<Float32Array[]>>();

  /** @internal */
  constructor(
    readonly config: ModelInfo,
    readonly batchSize: number,
    readonly dtype: 'fp32' | 'bf16',
    /** @internal */ readonly vision: VisionTower,
    /** @internal */ readonly text: BertTower | ClipTextTower,
    private readonly sideFiles: { tokenizer: (contextLength: number) => Tokenizer; preprocess: () => PreprocessConfig },
    /** The folder the model was loaded from (a hub id's snapshot in the cache), or its checkpoint file. */
    readonly location: string,
    /** How this load used the weight cache. */
    readonly weightCache: WeightCacheInfo = { status: 'off' },
  ) {}

  /** The preprocessing: the folder's preprocessor_config.json, else the family's standard one (read on first use). */
  get preprocessConfig(): PreprocessConfig {
    this.preprocessCache ??= this.sideFiles.preprocess();
    return this.preprocessCache;
  }

  /** The model's tokenizer: the folder's, else the family's bundled vocabulary (loaded on first use). */
  get tokenizer(): Tokenizer {
    this.tokenizerCache ??= this.sideFiles.tokenizer(this.config.contextLength);
    return this.tokenizerCache;
  }

  /** texts → ids [n, contextLength] (row-major). */
  tokenize(texts: readonly string[]): Int32Array {
    return this.tokenizer.tokenize(texts);
  }

  /** ids [n, contextLength] → one embedding per text. */
  async encodeTokens(ids: Int32Array, n: number, opts: EncodeOptions = {}): Promise<Float32Array[]> {
    checkEncodeOptions(opts);
    return rowsOf(await this.textForward(ids, n), opts);
  }

  /** A text or texts → one embedding per text. */
  async encodeText(text: string | readonly string[], opts: EncodeOptions = {}): Promise<Float32Array[]> {
    const texts = typeof text === 'string' ? [text] : text;
    if (!Array.isArray(texts)) throw typeError('E_ARG', `Expected a string or an array of strings for text but received ${describe(text)}`);
    checkEncodeOptions(opts);
    // Long texts are tokenized on a worker thread, not this one (src/tokenizers/off_thread.ts).
    return this.encodeTokens((await encodeTexts(this.tokenizer, texts)).ids, texts.length, opts);
  }

  /** Preprocessed pixels [n, 3, S, S] (S = config.imageSize) → one embedding per image. */
  async encodePixels(pixels: Float32Array, n: number, opts: EncodeOptions = {}): Promise<Float32Array[]> {
    checkEncodeOptions(opts);
    return rowsOf(await this.visionForward(pixels, n), opts);
  }

  /** An image file or its bytes → pixel_values [3, H, W] by the folder's preprocessor config. */
  async preprocess(img: ImageSource): Promise<Float32Array> {
    expectImage(img, 'img');
    return preprocessImage(img, this.preprocessConfig);
  }

  /**
   * An image or images (paths or file bytes) → one embedding per image. Images are decoded and
   * preprocessed concurrently (off the JS thread), a batch ahead of the image tower, which runs
   * batchSize at a time. An image that cannot be read fails the call with an error naming its index
   * and path; the error keeps the decoder's code (E_IO, E_FORMAT, E_UNSUPPORTED, E_LIMIT).
   */
  async encodeImage(img: ImageSource | readonly ImageSource[], opts: EncodeOptions = {}): Promise<Float32Array[]> {
    const single = typeof img === 'string' || img instanceof Uint8Array;
    const images = single ? [img as ImageSource] : (img as readonly ImageSource[]);
    if (!Array.isArray(images))
      throw typeError('E_ARG', `Expected an image (a path or a Uint8Array of file bytes) or an array of them but received ${describe(img)}`);
    images.forEach((x, i) => expectImage(x, single ? 'img' : `img[${i}]`));
    checkEncodeOptions(opts);
    const n = images.length, per = 3 * this.config.imageSize * this.config.imageSize;
    const config = this.preprocessConfig;
    const prepare = (start: number): Promise<Float32Array> => {
      const count = Math.min(this.batchSize, n - start);
      const out = new Float32Array(count * per);
      const p = Promise.all(
        images.slice(start, start + count).map(async (x, j) => {
          const i = start + j;
          let px: Float32Array;
          try {
            px = await preprocessImage(x, config);
          } catch (err) {
            throw imageError(err, i, x, n);
          }
          if (px.length !== per)
            throw rangeError('E_SHAPE', `Image ${i} (${imageName(x)}) preprocesses to ${px.length} values, not 3·${this.config.imageSize}·${this.config.imageSize} = ${per}: the preprocessor config's crop size does not match the model's image size`);
          out.set(px, j * per);
        }),
      ).then(() => out);
      p.catch(() => undefined); // a batch read ahead may fail before it is awaited
      return p;
    };
    const rows: Float32Array[] = [];
    let next = n > 0 ? prepare(0) : undefined;
    for (let start = 0; start < n; start += this.batchSize) {
      const pixels = await next!;
      next = start + this.batchSize < n ? prepare(start + this.batchSize) : undefined;
      // Batched and checked once, here: the batch goes to the tower as it is.
      rows.push(...(await rowsOf(await this.visionBatch(pixels, pixels.length / per), opts)));
    }
    return rows;
  }

  /**
   * logits_per_image: exp(logit_scale) · cos(image i, text j), row-major [images × texts] (each
   * embedding is L2-normalised first, so raw or unit embeddings give the same result). Async: the
   * native kernel runs off the JS thread.
   */
  async similarity(imageEmbeds: readonly Float32Array[], textEmbeds: readonly Float32Array[]): Promise<Float32Array> {
    const a = stackRows('imageEmbeds', imageEmbeds, this.config.projectionDim);
    const b = stackRows('textEmbeds', textEmbeds, this.config.projectionDim);
    if (a.shape[0] === 0 || b.shape[0] === 0) return new Float32Array(0);
    return (await logits(a, b, Math.exp(this.config.logitScale))).data;
  }

  /**
   * CLIP's symmetric contrastive (InfoNCE) loss for the pairs imageEmbeds[i] ↔ textEmbeds[i] (n >= 1
   * each), at the model's logit scale: the loss, the logits [n, n] and the gradients.
   */
  async infoNCE(imageEmbeds: readonly Float32Array[], textEmbeds: readonly Float32Array[]): Promise<InfonceResult> {
    const a = stackRows('imageEmbeds', imageEmbeds, this.config.projectionDim);
    const b = stackRows('textEmbeds', textEmbeds, this.config.projectionDim);
    if (a.shape[0] !== b.shape[0])
      throw rangeError('E_SHAPE', `Expected as many text embeddings as image embeddings (pairs i ↔ i) but received ${b.shape[0]} and ${a.shape[0]}`);
    return infonce(a, b, { logScale: this.config.logitScale });
  }

  /**
   * Zero-shot classification of one image over `labels`: each label's embedding is the mean of its
   * L2-normalised template embeddings (`{}` replaced by the label), renormalised; scores are
   * softmax(exp(logit_scale) · cos) over the labels, returned best first. Label embeddings are
   * cached per (labels, templates).
   */
  async classify(img: ImageSource, labels: readonly string[], opts: ClassifyOptions = {}): Promise<LabelScore[]> {
    expectImage(img, 'img');
    const { embeds } = await this.labelEmbeddingsFor(labels, opts);
    const [image] = await this.encodeImage(img);
    return (await this.rankLabels([image], labels, embeds))[0];
  }

  /**
   * classify() for images already embedded (e.g. many at once): for each image embedding, the
   * labels with softmax scores, best first.
   */
  async classifyEmbeddings(imageEmbeds: readonly Float32Array[], labels: readonly string[], opts: ClassifyOptions = {}): Promise<LabelScore[][]> {
    const { embeds } = await this.labelEmbeddingsFor(labels, opts);
    return this.rankLabels(imageEmbeds, labels, embeds);
  }

  private async rankLabels(images: readonly Float32Array[], labels: readonly string[], labelEmbeds: Float32Array[]): Promise<LabelScore[][]> {
    const sims = await this.similarity(images, labelEmbeds);
    const k = labels.length;
    return images.map((_, i) => {
      const row = sims.subarray(i * k, (i + 1) * k);
      let max = -Infinity;
      for (const v of row) max = Math.max(max, v);
      const exps = Array.from(row, (v) => Math.exp(v - max));
      const sum = exps.reduce((s, v) => s + v, 0);
      return labels.map((label, j) => ({ label, score: exps[j] / sum })).sort((x, y) => y.score - x.score);
    });
  }

  /**
   * The unit embedding of each label under a template ensemble (as classify uses them): the mean
   * of the normalised text embeddings of its prompts, renormalised.
   */
  async labelEmbeddings(labels: readonly string[], opts: ClassifyOptions = {}): Promise<Float32Array[]> {
    return (await this.labelEmbeddingsFor(labels, opts)).embeds.map((e) => e.slice());
  }

  private async labelEmbeddingsFor(labels: readonly string[], opts: ClassifyOptions): Promise<{ embeds: Float32Array[] }> {
    if (!Array.isArray(labels) || labels.length === 0 || !labels.every((l) => typeof l === 'string'))
      throw typeError('E_ARG', `Expected a non-empty array of label strings but received ${describe(labels)}`);
    expectOptions('the classify options', opts, CLASSIFY_OPTIONS);
    const templates = this.templatesOf(opts.templates);
    const key = JSON.stringify([labels, templates]);
    let entry = this.labelCache.get(key);
    if (entry) this.labelCache.delete(key); // re-inserted below as the newest
    else {
      // The promise is cached, so concurrent calls with the same labels share one encoding.
      entry = this.encodeLabels(labels, templates);
      entry.catch(() => this.labelCache.get(key) === entry && this.labelCache.delete(key));
    }
    this.labelCache.set(key, entry);
    if (this.labelCache.size > LABEL_CACHE_SIZE) this.labelCache.delete(this.labelCache.keys().next().value!);
    return { embeds: await entry };
  }

  private async encodeLabels(labels: readonly string[], templates: readonly string[]): Promise<Float32Array[]> {
    const prompts = labels.flatMap((label) => templates.map((t) => t.split('{}').join(label)));
    const rows = await this.encodeText(prompts);
    const d = this.config.projectionDim, k = templates.length;
    return labels.map((_, i) => {
      const mean = new Float64Array(d);
      for (let t = 0; t < k; t++) {
        const r = rows[i * k + t];
        for (let j = 0; j < d; j++) mean[j] += r[j];
      }
      let ss = 0;
      for (let j = 0; j < d; j++) ss += mean[j] * mean[j];
      const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
      return Float32Array.from(mean, (v) => v * inv);
    });
  }

  private templatesOf(t: ClassifyOptions['templates']): readonly string[] {
    if (t === undefined) return this.config.modelType === 'chinese_clip' || this.config.modelType === 'easynlp_clip' ? TEMPLATES.zh : TEMPLATES.en;
    if (typeof t === 'string') {
      if (t === 'zh' || t === 'en') return TEMPLATES[t];
      throw rangeError('E_ARG', `Expected templates 'zh', 'en' or an array of template strings but received ${describe(t)}`);
    }
    if (!Array.isArray(t) || t.length === 0 || !t.every((s) => typeof s === 'string'))
      throw typeError('E_ARG', `Expected templates 'zh', 'en' or a non-empty array of template strings but received ${describe(t)}`);
    const bad = t.findIndex((s) => !s.includes('{}'));
    if (bad >= 0) throw rangeError('E_ARG', `Expected every template to contain {} (where the label goes) but templates[${bad}] is ${JSON.stringify(t[bad])}`);
    return t;
  }

  /** @internal The text tower's pooled rows and embeddings; `padTo` runs padded (tests). */
  async textForward(ids: Int32Array, n: number, padTo?: number): Promise<TextOutput> {
    this.checkIds(ids, n);
    return this.text.encode(ids, n, this.config.contextLength, this.batchSize, padTo);
  }

  /** @internal The image tower's pooled rows and embeddings, batchSize images at a time. */
  async visionForward(pixels: Float32Array, n: number): Promise<VisionOutput> {
    const c = this.config.clip.vision, s = c.imageSize;
    this.checkPixels(pixels, n);
    const width = c.hiddenSize, proj = this.config.projectionDim, per = c.numChannels * s * s;
    if (n <= this.batchSize) return this.visionBatch(pixels, n);
    const pooled = new Float32Array(n * width), embeds = new Float32Array(n * proj);
    for (let i = 0; i < n; i += this.batchSize) {
      const b = Math.min(this.batchSize, n - i);
      const out = await this.visionBatch(pixels.subarray(i * per, (i + b) * per), b);
      pooled.set(out.pooled.data, i * width);
      embeds.set(out.embeds.data, i * proj);
    }
    return { pooled: new Tensor(pooled, [n, width]), embeds: new Tensor(embeds, [n, proj]) };
  }

  /** One tower call on n <= batchSize images' pixels, already checked. */
  private visionBatch(pixels: Float32Array, n: number): Promise<VisionOutput> {
    const c = this.config.clip.vision, s = c.imageSize;
    return this.vision.encode(new Tensor(pixels, [n, c.numChannels, s, s]));
  }

  /**
   * The text tower's hidden states for ids [n, contextLength], as transformers'
   * `output_hidden_states` gives them: the embeddings, then every layer's output, each
   * [n, contextLength, W], every row computed (padded texts run padded, their padding keys masked);
   * and its `last_hidden_state`. For comparing with reference implementations: one batch, no
   * shortcuts, slower than encodeTokens.
   */
  async textHiddenStates(ids: Int32Array, n: number): Promise<HiddenStates> {
    this.checkIds(ids, n);
    return this.text.hiddenStates(ids, n, this.config.contextLength);
  }

  /** The image tower's hidden states for pixels [n, 3, S, S] (see textHiddenStates); last_hidden_state is before post_layernorm. */
  async imageHiddenStates(pixels: Float32Array, n: number): Promise<HiddenStates> {
    const c = this.config.clip.vision;
    this.checkPixels(pixels, n);
    return this.vision.hiddenStates(new Tensor(pixels, [n, c.numChannels, c.imageSize, c.imageSize]));
  }

  private checkIds(ids: Int32Array, n: number): void {
    if (!(ids instanceof Int32Array)) throw typeError('E_DTYPE', `Expected an Int32Array of token ids but received ${describe(ids)}`);
    const context = this.config.contextLength;
    expectInt('n', n, 0);
    if (ids.length !== n * context)
      throw rangeError('E_SHAPE', `Expected ids of length n·contextLength = ${n}·${context} = ${n * context} but received length ${ids.length}`);
  }

  private checkPixels(pixels: Float32Array, n: number): void {
    if (!(pixels instanceof Float32Array)) throw typeError('E_DTYPE', `Expected a Float32Array of pixels but received ${describe(pixels)}`);
    const c = this.config.clip.vision, s = c.imageSize, per = c.numChannels * s * s;
    expectInt('n', n, 0);
    if (pixels.length !== n * per)
      throw rangeError('E_SHAPE', `Expected pixels of length n·${c.numChannels}·${s}·${s} = ${n * per} (NCHW at the model's resolution) but received length ${pixels.length}`);
  }
}

/**
 * Loads a model — a folder, or a Hugging Face hub id (`org/name`, `org/name@revision`) fetched
 * into the shared hub cache on first use — reading config.json and the weights and packing them,
 * or mapping the weight cache's file for them when an earlier load wrote one (`model.weightCache`).
 */
export async function loadModel(nameOrDir: string, opts: LoadModelOptions = {}): Promise<ClipModel> {
  if (typeof nameOrDir !== 'string' || nameOrDir === '' || nameOrDir.includes('\0'))
    throw typeError('E_ARG', `Expected a model folder, checkpoint file or hub id string but received ${nameOrDir === '' ? 'an empty string' : describe(nameOrDir)}`);
  expectOptions('loadModel', opts, LOAD_OPTIONS);
  if (opts.checkpoint !== undefined && opts.checkpoint !== null && typeof opts.checkpoint === 'object') expectOptions('the checkpoint option', opts.checkpoint, CHECKPOINT_OPTIONS);
  // A checkpoint file is read as it is; anything else is a folder or a hub id.
  const dir = statSync(nameOrDir, { throwIfNoEntry: false })?.isFile()
    ? nameOrDir
    : await resolveModel(nameOrDir, { progress: opts.progress ?? false, revision: opts.revision, cacheDir: opts.cacheDir, offline: opts.offline });
  const batchSize = expectInt('batchSize', opts.batchSize ?? 16, 1);
  const dtype = expectOneOf('dtype', opts.dtype ?? 'fp32', ['fp32', 'bf16'] as const);
  if (opts.threads !== undefined) setThreads(opts.threads);
  const tokenizerDir = opts.tokenizerDir;
  if (tokenizerDir !== undefined && typeof tokenizerDir !== 'string')
    throw typeError('E_ARG', `Expected a folder path string for tokenizerDir but received ${describe(tokenizerDir)}`);

  if (opts.checkpoint !== undefined && (opts.checkpoint === null || typeof opts.checkpoint !== 'object'))
    throw typeError('E_ARG', `Expected an object { model?, text?, hiddenAct? } for checkpoint but received ${describe(opts.checkpoint)}`);
  const weightDType: WeightDType = dtype === 'bf16' ? 'bfloat16' : 'float32';
  const weightCache = opts.weightCache;
  if (weightCache !== undefined && weightCache !== false && (typeof weightCache !== 'string' || weightCache === '' || weightCache.includes('\0')))
    throw typeError('E_ARG', `Expected a folder path string or false for weightCache but received ${weightCache === '' ? 'an empty string' : describe(weightCache)}`);
  const cacheFolder = weightCacheFolder(weightCache);
  const key = cacheFolder === undefined ? undefined : await cacheKeyOf(dir, weightDType, opts.checkpoint);
  const cacheFile = cacheFolder !== undefined && key ? path.join(cacheFolder, keyFileName(key)) : undefined;
  const mapped = cacheFile && key ? await fromWeightCache(dir, cacheFile, key) : undefined;
  let loaded: LoadedTowers | undefined;
  if (mapped && !(mapped instanceof CacheMiss)) loaded = mapped;
  else {
    const reason = mapped && mapped.message !== 'absent' ? { reason: mapped.message } : {};
    if (cacheFolder !== undefined && key) loaded = await buildInCache(dir, cacheFolder, key, weightDType, opts.checkpoint);
    if (!loaded) {
      loaded = (await packModel(dir, weightDType, opts.checkpoint)).towers;
      if (cacheFolder !== undefined) loaded.cache = { status: key && unwritable.has(cacheFolder) ? 'unwritable' : 'uncacheable' };
    }
    if (cacheFolder !== undefined) loaded.cache = { ...loaded.cache, ...reason };
  }
  const { config, vision, text, logitScale, sideFiles: source } = loaded;
  const positions = config.text.maxPositionEmbeddings - (config.text.kind === 'bert' ? config.text.positionOffset : 0);
  const contextLength = expectInt('contextLength', opts.contextLength ?? Math.min(CONTEXT_LENGTH[config.modelType], positions), 2, positions);
  const info: ModelInfo = {
    modelType: config.modelType,
    projectionDim: config.projectionDim,
    imageSize: config.vision.imageSize,
    contextLength,
    logitScale,
    clip: config,
  };
  const sideFiles = {
    tokenizer: tokenizerDir === undefined ? source.tokenizer : (n: number) => loadTokenizer(tokenizerDir, { contextLength: n }),
    preprocess: source.preprocess,
  };
  return new ClipModel(info, batchSize, dtype, vision, text, sideFiles, dir, loaded.cache);
}

/** A model's towers and what ClipModel needs besides them, however they were made. */
interface LoadedTowers {
  config: ClipConfig;
  vision: VisionTower;
  text: BertTower | ClipTextTower;
  logitScale: number;
  sideFiles: { tokenizer: (contextLength: number) => Tokenizer; preprocess: () => PreprocessConfig };
  cache: WeightCacheInfo;
}

/** What a cache file holds besides the towers' state. */
interface CacheMeta {
  modelType: ModelType;
  config: ClipConfig;
  logitScale: number;
}

/** The state tree the cache stores for a model: both towers'. */
interface ModelState {
  vision: VisionState;
  text: BertState | ClipTextState;
}

/**
 * The key of the cache file for the model at `dir`, or undefined when its weight files cannot be
 * keyed (the load then packs, and the reader says what is wrong with them).
 */
async function cacheKeyOf(dir: string, dtype: WeightDType, checkpoint: LoadModelOptions['checkpoint']): Promise<CacheKey | undefined> {
  try {
    return await modelKey(dir, { dtype, checkpoint: checkpoint ?? {} });
  } catch {
    return undefined;
  }
}

/**
 * The towers over the mapped cache file `file`, when it is valid for `key`: nothing is read from the
 * checkpoint, packed or copied. Otherwise why not (packModel then packs, and rewrites the file).
 */
async function fromWeightCache(dir: string, file: string, key: CacheKey): Promise<LoadedTowers | CacheMiss> {
  const hit = await readCacheFile(file, key);
  if (hit instanceof CacheMiss) return hit;
  try {
    return { ...towersOf(dir, hit), cache: { status: 'mapped', file } };
  } catch (err) {
    return new CacheMiss(`its state does not fit the model: ${(err as Error).message}`);
  }
}

/** The towers over a cache file's state (E_FORMAT when it does not fit its config). */
function towersOf(dir: string, hit: CacheHit): Omit<LoadedTowers, 'cache'> {
  const meta = hit.meta as CacheMeta, state = hit.state as unknown as ModelState, config = meta.config;
  if (typeof meta.logitScale !== 'number' || config?.modelType !== meta.modelType) throw new Error('the stored config does not match its model type');
  const vision = VisionTower.fromState(state.vision, config.vision);
  const text = config.text.kind === 'clip' ? ClipTextTower.fromState(state.text as ClipTextState, config.text) : BertTower.fromState(state.text as BertState, config.text);
  return { config, vision, text, logitScale: meta.logitScale, sideFiles: modelSideFiles(dir, config) };
}

/**
 * Reads the checkpoint and packs the towers (the load without a usable cache file). fp32 reads the
 * files whole and packs over them (their storage becomes the panels: nothing new is touched); bf16
 * maps them and packs tensor by tensor into new memory, letting go of each tensor's pages once
 * packed (memorySink), so that its peak is what it keeps rather than the fp32 file plus that.
 */
async function packModel(dir: string, dtype: WeightDType, checkpoint: LoadModelOptions['checkpoint']): Promise<{ towers: LoadedTowers }> {
  const streamed = dtype === 'bfloat16';
  const source = readModelSource(dir, checkpoint ?? {}, streamed ? { mapped: await mapWeightFiles(dir) } : {});
  const config = source.config;
  const weights = checkClipWeights(source.tensors, config, source.files.length === 1 ? source.files[0] : dir, source.files);
  // Tensors read from safetensors files under Hugging Face names are this load's own, one per
  // parameter, never shared (the reader refuses overlapping ranges): fp32 weights are packed over them.
  const inPlace = source.layout === 'hf' && source.files.every((f) => f.toLowerCase().endsWith('.safetensors'));
  const packing: PackSettings = streamed ? { dtype, inPlace: false, sink: memorySink } : { dtype, inPlace };
  const vision = await VisionTower.load(weights.vision, config.vision, packing);
  const text =
    weights.modelType === 'clip'
      ? await ClipTextTower.load(weights.text, weights.config.text, packing)
      : await BertTower.load(weights.text, weights.config.text, packing);
  return { towers: { config, vision, text, logitScale: weights.logitScale, sideFiles: source, cache: { status: 'off' } } };
}

/**
 * The weight files of the model at `dir`, mapped (not read: pages are faulted in as they are used),
 * by absolute path. Files that cannot be listed or mapped are left out: the reader then reads them,
 * and its error is the one a user sees.
 */
async function mapWeightFiles(dir: string): Promise<Map<string, ArrayBuffer>> {
  const mapped = new Map<string, ArrayBuffer>();
  let files: string[];
  try {
    files = weightFileList(dir);
  } catch {
    return mapped;
  }
  for (const f of files) {
    try {
      mapped.set(path.resolve(f), await mapFile(f));
    } catch {
      // read instead
    }
  }
  return mapped;
}

/** Folders a write already failed in (and warned about), in this process. */
const unwritable = new Set<string>();

/**
 * The first load with the cache on: the checkpoint, mapped, is packed leaf by leaf straight into a
 * new cache file (CacheWriter), each tensor's pages let go of once written, and the towers are then
 * built over the file, mapped: the load holds about one weight at a time besides what it keeps,
 * and afterwards the same shared, file-backed pages as every later load. When the files read are
 * not the ones keyed, or changed while read, the towers still come from the file, which is then
 * removed instead of kept ('uncacheable').
 *
 * Undefined when the folder cannot be written, or a write fails (a full disk): a warning, once per
 * folder, and the caller packs in memory. Errors of the checkpoint itself are thrown as they are.
 */
async function buildInCache(
  dir: string,
  folder: string,
  key: CacheKey,
  dtype: WeightDType,
  checkpoint: LoadModelOptions['checkpoint'],
): Promise<LoadedTowers | undefined> {
  let writer: CacheWriter;
  try {
    writer = await CacheWriter.create(folder, key);
  } catch (err) {
    return cannotWrite(folder, err);
  }
  let failed = true;
  try {
    // Mapped, not read: the tensors are views into the page cache, faulted in as they are packed.
    const source = readModelSource(dir, checkpoint ?? {}, { mapped: await mapWeightFiles(dir) });
    const config = source.config;
    const weights = checkClipWeights(source.tensors, config, source.files.length === 1 ? source.files[0] : dir, source.files);
    const s: PackSettings = { dtype, inPlace: false, sink: writer };
    const vision = await VisionTower.packState(weights.vision, s);
    const text = weights.modelType === 'clip' ? await ClipTextTower.packState(weights.text, s) : await BertTower.packState(weights.text, s);
    const meta: CacheMeta = { modelType: config.modelType, config, logitScale: weights.logitScale };
    const keyed = await readAsKeyed(key, source.files);
    let done: Awaited<ReturnType<CacheWriter['finish']>>;
    try {
      done = await writer.finish(meta, { vision, text }, { publish: keyed });
    } catch (err) {
      return cannotWrite(folder, err);
    }
    failed = false;
    const towers = towersOf(dir, done.hit);
    return { ...towers, cache: done.file ? { status: 'built', file: done.file } : { status: 'uncacheable' } };
  } catch (err) {
    // A write error (ENOSPC, EIO) is the cache's; anything else is the checkpoint's, thrown as it is.
    if (isWriteError(err)) return cannotWrite(folder, err);
    throw err;
  } finally {
    if (failed) await writer.abort();
  }
}

/** Whether the files read are the ones the key names, unchanged since it was made. */
async function readAsKeyed(key: CacheKey, files: readonly string[]): Promise<boolean> {
  const real = (f: string) => {
    try {
      return realpathSync(f);
    } catch {
      return f;
    }
  };
  const read = files.map(real).sort(), keyed = key.files.map((f) => f.path).sort();
  if (read.length !== keyed.length || read.some((f, i) => f !== keyed[i])) return false;
  const after = await cacheKeyOf(key.location, key.dtype, key.checkpoint as LoadModelOptions['checkpoint']);
  return !!after && JSON.stringify(after) === JSON.stringify(key);
}

const WRITE_ERRORS = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EROFS', 'EACCES', 'EPERM', 'EFBIG']);
const isWriteError = (err: unknown) => WRITE_ERRORS.has((err as NodeJS.ErrnoException)?.code ?? '');

/** A write into `folder` failed: one warning per folder, and the load packs in memory instead. */
function cannotWrite(folder: string, err: unknown): undefined {
  if (!unwritable.has(folder)) {
    unwritable.add(folder);
    process.emitWarning(
      `clipkit cannot write its weight cache in ${folder} (${(err as Error).message}); the model was packed in memory and will be packed again on every load. ` +
        'Point CLIPKIT_CACHE (or the weightCache option) at a writable folder, or set CLIPKIT_CACHE=off (weightCache: false) to load without the cache.',
      { type: 'ClipkitWarning', code: 'CLIPKIT_WEIGHT_CACHE' },
    );
  }
  return undefined;
}

function expectImage(x: unknown, name: string): void {
  if (typeof x !== 'string' && !(x instanceof Uint8Array))
    throw typeError('E_ARG', `Expected an image file path or a Uint8Array of its bytes for ${name} but received ${describe(x)}`);
}

function imageName(x: ImageSource): string {
  return typeof x === 'string' ? x : `<${x.length} bytes>`;
}

/** The decoder's error, prefixed with which input it was. */
function imageError(err: unknown, i: number, x: ImageSource, n: number): Error {
  const what = n === 1 ? `Image ${imageName(x)}` : `Image ${i} (${imageName(x)})`;
  const msg = `${what}: ${err instanceof Error ? err.message : String(err)}`;
  const code = (err as { code?: unknown })?.code;
  const out = new ClipkitError(typeof code === 'string' && code.startsWith('E_') ? (code as ClipkitError['code']) : 'E_IO', msg);
  (out as { cause?: unknown }).cause = err;
  return Object.assign(out, { index: i });
}

const ENCODE_OPTIONS: OptionKeys<EncodeOptions> = { normalize: true };
const CLASSIFY_OPTIONS: OptionKeys<ClassifyOptions> = { templates: true };
const LOAD_OPTIONS: OptionKeys<LoadModelOptions> = {
  threads: true, batchSize: true, dtype: true, tokenizerDir: true, contextLength: true, progress: true, revision: true, cacheDir: true, offline: true, checkpoint: true,
  weightCache: true,
};
const CHECKPOINT_OPTIONS: OptionKeys<NonNullable<LoadModelOptions['checkpoint']>> = { model: true, text: true, hiddenAct: true };

function checkEncodeOptions(opts: EncodeOptions): void {
  expectOptions('the encode options', opts, ENCODE_OPTIONS);
  if (opts.normalize !== undefined && typeof opts.normalize !== 'boolean')
    throw typeError('E_ARG', `Expected a boolean for normalize but received ${describe(opts.normalize)}`);
}

/** Rows of length dim → a [n, dim] tensor. */
function stackRows(name: string, rows: readonly Float32Array[], dim: number): Tensor {
  if (!Array.isArray(rows)) throw typeError('E_ARG', `Expected an array of Float32Array embeddings for ${name} but received ${describe(rows)}`);
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => {
    if (!(r instanceof Float32Array)) throw typeError('E_DTYPE', `Expected ${name}[${i}] to be a Float32Array but received ${describe(r)}`);
    if (r.length !== dim) throw rangeError('E_SHAPE', `Expected ${name}[${i}] of length ${dim} (the projection dim) but received length ${r.length}`);
    out.set(r, i * dim);
  });
  return new Tensor(out, [rows.length, dim]);
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
