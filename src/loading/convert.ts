/**
 * convertCheckpoint(input, outDir): an original CLIP checkpoint file (torch.save, TorchScript or
 * safetensors, read by read_weights.ts as loadModel reads it, in any layout layouts.ts knows) → a
 * Hugging Face model folder (model.safetensors, config.json, tokenizer and preprocessor files) that
 * loadModel reads, and transformers' `from_pretrained` too for every model type but EasyNLP's.
 * - model.safetensors holds exactly the parameters transformers' class has at the inferred
 *   geometry, each at its config shape; the rest of the input is listed in `skipped`.
 * - The vocabulary has as many tokens as the token embedding has rows.
 * - Tensors are cast and written one at a time: memory stays at the checkpoint plus one tensor.
 * - The folder changes all at once or not at all; outDir must be absent or empty unless `force`.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, expectOneOf, expectOptions, expectPath, OptionKeys } from '../check';
import { ClipkitError, typeError } from '../errors';
import { castFloatBytes, CastTarget } from '../io/float_cast';
import { TensorSource, writeSafetensorsFile } from '../io/safetensors_writer';
import { elementCount, TensorEntry } from '../io/tensor_entry';
import { BertWordPieceTokenizer } from '../tokenizers/bert_wordpiece';
import { bytesToUnicode, ClipBpeTokenizer, EOT, SOT } from '../tokenizers/clip_bpe';
import { assetsDir, BPE_GZ, defaultPreprocessorConfig } from './family_files';
import { HfConfigJson, LayoutModelType } from './infer_geometry';
import { CheckpointLayout } from './layouts';
import { readFileBounded } from '../io/read_file';
import { readWeightFile, toHfWeights, WeightFormat } from './read_weights';

export const CONVERT_DTYPES = ['keep', 'fp32', 'fp16', 'bf16'] as const;
export type ConvertDType = (typeof CONVERT_DTYPES)[number];

export interface ConvertOptions {
  /** Model name for the geometry (ViT-B-32, ViT-B-16, ViT-L-14, ViT-L-14-336, ViT-H-14); checked against the shapes. */
  model?: string;
  /** Chinese-CLIP text tower name (RoBERTa-wwm-ext-base-chinese, RoBERTa-wwm-ext-large-chinese, RBT3-chinese). */
  text?: string;
  /** Vision (and OpenAI text) activation: 'quick_gelu' (default) or 'gelu' (open_clip models trained by LAION). */
  hiddenAct?: 'quick_gelu' | 'gelu';
  /** Dtype of the written weights; default 'keep' (each tensor's stored dtype). */
  dtype?: ConvertDType;
  /** A folder whose vocabulary replaces the bundled one: vocab.txt, or vocab.json + merges.txt, or bpe_simple_vocab_16e6.txt.gz. */
  tokenizer?: string;
  /** Write into a folder that already holds files (files of the same names are replaced). */
  force?: boolean;
}

export interface ConvertedFile {
  name: string;
  bytes: number;
}

export interface ConvertResult {
  input: string;
  outDir: string;
  /** How the input was stored. */
  format: WeightFormat;
  layout: CheckpointLayout;
  modelType: LayoutModelType;
  /** config.json's architectures[0]: CLIPModel, ChineseCLIPModel or EasyNLPCLIPModel. */
  architecture: string;
  /** Whether transformers has a class for this model type (false for EasyNLP's). */
  transformers: boolean;
  /** config.json's torch_dtype. */
  torchDType: string;
  /** Tensors in the input's state dict. */
  inputTensors: number;
  /** Tensors and parameters written to model.safetensors. */
  tensors: number;
  parameters: number;
  /** Input names not written (buffers, dropped poolers, unknown keys), sorted. */
  skipped: string[];
  /** The config.json written. */
  config: HfConfigJson;
  /** Every file written, in writing order, with its size. */
  files: ConvertedFile[];
}

/**
 * Converts `input` into a model folder at `outDir` (see the file comment).
 *
 *   const r = convertCheckpoint('ViT-B-16.pt', 'models/vit-b-16', { dtype: 'fp16' });
 *   r.architecture  // 'CLIPModel'; r.files: config.json, model.safetensors, tokenizer and preprocessor files
 *
 * Errors: E_ARG for bad options or a non-empty outDir; the readers' E_IO / E_FORMAT /
 * E_UNSUPPORTED and the layouts' E_UNSUPPORTED / E_WEIGHTS (a parameter missing) / E_SHAPE (one
 * misshaped), naming the input; E_IO when a file cannot be written.
 */
