import * as fs from 'node:fs';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { throwsCode } from '../helpers';
import { readTorchCheckpoint } from '../../src/io/pytorch';
import { readSafetensors } from '../../src/io/safetensors';
import type { TensorEntry } from '../../src/io/tensor_entry';
import { toHfLayout } from '../../src/loading/layouts';
import { parseClipConfig } from '../../src/loading/config';
import { checkClipWeights, loadClipWeights } from '../../src/loading/weights';
import { OWN_FIXTURES, REF_CHECKPOINTS, REF_MODELS } from '../reference_fixtures';

/** The reference set's original-layout checkpoints and tiny models; the crafted cases of test/fixtures/checkpoints/cases (make_torch_cases.py). */
const CHECKPOINTS = REF_CHECKPOINTS;
const CASES = path.join(OWN_FIXTURES, 'checkpoints', 'cases');
const MODELS = REF_MODELS;
const readJson = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));

/** Same dtype, shape and bytes, and bit-identical float32 values. */
function sameTensor(got: TensorEntry | undefined, want: TensorEntry, name: string): void {
  assert.ok(got, `${name} is missing`);
  assert.is(got!.dtype, want.dtype, `${name} dtype`);
  assert.equal([...got!.shape], [...want.shape], `${name} shape`);
  assert.ok(Buffer.from(got!.bytes()).equals(Buffer.from(want.bytes())), `${name}: bytes differ`);
  const g = got!.data(), w = want.data();
  const gb = new Uint32Array(g.buffer, g.byteOffset, g.length), wb = new Uint32Array(w.buffer, w.byteOffset, w.length);
  for (let i = 0; i < wb.length; i++) if (gb[i] !== wb[i]) assert.unreachable(`${name}[${i}]: ${g[i]} != ${w[i]}`);
}

/** The config.json fields that decide the forward pass. */
function geometry(config: Record<string, any>) {
  const pick = (o: Record<string, unknown>, keys: string[]) => Object.fromEntries(keys.map((k) => [k, o[k]]));
  return {
    projection_dim: config.projection_dim,
    text: pick(config.text_config, [
      'vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings',
      'hidden_act', 'layer_norm_eps', 'type_vocab_size', 'pad_token_id',
    ]),
    vision: pick(config.vision_config, [
      'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'image_size', 'patch_size', 'hidden_act', 'layer_norm_eps',
    ]),
  };
}

// ---------------------------------------------------------------------------------------------
const Fixtures = suite('pytorch: original-layout checkpoints against the Hugging Face safetensors');

Fixtures('openai_clip_tiny.pt (OpenAI names, F16) maps to model.safetensors bit for bit, with its config', () => {
  const ck = readTorchCheckpoint(path.join(CHECKPOINTS, 'openai_clip_tiny.pt'));
  assert.is(ck.format, 'zip');
  assert.is(ck.stateDictKey, '');
  assert.is(ck.tensors.size, 62);
  assert.equal(ck.tensors.get('visual.proj')!.shape, [128, 64]);
  const hf = toHfLayout(ck.tensors, { source: 'openai_clip_tiny.pt' });
  assert.is(hf.layout, 'openai');
  assert.equal(hf.unused, []);
  const st = readSafetensors(path.join(MODELS, 'openai_clip_tiny', 'model.safetensors'));
  assert.equal([...hf.tensors.keys()].sort(), [...st.tensors.keys()].sort());
  for (const [name, want] of st.tensors) sameTensor(hf.tensors.get(name), want, name);
  // Every field of the fixture's config.json, not only the geometry.
  assert.equal(hf.config, readJson(path.join(MODELS, 'openai_clip_tiny', 'config.json')));
});

Fixtures('chinese_clip_tiny.pt (training dict, module. prefix, BF16) maps to model.safetensors bit for bit', () => {
  const ck = readTorchCheckpoint(path.join(CHECKPOINTS, 'chinese_clip_tiny.pt'));
  assert.is(ck.stateDictKey, 'state_dict');
  assert.equal(ck.extra, { epoch: 1, step: 1, name: 'chinese_clip_tiny' });
  assert.is(ck.tensors.size, 71);
  assert.ok([...ck.tensors.keys()].every((k) => k.startsWith('module.')));
  const hf = toHfLayout(ck.tensors);
  assert.is(hf.layout, 'chinese_clip');
  assert.is(hf.prefix, 'module.');
  const st = readSafetensors(path.join(MODELS, 'chinese_clip_tiny', 'model.safetensors'));
  assert.equal([...hf.tensors.keys()].sort(), [...st.tensors.keys()].sort());
  for (const [name, want] of st.tensors) sameTensor(hf.tensors.get(name), want, name);
  assert.equal(hf.config, readJson(path.join(MODELS, 'chinese_clip_tiny', 'config.json')));
});

