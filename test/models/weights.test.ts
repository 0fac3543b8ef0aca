import * as fs from 'node:fs';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { throwsCode } from '../helpers';
import { readSafetensors } from '../../src/io/safetensors';
import { parseClipConfig, readClipConfig } from '../../src/loading/config';
import { expectedParameters, loadClipWeights } from '../../src/loading/weights';
import { RawTensor, safetensorsBytes, tempDir } from '../io/safetensors_writer';
import { stateDictZip } from '../io/torch_writer';
import { REF_CHECKPOINTS, REF_MODELS } from '../reference_fixtures';

const MODELS = REF_MODELS;
const CN = path.join(MODELS, 'chinese_clip_tiny');
const OA = path.join(MODELS, 'openai_clip_tiny');


/** The fixture's tensors as raw entries, for rewriting into altered copies. */
function rawTensors(dir: string): RawTensor[] {
  const f = readSafetensors(path.join(dir, 'model.safetensors'));
  return [...f.tensors.values()].map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], bytes: t.bytes() }));
}

/** A model folder in a temp dir: the fixture's config and the given tensors. */
function folderWith(src: string, dir: string, tensors: RawTensor[]): string {
  fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
  fs.writeFileSync(path.join(dir, 'model.safetensors'), safetensorsBytes(tensors, { metadata: { format: 'pt' } }));
  return dir;
}

/** Every parameter of `w` has the values of the same parameter of `ref`. */
function sameWeights(w: ReturnType<typeof loadClipWeights>, ref: ReturnType<typeof loadClipWeights>): void {
  assert.is(w.modelType, ref.modelType);
  assert.is(w.logitScale, ref.logitScale);
  const flat = (x: ReturnType<typeof loadClipWeights>) => {
    const out = new Map<string, Float32Array>();
    const walk = (v: unknown, at: string): void => {
      if (v && typeof v === 'object' && 'data' in v && (v as { data: unknown }).data instanceof Float32Array) out.set(at, (v as { data: Float32Array }).data);
      else if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) walk(c, `${at}.${k}`);
    };
    walk({ vision: x.vision, text: x.text }, '');
    return out;
  };
  const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  const got = flat(w), want = flat(ref);
  assert.equal([...got.keys()], [...want.keys()]);
  for (const [name, data] of want) assert.ok(bytes(got.get(name)!).equals(bytes(data)), name);
}

const count = (shapes: readonly (readonly number[])[]) => shapes.reduce((n, s) => n + s.reduce((a, b) => a * b, 1), 0);

const Load = suite('weights: tiny models');

Load('chinese_clip_tiny: every parameter found, shapes and values', () => {
  const w = loadClipWeights(CN);
  assert.is(w.modelType, 'chinese_clip');
  assert.ok(w.text.kind === 'bert');
  assert.equal(w.unexpected, []);
  assert.equal(w.files, [path.join(CN, 'model.safetensors')]);
  assert.is(w.logitScale, 3.203125);
  assert.equal(w.vision.patchEmbedding.shape, [128, 3, 16, 16]);
  assert.equal(w.vision.positionEmbedding.shape, [37, 128]);
  assert.equal(w.vision.projection.shape, [64, 128]);
  assert.is(w.vision.layers.length, 2);
  assert.equal(w.vision.layers[1].fc1.weight.shape, [512, 128]);
  assert.equal(w.text.wordEmbeddings.shape, [21128, 128]);
  assert.equal(w.text.tokenTypeEmbeddings.shape, [2, 128]);
  assert.equal(w.text.layers[0].output.weight.shape, [128, 512]);
  assert.equal(w.text.projection.shape, [64, 128]);
  const expected = expectedParameters(w.config);
  assert.is(count(expected.map((p) => p.shape)), 3683585, 'parameter count from the fixture README');
  const file = readSafetensors(path.join(CN, 'model.safetensors'));
  assert.equal(new Set(expected.map((p) => p.name)), new Set(file.tensors.keys()));
  assert.equal(Array.from(w.text.layers[1].attentionLayerNorm.bias.data), Array.from(file.tensors.get('text_model.encoder.layer.1.attention.output.LayerNorm.bias')!.data()));
  assert.ok(w.vision.classEmbedding.data.every(Number.isFinite));
});

Load('openai_clip_tiny: every parameter found, shapes and values', () => {
  const w = loadClipWeights(OA);
  assert.is(w.modelType, 'clip');
  assert.ok(w.text.kind === 'clip');
  assert.equal(w.unexpected, []);
  assert.is(w.logitScale, 2.900390625);
  assert.equal(w.vision.patchEmbedding.shape, [128, 3, 32, 32]);
  assert.equal(w.vision.positionEmbedding.shape, [50, 128]);
  assert.equal(w.text.tokenEmbedding.shape, [49408, 128]);
  assert.equal(w.text.positionEmbedding.shape, [77, 128]);
  assert.equal(w.text.finalLayerNorm.weight.shape, [128]);
  assert.equal(w.text.layers[1].q.weight.shape, [128, 128]);
  assert.is(count(expectedParameters(w.config).map((p) => p.shape)), 7544065);
  assert.is(expectedParameters(w.config).length, readSafetensors(path.join(OA, 'model.safetensors')).tensors.size);
});

