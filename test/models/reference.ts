/** The tiny models' reference outputs (float64 forward passes stored as float32) and comparisons. */
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { readSafetensors, SafetensorsTensor } from '../../src/io/safetensors';
import { tempDir } from '../helpers';
import { REF_IMAGES, REF_MODELS, REF_TOKENIZER } from '../reference_fixtures';

export const MODELS = REF_MODELS;
export const TOKENIZERS = REF_TOKENIZER;
export type TinyName = 'chinese_clip_tiny' | 'openai_clip_tiny' | 'altclip_tiny' | 'easynlp_clip_cn_tiny';
export const IMAGES = REF_IMAGES;
/** A tiny model's Hugging Face folder: weights, config.json, preprocessor_config.json and its tokenizer files. */
export const modelDir = (name: TinyName) => join(MODELS, name);

const TOKENIZER_FILES = ['tokenizer_config.json', 'special_tokens_map.json', 'vocab.txt', 'vocab.json', 'merges.txt', 'sentencepiece.bpe.model'];

/**
 * A fresh folder holding just the tokenizer files of a tiny model, copied from its model folder:
 * for the tokenizerDir option, and to check that nothing else in the model folder is needed to tokenize.
 */
export function tokenizerDir(name: TinyName): string {
  const dir = tempDir(`clipkit-tok-${name}-`);
  const files = TOKENIZER_FILES.filter((f) => existsSync(join(modelDir(name), f)));
  if (!files.length) throw new Error(`${modelDir(name)} holds no tokenizer files`);
  for (const f of files) copyFileSync(join(modelDir(name), f), join(dir, f));
  return dir;
}

export interface Reference {
  get(name: string): Float32Array;
  shape(name: string): readonly number[];
  /** An int64 tensor as Int32Array (values are token ids / mask bits). */
  ints(name: string): Int32Array;
}

export function reference(name: TinyName): Reference {
  const t = readSafetensors(join(MODELS, `${name}.reference.safetensors`)).tensors;
  const entry = (k: string): SafetensorsTensor => {
    const e = t.get(k);
    if (!e) throw new Error(`reference ${name} has no tensor ${k}`);
    return e;
  };
  return {
    get: (k) => entry(k).data(),
    shape: (k) => entry(k).shape,
    ints: (k) => {
      const e = entry(k);
      if (e.dtype !== 'I64') throw new Error(`${k} is ${e.dtype}, not I64`);
      const b = e.bytes();
      const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
      return Int32Array.from({ length: b.byteLength / 8 }, (_, i) => Number(v.getBigInt64(i * 8, true)));
    },
  };
}

/** The reference's metadata (.reference.json): texts, image keys, tensor list. */
export function referenceInfo(name: TinyName): { texts: string[]; main_batch_images?: string[]; real_image_keys?: string[] } {
  return JSON.parse(readFileSync(join(MODELS, `${name}.reference.json`), 'utf8'));
}

/** The file of each image key of the shared image fixtures (`pokemon` → pokemon.jpeg, …). */
export function imageFile(key: string): string {
  const images = (JSON.parse(readFileSync(join(IMAGES, 'image_preprocess_reference.json'), 'utf8')) as { images: { key: string; file: string }[] }).images;
  const entry = images.find((i) => i.key === key);
  if (!entry) throw new Error(`no image ${key} in image_preprocess_reference.json`);
  return join(IMAGES, entry.file);
}

export interface Errors {
  maxAbs: number;
  minCos: number;
}

/** Worst elementwise |got - want| and worst row cosine, rows of length dim. */
export function compare(got: ArrayLike<number>, want: ArrayLike<number>, dim: number): Errors {
  assert.is(got.length, want.length, `length ${got.length} != ${want.length}`);
  let maxAbs = 0, minCos = 1;
  for (let r = 0; r < want.length / dim; r++) {
    let dot = 0, gg = 0, ww = 0;
    for (let j = r * dim; j < (r + 1) * dim; j++) {
      maxAbs = Math.max(maxAbs, Math.abs(got[j] - want[j]));
      dot += got[j] * want[j];
      gg += got[j] * got[j];
      ww += want[j] * want[j];
    }
    minCos = Math.min(minCos, gg === 0 && ww === 0 ? 1 : dot / Math.sqrt(gg * ww));
  }
  return { maxAbs, minCos };
}

/** Joins per-row arrays into one. */
export const concat = (rows: Float32Array[]): Float32Array => {
  const out = new Float32Array(rows.reduce((n, r) => n + r.length, 0));
  let o = 0;
  for (const r of rows) out.set(r, (o += r.length) - r.length);
  return out;
};