export function convertCheckpoint(input: string, outDir: string, options: ConvertOptions = {}): ConvertResult {
  expectPath('input', input);
  expectPath('outDir', outDir);
  const o = checkOptions(input, outDir, options);
  const createDir = checkOutDir(outDir, o.force);
  const hf = toHfWeights(readWeightFile(input), { model: o.model, text: o.text, hiddenAct: o.hiddenAct });
  const inferred = hf.inferred!; // without a config.json the geometry always comes from the shapes
  const { keep, skipped } = selectTensors(hf.tensors, inferred, hf.unused, input);
  const weights = keep.map((e) => castTo(e, o.dtype));
  const config: HfConfigJson = { ...inferred, torch_dtype: torchDType(weights) };
  const small = [
    textFile('config.json', json(config)),
    textFile('preprocessor_config.json', json(defaultPreprocessorConfig(config.model_type, config.vision_config.image_size as number))),
    ...tokenizerFiles(config, o.tokenizer),
  ];
  const files = writeFolder(outDir, createDir, weights, small);
  return {
    input,
    outDir,
    format: hf.format,
    layout: hf.layout,
    modelType: config.model_type,
    architecture: (config.architectures as string[])[0],
    transformers: config.model_type !== 'easynlp_clip',
    torchDType: config.torch_dtype as string,
    inputTensors: hf.storedCount,
    tensors: weights.length,
    parameters: weights.reduce((n, w) => n + elementCount(w.shape), 0),
    skipped,
    config,
    files,
  };
}

// ---------------------------------------------------------------------------------------------
// Options and the output folder

interface CheckedOptions {
  model?: string;
  text?: string;
  hiddenAct?: 'quick_gelu' | 'gelu';
  dtype: ConvertDType;
  tokenizer?: string;
  force: boolean;
}

const CONVERT_OPTIONS: OptionKeys<ConvertOptions> = { model: true, text: true, hiddenAct: true, dtype: true, tokenizer: true, force: true };

function checkOptions(input: unknown, outDir: unknown, options: ConvertOptions): CheckedOptions {
  if (typeof input !== 'string' || input === '') throw typeError('E_ARG', `Expected a checkpoint path string for input but received ${describe(input)}`);
  if (typeof outDir !== 'string' || outDir === '') throw typeError('E_ARG', `Expected a folder path string for outDir but received ${describe(outDir)}`);
  expectOptions('convertCheckpoint', options, CONVERT_OPTIONS);
  for (const key of ['model', 'text', 'tokenizer'] as const)
    if (options[key] !== undefined && typeof options[key] !== 'string') throw typeError('E_ARG', `Expected a string for ${key} but received ${describe(options[key])}`);
  if (options.force !== undefined && typeof options.force !== 'boolean') throw typeError('E_ARG', `Expected a boolean for force but received ${describe(options.force)}`);
  return {
    model: options.model,
    text: options.text,
    hiddenAct: options.hiddenAct, // checked by toHfLayout
    dtype: expectOneOf('dtype', options.dtype ?? 'keep', CONVERT_DTYPES),
    tokenizer: options.tokenizer,
    force: options.force ?? false,
  };
}

/** Refuses an outDir that is a file, or a non-empty folder without force; returns whether it must be created. */
function checkOutDir(outDir: string, force: boolean): boolean {
  let entries: string[];
  try {
    entries = fs.readdirSync(outDir);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return true;
    if (code === 'ENOTDIR') throw new ClipkitError('E_ARG', `Output folder ${outDir} exists and is not a folder`);
    throw new ClipkitError('E_IO', `Cannot read output folder ${outDir}: ${(err as Error).message}`);
  }
  if (entries.length && !force) {
    const shown = entries.sort().slice(0, 5).join(', ') + (entries.length > 5 ? `, … (${entries.length} entries)` : '');
    throw new ClipkitError('E_ARG', `Output folder ${outDir} is not empty (it holds ${shown}); choose an empty folder or pass --force to write into it`);
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Selecting tensors

/** The tensors transformers' class has at the config's geometry, in module order; everything else is skipped. */
function selectTensors(tensors: ReadonlyMap<string, TensorEntry>, config: HfConfigJson, unused: readonly string[], source: string): { keep: TensorEntry[]; skipped: string[] } {
  const want = expectedShapes(config);
  const keep: TensorEntry[] = [];
  const missing: string[] = [];
  for (const [name, shape] of want) {
    const e = tensors.get(name);
    if (!e) {
      missing.push(name);
      continue;
    }
    if (e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i]))
      throw new ClipkitError('E_SHAPE', `${source}: ${name} has shape [${e.shape.join(', ')}] but the geometry its other tensors give needs [${shape.join(', ')}]`);
    keep.push(e);
  }
  if (missing.length)
    throw new ClipkitError(
      'E_WEIGHTS',
      `${source} lacks ${missing.length} of the ${want.size} tensors a ${(config.architectures as string[])[0]} of this geometry has: ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`,
    );
  const extra = [...tensors.keys()].filter((n) => !want.has(n));
  return { keep, skipped: [...unused, ...extra].sort() };
}