Load('an F32 copy loads to the same values, as views into the file', () => {
  const { dir, cleanup } = tempDir('clipkit-w-');
  try {
    const f = readSafetensors(path.join(CN, 'model.safetensors'));
    const f32 = [...f.tensors.values()].map((t) => {
      const d = t.data();
      return { name: t.name, dtype: 'F32', shape: [...t.shape], bytes: new Uint8Array(d.buffer, d.byteOffset, d.byteLength) };
    });
    const w = loadClipWeights(folderWith(CN, dir, f32));
    const ref = loadClipWeights(CN);
    assert.equal(Array.from(w.text.wordEmbeddings.data.subarray(0, 2000)), Array.from(ref.text.wordEmbeddings.data.subarray(0, 2000)));
    assert.is(w.logitScale, ref.logitScale);
    assert.is(w.vision.projection.data.buffer, w.text.projection.data.buffer, 'both views into the one file buffer');
  } finally {
    cleanup();
  }
});

Load('sharded checkpoint: two shards and an index', () => {
  const { dir, cleanup } = tempDir('clipkit-w-');
  try {
    fs.copyFileSync(path.join(OA, 'config.json'), path.join(dir, 'config.json'));
    const all = rawTensors(OA);
    const weightMap: Record<string, string> = {};
    for (const [s, part] of [all.filter((t) => t.name.startsWith('text')), all.filter((t) => !t.name.startsWith('text'))].entries()) {
      const shard = `model-0000${s + 1}-of-00002.safetensors`;
      fs.writeFileSync(path.join(dir, shard), safetensorsBytes(part));
      for (const t of part) weightMap[t.name] = shard;
    }
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const w = loadClipWeights(dir);
    assert.is(w.files.length, 2);
    const ref = loadClipWeights(OA);
    assert.equal(Array.from(w.vision.layers[0].fc2.weight.data), Array.from(ref.vision.layers[0].fc2.weight.data));
    assert.is(w.logitScale, ref.logitScale);
  } finally {
    cleanup();
  }
});

Load('pytorch_model.bin: the same tensors as model.safetensors (BF16 and F16 storages)', () => {
  for (const src of [CN, OA]) {
    const { dir, cleanup } = tempDir('clipkit-w-');
    try {
      fs.copyFileSync(path.join(src, 'config.json'), path.join(dir, 'config.json'));
      fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), stateDictZip(rawTensors(src)));
      const w = loadClipWeights(dir);
      assert.equal(w.files, [path.join(dir, 'pytorch_model.bin')]);
      assert.equal(w.unexpected, []);
      sameWeights(w, loadClipWeights(src));
    } finally {
      cleanup();
    }
  }
});

Load('pytorch_model.bin as torch.save writes it: the tiny Chinese-CLIP state dict', () => {
  const { dir, cleanup } = tempDir('clipkit-w-');
  try {
    fs.copyFileSync(path.join(CN, 'config.json'), path.join(dir, 'config.json'));
    fs.copyFileSync(path.join(REF_CHECKPOINTS, 'chinese_clip_tiny.pytorch_model.bin'), path.join(dir, 'pytorch_model.bin'));
    const w = loadClipWeights(dir);
    assert.equal(w.files, [path.join(dir, 'pytorch_model.bin')]);
    sameWeights(w, loadClipWeights(CN));
  } finally {
    cleanup();
  }
});

Load('pytorch_model.bin shards behind pytorch_model.bin.index.json', () => {
  const { dir, cleanup } = tempDir('clipkit-w-');
  try {
    fs.copyFileSync(path.join(OA, 'config.json'), path.join(dir, 'config.json'));
    const all = rawTensors(OA);
    const weightMap: Record<string, string> = {};
    const shards = [all.filter((t) => t.name.startsWith('text')), all.filter((t) => !t.name.startsWith('text'))];
    for (const [s, part] of shards.entries()) {
      const shard = `pytorch_model-0000${s + 1}-of-00002.bin`;
      fs.writeFileSync(path.join(dir, shard), stateDictZip(part));
      for (const t of part) weightMap[t.name] = shard;
    }
    const index = path.join(dir, 'pytorch_model.bin.index.json');
    fs.writeFileSync(index, JSON.stringify({ metadata: {}, weight_map: weightMap }));
    const w = loadClipWeights(dir);
    assert.equal(w.files, [path.join(dir, 'pytorch_model-00001-of-00002.bin'), path.join(dir, 'pytorch_model-00002-of-00002.bin')]);
    sameWeights(w, loadClipWeights(OA));

    // A name the index lists but its shard lacks; a shard named outside the folder.
    fs.writeFileSync(index, JSON.stringify({ weight_map: { ...weightMap, 'ghost.weight': 'pytorch_model-00001-of-00002.bin' } }));
    throwsCode(() => loadClipWeights(dir), 'E_WEIGHTS', /pytorch_model\.bin\.index\.json lists 1 tensors its shards lack, e\.g\. ghost\.weight/);
    fs.writeFileSync(index, JSON.stringify({ weight_map: { ...weightMap, 'ghost.weight': '../elsewhere.bin' } }));
    throwsCode(() => loadClipWeights(dir), 'E_FORMAT', /shard "\.\.\/elsewhere\.bin" is not a file name in the folder/);
  } finally {
    cleanup();
  }
});

