/**
 * `clipkit convert` / convertCheckpoint on the tiny checkpoints: the written model.safetensors
 * equals the fixture folder's bit for bit, config and preprocessor config read back as the
 * fixture's, the tokenizer files give the reference ids on all 153 cases, the folder embeds exactly
 * as the fixture folder does; dtype casts, EasyNLP's layout, --tokenizer, a safetensors input, and
 * refusals (non-empty folder, garbage input, wrong vocabulary, a write that fails) that leave
 * nothing behind.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { readSafetensors, SafetensorsTensor } from '../../src/io/safetensors';
import { writeSafetensorsFile } from '../../src/io/safetensors_writer';
import { readTorchCheckpoint } from '../../src/io/pytorch';
import { readClipConfig, readPreprocessConfig } from '../../src/loading/config';
import { convertCheckpoint, ConvertResult } from '../../src/loading/convert';
import { loadModel } from '../../src/models';
import { loadTokenizer } from '../../src/tokenizers';
import { throwsCode } from '../helpers';
import { modelDir, reference, referenceInfo, TinyName, TOKENIZERS } from '../models/reference';
import { cnCases, firstDiff, oaCases } from '../tokenizers/fixtures';
import { REF_CHECKPOINTS } from '../reference_fixtures';
import { cli, modelFolder, ROOT } from './fixture_model';

const CHECKPOINTS = REF_CHECKPOINTS;
const EASYNLP = join(modelDir('easynlp_clip_cn_tiny'), 'pytorch_model.bin');
const INPUTS: { file: string; model: TinyName; layout: string }[] = [
  { file: join(CHECKPOINTS, 'openai_clip_tiny.pt'), model: 'openai_clip_tiny', layout: 'openai' },
  { file: join(CHECKPOINTS, 'chinese_clip_tiny.pt'), model: 'chinese_clip_tiny', layout: 'chinese_clip' },
  { file: join(CHECKPOINTS, 'chinese_clip_tiny.pytorch_model.bin'), model: 'chinese_clip_tiny', layout: 'hf' },
];

const scratch = mkdtempSync(join(tmpdir(), 'clipkit-convert-'));
let counter = 0;
/** A fresh path under the scratch folder (not created). */
const fresh = (what: string) => join(scratch, `${what}-${counter++}`);

interface Ctx {
  converted: Map<string, { dir: string; result: ConvertResult }>;
}
const test = suite<Ctx>('clipkit convert');

test.before((ctx) => {
  ctx.converted = new Map();
  for (const input of INPUTS) {
    const dir = fresh(input.layout);
    ctx.converted.set(input.file, { dir, result: convertCheckpoint(input.file, dir) });
  }
});
test.after(() => rmSync(scratch, { recursive: true, force: true }));

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
}

function expectSameTensors(got: Map<string, SafetensorsTensor>, want: Map<string, SafetensorsTensor>, what: string): void {
  assert.equal([...got.keys()].sort(), [...want.keys()].sort(), `${what}: tensor names`);
  for (const [name, w] of want) {
    const g = got.get(name)!;
    assert.is(g.dtype, w.dtype, `${what}: ${name} dtype`);
    assert.equal(g.shape, w.shape, `${what}: ${name} shape`);
    assert.ok(sameBytes(g.bytes(), w.bytes()), `${what}: ${name} bytes differ`);
  }
}

/** A ClipConfig / PreprocessConfig without the file it came from. */
const withoutSource = <T extends { source: string }>(c: T) => ({ ...c, source: '' });