/**
 * Name → shape of every parameter of transformers' CLIPModel / ChineseCLIPModel (modeling_clip.py,
 * modeling_chinese_clip.py) for this config, in module order; EasyNLP's model adds its text
 * pooler and projection biases. Buffers are not listed: transformers registers them non-persistent.
 */
function expectedShapes(config: HfConfigJson): Map<string, readonly number[]> {
  const v = config.vision_config, t = config.text_config;
  const n = (section: Record<string, unknown>, key: string) => section[key] as number;
  const out = new Map<string, readonly number[]>();
  const add = (name: string, shape: number[]) => out.set(name, shape);
  const linear = (name: string, outDim: number, inDim: number) => {
    add(`${name}.weight`, [outDim, inDim]);
    add(`${name}.bias`, [outDim]);
  };
  const norm = (name: string, dim: number) => {
    add(`${name}.weight`, [dim]);
    add(`${name}.bias`, [dim]);
  };
  /** CLIPEncoderLayer: pre-LayerNorm attention and MLP. */
  const clipLayers = (prefix: string, section: Record<string, unknown>) => {
    const w = n(section, 'hidden_size'), mlp = n(section, 'intermediate_size');
    for (let i = 0; i < n(section, 'num_hidden_layers'); i++) {
      const l = `${prefix}.encoder.layers.${i}`;
      for (const p of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) linear(`${l}.self_attn.${p}`, w, w);
      norm(`${l}.layer_norm1`, w);
      linear(`${l}.mlp.fc1`, mlp, w);
      linear(`${l}.mlp.fc2`, w, mlp);
      norm(`${l}.layer_norm2`, w);
    }
  };

  const wt = n(t, 'hidden_size'), proj = config.projection_dim;
  if (config.model_type === 'clip') {
    add('text_model.embeddings.token_embedding.weight', [n(t, 'vocab_size'), wt]);
    add('text_model.embeddings.position_embedding.weight', [n(t, 'max_position_embeddings'), wt]);
    clipLayers('text_model', t);
    norm('text_model.final_layer_norm', wt);
  } else {
    add('text_model.embeddings.word_embeddings.weight', [n(t, 'vocab_size'), wt]);
    add('text_model.embeddings.position_embeddings.weight', [n(t, 'max_position_embeddings'), wt]);
    add('text_model.embeddings.token_type_embeddings.weight', [n(t, 'type_vocab_size'), wt]);
    norm('text_model.embeddings.LayerNorm', wt);
    const mlp = n(t, 'intermediate_size');
    for (let i = 0; i < n(t, 'num_hidden_layers'); i++) {
      const l = `text_model.encoder.layer.${i}`;
      for (const p of ['query', 'key', 'value']) linear(`${l}.attention.self.${p}`, wt, wt);
      linear(`${l}.attention.output.dense`, wt, wt);
      norm(`${l}.attention.output.LayerNorm`, wt);
      linear(`${l}.intermediate.dense`, mlp, wt);
      linear(`${l}.output.dense`, wt, mlp);
      norm(`${l}.output.LayerNorm`, wt);
    }
    if (config.model_type === 'easynlp_clip') linear('text_model.pooler.dense', wt, wt);
  }

  const wv = n(v, 'hidden_size'), patch = n(v, 'patch_size'), grid = n(v, 'image_size') / patch;
  add('vision_model.embeddings.class_embedding', [wv]);
  add('vision_model.embeddings.patch_embedding.weight', [wv, n(v, 'num_channels'), patch, patch]);
  add('vision_model.embeddings.position_embedding.weight', [grid * grid + 1, wv]);
  norm('vision_model.pre_layrnorm', wv); // sic: transformers' spelling
  clipLayers('vision_model', v);
  norm('vision_model.post_layernorm', wv);

  add('visual_projection.weight', [proj, wv]);
  add('text_projection.weight', [proj, wt]);
  if (config.model_type === 'easynlp_clip') {
    add('visual_projection.bias', [proj]);
    add('text_projection.bias', [proj]);
  }
  add('logit_scale', []);
  return out;
}