Load('model.safetensors is read before pytorch_model.bin', () => {
  const { dir, cleanup } = tempDir('clipkit-w-');
  try {
    folderWith(CN, dir, rawTensors(CN));
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'not read');
    assert.equal(loadClipWeights(dir).files, [path.join(dir, 'model.safetensors')]);
  } finally {
    cleanup();
  }
});

Load.run();

const Check = suite('weights: mismatches');

Check('a missing parameter is named with its expected shape', () => {
  const { dir, cleanup } = tempDir('clipkit-w-');
  try {
    folderWith(CN, dir, rawTensors(CN).filter((t) => t.name !== 'text_model.encoder.layer.1.intermediate.dense.weight'));
    throwsCode(() => loadClipWeights(dir), 'E_WEIGHTS', /lacks 1 of the 79 parameters a chinese_clip model with the geometry of .*config\.json needs: text_model\.encoder\.layer\.1\.intermediate\.dense\.weight \[512, 128\]/);
  } finally {
    cleanup();
  }
});

Check('a misshaped parameter is named with expected and actual shape', () => {
  const { dir, cleanup } = tempDir('clipkit-w-');
  try {
    folderWith(OA, dir, rawTensors(OA).map((t) => (t.name === 'text_projection.weight' ? { ...t, shape: [128, 64] } : t)));
    throwsCode(() => loadClipWeights(dir), 'E_SHAPE', /text_projection\.weight: expected \[64, 128\] but received \[128, 64\]/);
  } finally {
    cleanup();
  }
});

Check('a config whose geometry does not match the weights', () => {
  const cfg = JSON.parse(fs.readFileSync(path.join(CN, 'config.json'), 'utf8'));
  const deeper = parseClipConfig({ ...cfg, vision_config: { ...cfg.vision_config, num_hidden_layers: 3 } }, 'deeper.json');
  throwsCode(() => loadClipWeights(CN, deeper), 'E_WEIGHTS', /lacks 16 of .* with the geometry of deeper\.json needs: vision_model\.encoder\.layers\.2\.layer_norm1\.weight \[128\]/);
  const wider = parseClipConfig({ ...cfg, projection_dim: 32 }, 'wider.json');
  throwsCode(() => loadClipWeights(CN, wider), 'E_SHAPE', /visual_projection\.weight: expected \[32, 128\] but received \[64, 128\]; text_projection\.weight/);
  const bigVocab = parseClipConfig({ ...cfg, text_config: { ...cfg.text_config, vocab_size: undefined } }, 'default-vocab.json');
  assert.is(bigVocab.text.vocabSize, 30522);
  throwsCode(() => loadClipWeights(CN, bigVocab), 'E_SHAPE', /word_embeddings\.weight: expected \[30522, 128\] but received \[21128, 128\]/);
  const wrongType = readClipConfig(OA);
  throwsCode(() => loadClipWeights(CN, wrongType), 'E_WEIGHTS', /lacks \d+ of the \d+ parameters a clip model/);
});

Check('extra tensors are ignored and listed; an expected parameter of an integer dtype is refused', () => {
  const { dir, cleanup } = tempDir('clipkit-w-');
  try {
    const extra: RawTensor[] = [
      { name: 'text_model.embeddings.position_ids', dtype: 'I64', shape: [1, 2], bytes: new Uint8Array(16) },
      { name: 'text_model.pooler.dense.bias', dtype: 'BF16', shape: [2], bytes: new Uint8Array(4) },
    ];
    const w = loadClipWeights(folderWith(CN, dir, [...extra, ...rawTensors(CN)]));
    assert.equal(w.unexpected, ['text_model.embeddings.position_ids', 'text_model.pooler.dense.bias']);

    folderWith(CN, dir, rawTensors(CN).map((t) => (t.name === 'logit_scale' ? { ...t, dtype: 'I16' } : t)));
    throwsCode(() => loadClipWeights(dir), 'E_DTYPE', /Tensor "logit_scale" in .* has dtype I16; clipkit reads only F32, F16, BF16/);
  } finally {
    cleanup();
  }
});

Check('a folder without weights, and a pytorch_model.bin that is not a torch.save file', () => {
  const { dir, cleanup } = tempDir('clipkit-w-');
  try {
    fs.copyFileSync(path.join(CN, 'config.json'), path.join(dir, 'config.json'));
    throwsCode(() => loadClipWeights(dir), 'E_IO', /No weights in .*: expected model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin or pytorch_model\.bin\.index\.json$/);
    fs.writeFileSync(path.join(dir, 'pytorch_model.bin'), 'x');
    throwsCode(() => loadClipWeights(dir), 'E_FORMAT', /pytorch_model\.bin: not a torch\.save file/);
  } finally {
    cleanup();
  }
});

Check.run();