for (const input of INPUTS) {
  const label = `${input.layout} (${input.file.split('/').pop()})`;

  test(`${label}: model.safetensors equals the fixture's bit for bit`, (ctx) => {
    const { dir, result } = ctx.converted.get(input.file)!;
    const got = readSafetensors(join(dir, 'model.safetensors'));
    const want = readSafetensors(join(modelDir(input.model), 'model.safetensors'));
    assert.equal(got.metadata, { format: 'pt' });
    expectSameTensors(got.tensors, want.tensors, label);
    assert.is(result.layout, input.layout);
    assert.is(result.tensors, want.tensors.size);
    assert.equal(result.skipped, []);
  });

  test(`${label}: config.json and preprocessor_config.json read back as the fixture's`, (ctx) => {
    const { dir } = ctx.converted.get(input.file)!;
    const fixture = modelDir(input.model);
    const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    const want = JSON.parse(readFileSync(join(fixture, 'config.json'), 'utf8'));
    for (const key of ['architectures', 'model_type', 'projection_dim', 'torch_dtype']) assert.equal(config[key], want[key], key);
    for (const section of ['text_config', 'vision_config'])
      for (const [key, value] of Object.entries(want[section] as Record<string, unknown>)) assert.equal(config[section][key], value, `${section}.${key}`);
    assert.equal(withoutSource(readClipConfig(dir)), withoutSource(readClipConfig(fixture)));
    assert.equal(JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')), JSON.parse(readFileSync(join(fixture, 'preprocessor_config.json'), 'utf8')));
    assert.equal(withoutSource(readPreprocessConfig(dir)), withoutSource(readPreprocessConfig(fixture)));
  });

  test(`${label}: the folder embeds texts and pixels exactly as the fixture folder`, async (ctx) => {
    const { dir } = ctx.converted.get(input.file)!;
    const [got, want] = await Promise.all([loadModel(dir), loadModel(modelFolder(input.model))]);
    const texts = referenceInfo(input.model).texts;
    assert.equal(await got.encodeText(texts, { normalize: false }), await want.encodeText(texts, { normalize: false }));
    const ref = reference(input.model);
    const pixels = ref.get('vision.pixel_values');
    const n = ref.shape('vision.pixel_values')[0];
    assert.equal(await got.encodePixels(pixels, n, { normalize: false }), await want.encodePixels(pixels, n, { normalize: false }));
    const [images, embeds] = [await got.encodePixels(pixels, n), await got.encodeText(texts)];
    assert.equal(await got.similarity(images, embeds), await want.similarity(await want.encodePixels(pixels, n), await want.encodeText(texts)), 'logits (logit_scale included)');
  });
}

test('the OpenAI tokenizer files are transformers-style vocab.json + merges.txt and give the reference ids on all 153 cases', (ctx) => {
  const { dir } = ctx.converted.get(INPUTS[0].file)!;
  for (const f of ['vocab.json', 'merges.txt'])
    assert.ok(sameBytes(readFileSync(join(dir, f)), readFileSync(join(modelDir('openai_clip_tiny'), f))), `${f} equals the fixture's`);
  assert.equal(JSON.parse(readFileSync(join(dir, 'special_tokens_map.json'), 'utf8')), {
    bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '<|endoftext|>',
  });
  const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
  assert.is(config.tokenizer_class, 'CLIPTokenizer');
  assert.is(config.model_max_length, 77);
  const { cases, context_length } = oaCases();
  const ids = loadTokenizer(dir).tokenize(cases.map((c) => c.text));
  cases.forEach((c, i) => assert.is(firstDiff(ids.subarray(i * context_length, (i + 1) * context_length), c.ids), '', `case ${c.id}`));
});

test('the Chinese-CLIP tokenizer files give the reference ids on all 153 cases', (ctx) => {
  for (const input of INPUTS.slice(1)) {
    const { dir } = ctx.converted.get(input.file)!;
    assert.ok(sameBytes(readFileSync(join(dir, 'vocab.txt')), readFileSync(join(TOKENIZERS, 'vocab.txt'))), 'vocab.txt is the bundled one');
    const config = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    assert.equal([config.tokenizer_class, config.do_lower_case, config.model_max_length], ['BertTokenizer', true, 52]);
    const { cases, context_length } = cnCases();
    const ids = loadTokenizer(dir).tokenize(cases.map((c) => c.text));
    cases.forEach((c, i) => assert.is(firstDiff(ids.subarray(i * context_length, (i + 1) * context_length), c.ids), '', `case ${c.id}`));
  }
});

test('--dtype fp32 writes F32 with the same values; fp16 of F16 and bf16 of BF16 change nothing', async (ctx) => {
  const cases: [string, TinyName, 'fp32' | 'fp16' | 'bf16'][] = [
    [INPUTS[1].file, 'chinese_clip_tiny', 'fp32'],
    [INPUTS[0].file, 'openai_clip_tiny', 'fp16'],
    [INPUTS[1].file, 'chinese_clip_tiny', 'bf16'],
  ];
  for (const [file, model, dtype] of cases) {
    const dir = fresh(dtype);
    const r = convertCheckpoint(file, dir, { dtype });
    const got = readSafetensors(join(dir, 'model.safetensors')).tensors;
    const want = readSafetensors(join(modelDir(model), 'model.safetensors')).tensors;
    if (dtype !== 'fp32') {
      expectSameTensors(got, want, dtype);
      continue;
    }
    assert.is(r.torchDType, 'float32');
    assert.is(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype, 'float32');
    for (const [name, w] of want) {
      const g = got.get(name)!;
      assert.is(g.dtype, 'F32', name);
      assert.equal(g.data(), w.data(), `${name}: values`);
    }
    const ref = reference(model);
    const [a, b] = await Promise.all([loadModel(dir), loadModel(ctx.converted.get(file)!.dir)]);
    const pixels = ref.get('vision.pixel_values');
    assert.equal(await a.encodePixels(pixels, ref.shape('vision.pixel_values')[0]), await b.encodePixels(pixels, ref.shape('vision.pixel_values')[0]));
  }
});

test('EasyNLP: model_type easynlp_clip with the text pooler and projection biases; buffers skipped', () => {
  const dir = fresh('easynlp');
  const r = convertCheckpoint(EASYNLP, dir);
  assert.equal([r.layout, r.modelType, r.architecture, r.transformers], ['easynlp', 'easynlp_clip', 'EasyNLPCLIPModel', false]);
  assert.equal(r.skipped, ['text_encoder.embeddings.position_ids', 'vision_encoder.vision_model.embeddings.position_ids']);
  const src = readTorchCheckpoint(EASYNLP).tensors;
  const got = readSafetensors(join(dir, 'model.safetensors')).tensors;
  assert.is(got.size, src.size - 2);
  const origin = (hf: string) =>
    hf === 'visual_projection.weight' || hf === 'visual_projection.bias'
      ? hf.replace('visual_', 'vision_')
      : hf.startsWith('text_model.')
        ? 'text_encoder.' + hf.slice('text_model.'.length)
        : hf.startsWith('vision_model.')
          ? 'vision_encoder.' + hf
          : hf;
  for (const [name, g] of got) {
    const s = src.get(origin(name));
    assert.ok(s, `${name} comes from ${origin(name)}`);
    assert.is(g.dtype, s!.dtype, name);
    assert.ok(sameBytes(g.bytes(), s!.bytes()), `${name} bytes`);
  }
  for (const name of ['text_model.pooler.dense.weight', 'text_projection.bias', 'visual_projection.bias']) assert.ok(got.has(name), name);
  assert.equal(got.get('logit_scale')!.shape, []);
  const config = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.is(config.model_type, 'easynlp_clip');
  assert.equal([config.text_config.vocab_size, config.text_config.pad_token_id, config.vision_config.image_size], [21128, 0, 224]);
  assert.is(JSON.parse(readFileSync(join(dir, 'preprocessor_config.json'), 'utf8')).image_processor_type, 'CLIPImageProcessor');
  const { cases, context_length } = cnCases();
  const ids = loadTokenizer(dir, { contextLength: context_length }).tokenize(cases.map((c) => c.text));
  cases.forEach((c, i) => assert.is(firstDiff(ids.subarray(i * context_length, (i + 1) * context_length), c.ids), '', `case ${c.id}`));
});

test('a Hugging Face .safetensors input (here widened to F64) converts; keep writes F64 as F32', () => {
  const src = readSafetensors(join(modelDir('chinese_clip_tiny'), 'model.safetensors')).tensors;
  const f64 = join(scratch, 'chinese_clip_tiny.f64.safetensors');
  writeSafetensorsFile(f64, [...src.values()].map((t) => ({ name: t.name, dtype: 'F64' as const, shape: t.shape, bytes: () => new Uint8Array(Float64Array.from(t.data()).buffer) })));
  const dir = fresh('f64');
  const r = convertCheckpoint(f64, dir);
  assert.equal([r.format, r.layout, r.torchDType], ['safetensors', 'hf', 'float32']);
  const got = readSafetensors(join(dir, 'model.safetensors')).tensors;
  for (const [name, w] of src) {
    assert.is(got.get(name)!.dtype, 'F32', name);
    assert.equal(got.get(name)!.data(), w.data(), name);
  }
});

test('--tokenizer: a vocabulary from another folder, and one whose size disagrees with the checkpoint', () => {
  const dir = fresh('own-tokenizer');
  convertCheckpoint(INPUTS[0].file, dir, { tokenizer: modelDir('openai_clip_tiny') });
  for (const f of ['vocab.json', 'merges.txt']) assert.ok(sameBytes(readFileSync(join(dir, f)), readFileSync(join(modelDir('openai_clip_tiny'), f))), f);

  const short = fresh('short-vocab');
  mkdirSync(short);
  writeFileSync(join(short, 'vocab.txt'), readFileSync(join(TOKENIZERS, 'vocab.txt'), 'utf8').split('\n').slice(0, 21000).join('\n') + '\n');
  const out = fresh('refused');
  throwsCode(() => convertCheckpoint(INPUTS[1].file, out, { tokenizer: short }), 'E_SHAPE', /has 21000 tokens but the checkpoint's token embedding has 21128 rows/);
  assert.not.ok(existsSync(out), 'nothing written');
  throwsCode(() => convertCheckpoint(INPUTS[0].file, out, { tokenizer: short }), 'E_IO', /Expected vocab\.json \+ merges\.txt or bpe_simple_vocab_16e6\.txt\.gz/);
});

test('a non-empty folder is refused without force and kept as it was; with force the files are replaced', () => {
  const dir = fresh('busy');
  mkdirSync(dir);
  writeFileSync(join(dir, 'notes.txt'), 'mine');
  throwsCode(() => convertCheckpoint(INPUTS[0].file, dir), 'E_ARG', /is not empty \(it holds notes\.txt\).*--force/);
  assert.equal(readdirSync(dir), ['notes.txt']);
  convertCheckpoint(INPUTS[0].file, dir, { force: true });
  assert.equal(readdirSync(dir).sort(), ['config.json', 'merges.txt', 'model.safetensors', 'notes.txt', 'preprocessor_config.json', 'special_tokens_map.json', 'tokenizer_config.json', 'vocab.json']);
  throwsCode(() => convertCheckpoint(INPUTS[0].file, join(dir, 'notes.txt')), 'E_ARG', /exists and is not a folder/);
});

test('a write that fails is E_IO and leaves no model, no config and no temporary file', () => {
  const dir = fresh('blocked');
  mkdirSync(dir);
  const blocker = `.model.safetensors.${process.pid}.tmp`;
  mkdirSync(join(dir, blocker)); // the temporary file cannot be created
  throwsCode(() => convertCheckpoint(INPUTS[1].file, dir, { force: true }), 'E_IO', /Cannot create/);
  assert.equal(readdirSync(dir), [blocker]);
});

test('unreadable inputs: the reader\'s error naming the file, and no folder created', () => {
  const garbage = join(scratch, 'garbage.pt');
  writeFileSync(garbage, Buffer.from('this is not a checkpoint at all, just text'));
  const out = fresh('garbage');
  throwsCode(() => convertCheckpoint(garbage, out), 'E_FORMAT', /garbage\.pt: not a torch\.save file/);
  throwsCode(() => convertCheckpoint(join(scratch, 'absent.pt'), out), 'E_IO', /absent\.pt/);
  const badSafetensors = join(scratch, 'garbage.safetensors');
  writeFileSync(badSafetensors, Buffer.alloc(16, 0xff));
  throwsCode(() => convertCheckpoint(badSafetensors, out), 'E_FORMAT', /garbage\.safetensors/);
  throwsCode(() => convertCheckpoint(INPUTS[0].file, out, { model: 'ViT-L-14' }), 'E_SHAPE', /does not match ViT-L-14/);
  throwsCode(() => convertCheckpoint(INPUTS[0].file, out, { dtype: 'fp8' as never }), 'E_ARG', /Expected one of keep, fp32, fp16, bf16 for dtype/, RangeError);
  assert.not.ok(existsSync(out));
});

test('CLI: the summary, --json, and errors without a stack', () => {
  const dir = fresh('cli');
  const run = cli(['convert', INPUTS[0].file, dir]);
  assert.is(run.status, 0, run.stderr);
  assert.match(run.stdout, /torch\.save zip, OpenAI CLIP \/ open_clip names, 62 tensors/);
  assert.match(run.stdout, /CLIPModel \(model_type clip\), float16, 7,544,065 parameters in 78 tensors/);
  assert.match(run.stdout, /image 224, patch 32, width 128, 2 layers, 2 heads, MLP 512, quick_gelu/);
  assert.match(run.stdout, /model\.safetensors\s+15,097,/);

  const again = cli(['convert', INPUTS[0].file, dir]);
  assert.is(again.status, 1);
  assert.match(again.stderr, /^clipkit: Output folder .* is not empty/);

  const easy = cli(['convert', EASYNLP, fresh('cli-easynlp'), '--json', '--dtype', 'bf16']);
  assert.is(easy.status, 0, easy.stderr);
  const r = JSON.parse(easy.stdout);
  assert.equal([r.modelType, r.transformers, r.torchDType, r.geometry.text.vocab, r.geometry.projection], ['easynlp_clip', false, 'bfloat16', 21128, 64]);
  const note = cli(['convert', EASYNLP, fresh('cli-easynlp-text')]);
  assert.match(note.stdout, /transformers has no class for model_type easynlp_clip/);

  const garbage = cli(['convert', join(ROOT, 'package.json'), fresh('cli-garbage')]);
  assert.is(garbage.status, 1);
  assert.match(garbage.stderr, /^clipkit: Invalid PyTorch checkpoint .*package\.json: not a torch\.save file/);
});

test.run();