const FLOAT_STORAGE = ['F64', 'F32', 'F16', 'BF16'];
const CAST_OF: Record<Exclude<ConvertDType, 'keep'>, CastTarget> = { fp32: 'F32', fp16: 'F16', bf16: 'BF16' };

/**
 * The entry as it will be written: cast on demand (nothing is kept after writing). `keep` writes it
 * in its stored dtype (F64 as F32); fp32 / fp16 / bf16 cast it (float_cast.ts: round to nearest
 * even, as torch).
 */
function castTo(e: TensorEntry, dtype: ConvertDType): TensorSource {
  if (!FLOAT_STORAGE.includes(e.dtype))
    throw new ClipkitError('E_DTYPE', `Tensor ${e.name} is stored as ${e.dtype}; a model parameter must be a float (F64, F32, F16 or BF16)`);
  const to: CastTarget = dtype === 'keep' ? (e.dtype === 'F64' ? 'F32' : (e.dtype as CastTarget)) : CAST_OF[dtype];
  return { name: e.name, dtype: to, shape: e.shape, bytes: () => castFloatBytes(e.bytes(), e.dtype, to, e.name) };
}

/** config.json's torch_dtype: the dtype most written tensors have (ties: the wider). */
function torchDType(weights: readonly TensorSource[]): string {
  const names: Record<CastTarget, string> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };
  const count = (d: CastTarget) => weights.filter((w) => w.dtype === d).length;
  const top = (Object.keys(names) as CastTarget[]).reduce((best, d) => (count(d) > count(best) ? d : best));
  return names[top];
}

// ---------------------------------------------------------------------------------------------
// Tokenizer and preprocessor files

interface SmallFile {
  name: string;
  bytes: Uint8Array;
}

const textFile = (name: string, text: string): SmallFile => ({ name, bytes: Buffer.from(text, 'utf8') });
const json = (value: unknown) => JSON.stringify(value, null, 2) + '\n';

/** SimpleTokenizer's vocabulary size: 256 byte symbols, 256 with `</w>`, the merges, two special tokens. */
const CLIP_VOCAB_SIZE = 49408;
const CLIP_MERGES = CLIP_VOCAB_SIZE - 512 - 2;

/**
 * The tokenizer files of the config's text tower, from the vocabularies in the package's assets/ or
 * from `dir`, their vocabulary's size checked against the checkpoint's token embedding (E_SHAPE).
 * OpenAI CLIP: vocab.json + merges.txt, given or built from bpe_simple_vocab_16e6.txt.gz as
 * SimpleTokenizer builds its vocabulary (clipVocabFromBpe), so transformers' CLIPTokenizer reads
 * the same ranks; BERT towers: vocab.txt. Both get tokenizer_config.json and special_tokens_map.json.
 */
function tokenizerFiles(config: HfConfigJson, dir: string | undefined): SmallFile[] {
  const from = dir ?? assetsDir();
  const has = (f: string) => fs.existsSync(path.join(from, f));
  const read = (f: string) => readFileBounded(path.join(from, f), 'tokenizer file');
  const rows = config.text_config.vocab_size as number;
  const context = config.text_config.max_position_embeddings as number;
  const checkSize = (size: number, what: string) => {
    if (size !== rows)
      throw new ClipkitError('E_SHAPE', `The tokenizer vocabulary ${what} has ${size} tokens but the checkpoint's token embedding has ${rows} rows; give the matching vocabulary with --tokenizer`);
  };

  if (config.model_type === 'clip') {
    let vocabJson: string, merges: string;
    if (dir !== undefined && has('vocab.json') && has('merges.txt')) {
      vocabJson = read('vocab.json').toString('utf8');
      merges = read('merges.txt').toString('utf8');
    } else if (has(BPE_GZ)) ({ vocabJson, merges } = clipVocabFromBpe(read(BPE_GZ), path.join(from, BPE_GZ)));
    else throw new ClipkitError('E_IO', `Expected vocab.json + merges.txt or ${BPE_GZ} in the tokenizer folder ${from} but found neither`);
    ClipBpeTokenizer.fromVocabMerges(vocabJson, merges, context); // refuses malformed files
    checkSize(Object.keys(JSON.parse(vocabJson)).length, `in ${from}`);
    const special = { bos_token: SOT, eos_token: EOT, unk_token: EOT, pad_token: EOT };
    return [
      textFile('vocab.json', vocabJson),
      textFile('merges.txt', merges),
      textFile('tokenizer_config.json', json({ tokenizer_class: 'CLIPTokenizer', do_lower_case: true, errors: 'replace', model_max_length: context, ...special })),
      textFile('special_tokens_map.json', json(special)),
    ];
  }

  if (!has('vocab.txt')) throw new ClipkitError('E_IO', `Expected vocab.txt in the tokenizer folder ${from} but found none`);
  const vocab = read('vocab.txt');
  const text = vocab.toString('utf8');
  BertWordPieceTokenizer.fromVocabTxt(text); // refuses a vocabulary without [CLS], [SEP], [PAD], [UNK]
  checkSize(text.split('\n').length - (text.endsWith('\n') ? 1 : 0), path.join(from, 'vocab.txt'));
  const special = { unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]', mask_token: '[MASK]' };
  // Chinese-CLIP tokenizes to 52 tokens; EasyNLP's CLIP examples use a sequence length of 32.
  const maxLength = config.model_type === 'chinese_clip' ? 52 : 32;
  return [
    { name: 'vocab.txt', bytes: vocab },
    textFile('tokenizer_config.json', json({ tokenizer_class: 'BertTokenizer', do_lower_case: true, tokenize_chinese_chars: true, strip_accents: null, model_max_length: maxLength, ...special })),
    textFile('special_tokens_map.json', json(special)),
  ];
}