Fixtures('chinese_clip_tiny.pytorch_model.bin (Hugging Face names) passes through unchanged', () => {
  const ck = readTorchCheckpoint(path.join(CHECKPOINTS, 'chinese_clip_tiny.pytorch_model.bin'));
  assert.is(ck.tensors.size, 79);
  const hf = toHfLayout(ck.tensors);
  assert.is(hf.layout, 'hf');
  assert.is(hf.tensors.get('text_model.embeddings.word_embeddings.weight'), ck.tensors.get('text_model.embeddings.word_embeddings.weight'));
  const st = readSafetensors(path.join(MODELS, 'chinese_clip_tiny', 'model.safetensors'));
  for (const [name, want] of st.tensors) sameTensor(hf.tensors.get(name), want, name);
  assert.equal(geometry(hf.config), geometry(readJson(path.join(MODELS, 'chinese_clip_tiny', 'config.json'))));
});

Fixtures('easynlp_clip_cn_tiny pytorch_model.bin reads, int64 buffers included, and maps to the easynlp_clip names', () => {
  const ck = readTorchCheckpoint(path.join(MODELS, 'easynlp_clip_cn_tiny', 'pytorch_model.bin'));
  assert.is(ck.tensors.size, 85);
  const ids = ck.tensors.get('text_encoder.embeddings.position_ids')!;
  assert.is(ids.dtype, 'I64');
  assert.equal(ids.shape, [1, 512]);
  const b = ids.bytes();
  const values = new BigInt64Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  assert.equal([...values].map(Number), Array.from({ length: 512 }, (_, i) => i));
  throwsCode(() => ids.data(), 'E_DTYPE', /position_ids.*has dtype I64; clipkit reads only F32, F16, BF16/);
  const vids = ck.tensors.get('vision_encoder.vision_model.embeddings.position_ids')!;
  assert.equal(vids.shape, [1, 50]);
  assert.is(new BigInt64Array(vids.bytes().slice().buffer)[49], 49n);

  const hf = toHfLayout(ck.tensors);
  assert.is(hf.layout, 'easynlp');
  assert.is(hf.config.model_type, 'easynlp_clip');
  assert.equal(hf.unused, ['text_encoder.embeddings.position_ids', 'vision_encoder.vision_model.embeddings.position_ids']);
  const fixtureConfig = readJson(path.join(MODELS, 'easynlp_clip_cn_tiny', 'config.json'));
  assert.equal(geometry(hf.config), geometry(fixtureConfig));
  // Renamed, not changed: the pooler and both projection biases are kept; logit_scale becomes a scalar.
  for (const [from, to] of [
    ['text_encoder.pooler.dense.weight', 'text_model.pooler.dense.weight'],
    ['text_encoder.encoder.layer.1.output.LayerNorm.bias', 'text_model.encoder.layer.1.output.LayerNorm.bias'],
    ['vision_encoder.vision_model.encoder.layers.0.self_attn.q_proj.weight', 'vision_model.encoder.layers.0.self_attn.q_proj.weight'],
    ['text_projection.weight', 'text_projection.weight'],
    ['text_projection.bias', 'text_projection.bias'],
    ['vision_projection.weight', 'visual_projection.weight'],
    ['vision_projection.bias', 'visual_projection.bias'],
  ])
    sameTensor(hf.tensors.get(to), ck.tensors.get(from)!, to);
  assert.equal(hf.tensors.get('logit_scale')!.shape, []);
  assert.is(hf.tensors.get('logit_scale')!.data()[0], 2.5);
  assert.is(hf.tensors.size, 83);
});

Fixtures('aligned F32 tensors are views into the file buffer, F16 is widened once', () => {
  const ck = readTorchCheckpoint(path.join(CASES, 'zip_protocol2.pt'));
  const a = ck.tensors.get('shared.a')!, b = ck.tensors.get('shared.b')!, c = ck.tensors.get('shared.c')!;
  // One storage, three tensors at element offsets 0, 8 and 20 of the same file buffer.
  assert.is(a.data().buffer, c.data().buffer);
  assert.is(b.data().byteOffset - a.data().byteOffset, 8 * 4);
  assert.is(c.data().byteOffset - a.data().byteOffset, 20 * 4);
  assert.is(a.data().buffer, a.bytes().buffer);
  const h = ck.tensors.get('f16.matrix')!;
  assert.is(h.data(), h.data());
});

Fixtures('the mapped tensors and inferred config load through the model loader like the safetensors folder', () => {
  for (const [file, model] of [['openai_clip_tiny.pt', 'openai_clip_tiny'], ['chinese_clip_tiny.pt', 'chinese_clip_tiny']]) {
    const hf = toHfLayout(readTorchCheckpoint(path.join(CHECKPOINTS, file)).tensors, { source: file });
    const weights = checkClipWeights(hf.tensors, parseClipConfig(hf.config, file), file);
    const reference = loadClipWeights(path.join(MODELS, model));
    assert.equal(weights.unexpected, []);
    assert.is(weights.logitScale, reference.logitScale);
    assert.equal([...weights.vision.layers[1].v.weight.data], [...reference.vision.layers[1].v.weight.data]);
    assert.equal([...weights.vision.projection.data], [...reference.vision.projection.data]);
    assert.equal([...weights.text.projection.data], [...reference.text.projection.data]);
  }
});

