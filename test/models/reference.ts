/** The tiny models' reference outputs (float64 forward passes stored as float32) and comparisons. */
import { copyFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { readSafetensors, SafetensorsTensor } from '../../src/io/safetensors';

export const MODELS = join(__dirname, '..', 'fixtures', 'models');
export const TOKENIZERS = join(__dirname, '..', 'fixtures', 'tokenizer');
export type TinyName = 'chinese_clip_tiny' | 'openai_clip_tiny';
export const modelDir = (name: TinyName) => join(MODELS, name);

/** A folder holding just the tokenizer files of a tiny model (the fixtures keep them apart). */
export function tokenizerDir(name: TinyName): string {
  const dir = mkdtempSync(join(tmpdir(), `clipkit-tok-${name}-`));
  const files: Record<string, string> =
    name === 'chinese_clip_tiny'
      ? { 'tokenizer_config.json': join(TOKENIZERS, name, 'tokenizer_config.json'), 'vocab.txt': join(TOKENIZERS, 'vocab.txt') }
      : Object.fromEntries(['tokenizer_config.json', 'vocab.json', 'merges.txt'].map((f) => [f, join(TOKENIZERS, name, f)]));
  for (const [to, from] of Object.entries(files)) copyFileSync(from, join(dir, to));
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