/** vocab.json (compact, in id order) and merges.txt from OpenAI's merges file, as SimpleTokenizer reads it. */
function clipVocabFromBpe(gz: Uint8Array, file: string): { vocabJson: string; merges: string } {
  let text: string;
  try {
    text = gunzipSync(gz).toString('utf8');
  } catch (err) {
    throw new ClipkitError('E_FORMAT', `Invalid ${file}: gunzip failed (${(err as Error).message})`);
  }
  const lines = text.split('\n').slice(1, 1 + CLIP_MERGES); // line 1 is a version header
  if (lines.length !== CLIP_MERGES) throw new ClipkitError('E_FORMAT', `Invalid ${file}: expected ${CLIP_MERGES} merges after the header but found ${lines.length}`);
  const symbols = [...bytesToUnicode().values()];
  const tokens = [...symbols, ...symbols.map((s) => s + '</w>'), ...lines.map((l) => l.trim().split(/\s+/).join('')), SOT, EOT];
  return {
    vocabJson: '{' + tokens.map((t, i) => `${JSON.stringify(t)}:${i}`).join(',') + '}',
    merges: '#version: 0.2\n' + lines.map((l) => l + '\n').join(''),
  };
}

// ---------------------------------------------------------------------------------------------
// Writing

/**
 * Writes every file under a temporary name, then renames them into place, model.safetensors
 * (metadata {"format": "pt"}) last: a folder never shows weights without their config. On failure
 * the temporary files go, and so does a folder this call created.
 */
function writeFolder(outDir: string, createDir: boolean, weights: readonly TensorSource[], small: readonly SmallFile[]): ConvertedFile[] {
  const tmp = (name: string) => path.join(outDir, `.${name}.${process.pid}.tmp`);
  const written: ConvertedFile[] = [];
  try {
    if (createDir) fs.mkdirSync(outDir, { recursive: true });
    written.push({ name: 'model.safetensors', bytes: writeSafetensorsFile(tmp('model.safetensors'), weights, { format: 'pt' }) });
    for (const f of small) {
      fs.writeFileSync(tmp(f.name), f.bytes);
      written.push({ name: f.name, bytes: f.bytes.length });
    }
    for (const f of [...written.slice(1), written[0]]) fs.renameSync(tmp(f.name), path.join(outDir, f.name));
  } catch (err) {
    for (const f of written) removeQuietly(() => fs.rmSync(tmp(f.name), { force: true }));
    removeQuietly(() => fs.rmSync(tmp('model.safetensors'), { force: true })); // a partly written one
    if (createDir) removeQuietly(() => fs.rmdirSync(outDir));
    if (err instanceof ClipkitError) throw err;
    throw new ClipkitError('E_IO', `Cannot write the model folder ${outDir}: ${(err as Error).message}`);
  }
  return written;
}

/** Clean-up after a failure: what cannot be removed (not ours, not empty, already gone) stays. */
function removeQuietly(remove: () => void): void {
  try {
    remove();
  } catch {
    // leave it
  }
}