// ---------------------------------------------------------------------------------------------
const Cases = suite('pytorch: torch.save cases (legacy and zip, protocols 2/4/5, views, dtypes)');
const expected = readJson(path.join(CASES, 'expected.json')).files as Record<string, any>;

for (const [file, want] of Object.entries(expected)) {
  if (want.refused_global || want.same_tensors_as) continue;
  Cases(`${file}: every tensor's dtype, shape, bytes and values`, () => {
    const ck = readTorchCheckpoint(path.join(CASES, file));
    assert.is(ck.format, file.startsWith('legacy') ? 'legacy' : 'zip');
    assert.is(ck.stateDictKey, want.state_dict_key);
    assert.equal([...ck.tensors.keys()], Object.keys(want.tensors), 'names in file order');
    for (const [name, t] of Object.entries(want.tensors as Record<string, any>)) {
      const e = ck.tensors.get(name)!;
      assert.is(e.dtype, t.dtype, `${name} dtype`);
      assert.equal([...e.shape], t.shape, `${name} shape`);
      assert.is(Buffer.from(e.bytes()).toString('hex'), t.hex, `${name} bytes`);
      if (t.dtype === 'F64' || t.dtype === 'I64') {
        throwsCode(() => e.data(), 'E_DTYPE', new RegExp(`${name.replace('.', '\\.')}.*${t.dtype}`));
        continue;
      }
      if (!t.values) continue;
      const got = e.data();
      assert.is(got.length, t.values.length, `${name} length`);
      const values = (t.values as (number | string)[]).map((v) => (typeof v === 'number' ? v : Number(v.replace('inf', 'Infinity'))));
      for (let i = 0; i < got.length; i++) if (!Object.is(got[i], values[i])) assert.unreachable(`${name}[${i}]: ${got[i]} != ${values[i]}`);
      assert.equal(e.tensor().shape, t.shape);
    }
    const extra = JSON.parse(JSON.stringify(ck.extra, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
    assert.equal(extra, want.extra);
  });
}

Cases('the transpose and strided slices are gathered from the shared storage, not misread as contiguous', () => {
  const ck = readTorchCheckpoint(path.join(CASES, 'legacy_protocol2.pt'));
  const m = ck.tensors.get('f32.matrix')!.data(); // [6, 5]
  const t = ck.tensors.get('f32.transposed')!.data(); // [5, 6]
  for (let i = 0; i < 6; i++) for (let j = 0; j < 5; j++) assert.is(t[j * 6 + i], m[i * 5 + j]);
  const s = ck.tensors.get('f32.strided')!; // base[::2, 1::2] -> [3, 2]
  assert.equal(s.shape, [3, 2]);
  assert.equal([...s.data()], [m[1], m[3], m[11], m[13], m[21], m[23]]);
});

Cases('a TorchScript archive (traced OpenAI-layout model) gives the tensors of its state dict and maps like it', () => {
  const jit = readTorchCheckpoint(path.join(CASES, 'torchscript_openai_tiny.pt'));
  const plain = readTorchCheckpoint(path.join(CASES, expected['torchscript_openai_tiny.pt'].same_tensors_as));
  assert.is(jit.format, 'torchscript');
  assert.equal([...jit.tensors.keys()].sort(), [...plain.tensors.keys()].sort());
  for (const [name, want] of plain.tensors) sameTensor(jit.tensors.get(name), want, name);
  const hfJit = toHfLayout(jit.tensors), hfPlain = toHfLayout(plain.tensors);
  assert.is(hfJit.layout, 'openai');
  assert.equal(hfJit.config, hfPlain.config);
  assert.equal(
    [hfJit.config.vision_config.image_size, hfJit.config.vision_config.patch_size, hfJit.config.text_config.max_position_embeddings, hfJit.config.projection_dim],
    [16, 8, 7, 16],
  );
  for (const [name, want] of hfPlain.tensors) sameTensor(hfJit.tensors.get(name), want, name);
});

Cases('the hostile files written by the generator are refused by the global they name', () => {
  for (const [file, want] of Object.entries(expected)) {
    if (!want.refused_global) continue;
    throwsCode(() => readTorchCheckpoint(path.join(CASES, file)), 'E_FORMAT', new RegExp(`Refusing to load global ${want.refused_global.replace('.', '\\.')} from .*${file}`));
  }
});

Fixtures.run();
Cases.run();
