/**
 * loadModel on the tiny models (Chinese-CLIP, OpenAI CLIP, AltCLIP) against their float64
 * reference forward passes: embeddings, pooled outputs and every layer's hidden states.
 *
 * Tolerances (fp32): the reference is float64 stored as float32, so each stored value is already
 * within half an ulp (≤ 2.4e-7 at |x| < 4); our float32 path adds rounding from ~10 dependent ops
 * per layer (dot products of length ≤ 512, layer norms, softmax), measured at ≤ 2.2e-6 abs for
 * embeddings of magnitude up to 3.7. We assert |got - want| ≤ 1e-5 + 1e-5·|want| elementwise (≈ 5x
 * margin, and still ~1e5 times tighter than any real bug, which moves values by O(0.1)) and a row
 * cosine ≥ 0.99999. bf16 mode rounds weights and activations to 8 significant bits (rel. 2^-9 ≈
 * 2e-3) per GEMM: measured max abs 0.022 and cosine ≥ 0.99997; we assert cosine ≥ 0.9999 and
 * |diff| ≤ 0.06 + 0.02·|want|.
 */
import { writeFileSync, copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipModel, loadModel } from '../../src/models';
import { logits } from '../../src';
import { assertClose, rejectsCode, tempDir } from '../helpers';
import { cnCases, oaCases, readJson } from '../tokenizers/fixtures';
import { compare, concat, imageFile, modelDir, reference, Reference, referenceInfo, TinyName, tokenizerDir } from './reference';

const FP32 = { atol: 1e-5, rtol: 1e-5, cos: 0.99999 };
const BF16 = { atol: 0.06, rtol: 0.02, cos: 0.9999 };
const PROJ = 64, WIDTH = 128;

function check(got: Float32Array, want: Float32Array, dim: number, tol: typeof FP32, name: string): void {
  const e = compare(got, want, dim);
  assert.ok(e.minCos >= tol.cos, `${name}: cosine ${e.minCos} < ${tol.cos}`);
  assertClose(got, want, { atol: tol.atol, rtol: tol.rtol, name });
}

const xrCases = () => readJson<{ cases: { text: string }[] }>('altclip_tokenizer_cases.json');

const MODEL_TYPE = { chinese_clip_tiny: 'chinese_clip', openai_clip_tiny: 'clip', altclip_tiny: 'altclip', easynlp_clip_cn_tiny: 'easynlp_clip' } as const;
const CONTEXT = { chinese_clip_tiny: 52, openai_clip_tiny: 77, altclip_tiny: 77, easynlp_clip_cn_tiny: 32 } as const;
/** Models whose text positions follow the RoBERTa numbering (padding rows get the pad position). */
const ROBERTA_NUMBERING: readonly TinyName[] = ['altclip_tiny', 'easynlp_clip_cn_tiny'];

/**
 * The main batch's pixel_values: stored in the reference, or (AltCLIP, EasyNLP, whose references
 * leave them out) the OpenAI pipeline's pixels of its four images, which preprocess() reproduces bit
 * for bit.
 */
async function mainPixels(name: TinyName, m: ClipModel, ref: Reference): Promise<Float32Array> {
  if (name === 'chinese_clip_tiny' || name === 'openai_clip_tiny') return ref.get('vision.pixel_values');
  return concat(await Promise.all(referenceInfo(name).main_batch_images!.map((key) => m.preprocess(imageFile(key)))));
}

for (const name of ['chinese_clip_tiny', 'openai_clip_tiny', 'altclip_tiny', 'easynlp_clip_cn_tiny'] as const) {
  const test = suite<{ ref: Reference; m: ClipModel; m1: ClipModel; pixels: Float32Array }>(name);
  test.before(async (ctx) => {
    ctx.ref = reference(name);
    ctx.m = await loadModel(modelDir(name), { batchSize: 4, tokenizerDir: tokenizerDir(name) });
    ctx.m1 = await loadModel(modelDir(name), { batchSize: 1 });
    ctx.pixels = await mainPixels(name, ctx.m, ctx.ref);
  });

  test('config', ({ m, ref }) => {
    assert.is(m.config.modelType, MODEL_TYPE[name]);
    assert.is(m.config.projectionDim, PROJ);
    assert.is(m.config.imageSize, name === 'chinese_clip_tiny' ? 96 : 224);
    assert.is(m.config.contextLength, CONTEXT[name]);
    assert.is(m.config.logitScale, ref.get('logit_scale')[0]);
  });

  test('image tower: pixel_values → pooled_output and image_embeds', async ({ m, ref, pixels }) => {
    const out = await m.visionForward(pixels, 4);
    check(out.pooled.data, ref.get('vision.pooled_output'), WIDTH, FP32, 'pooled_output');
    check(out.embeds.data, ref.get('image_embeds'), PROJ, FP32, 'image_embeds');
    const unit = concat(await m.encodePixels(pixels, 4));
    check(unit, ref.get('image_embeds_normalized'), PROJ, FP32, 'image_embeds_normalized');
    const raw = concat(await m.encodePixels(pixels, 4, { normalize: false }));
    assert.equal(raw, out.embeds.data);
  });

  test('image tower: hidden states (every row of the last layer)', async ({ m, ref, pixels }) => {
    const h = await m.imageHiddenStates(pixels, 4);
    const want = ref.get('vision.last_hidden_state');
    assert.equal(h.lastHiddenState.shape, [...ref.shape('vision.last_hidden_state')]);
    check(h.lastHiddenState.data, want, WIDTH, FP32, 'vision.last_hidden_state');
    assert.is(h.hiddenStates.length, m.config.clip.vision.numHiddenLayers + 1);
    assert.equal(h.hiddenStates[h.hiddenStates.length - 1].data, h.lastHiddenState.data);
  });

  test('text tower: hidden states of every layer, on the real tokens', async ({ m, ref }) => {
    const ids = ref.ints('text.input_ids'), mask = ref.ints('text.attention_mask');
    const [n, context] = ref.shape('text.input_ids');
    const h = await m.textHiddenStates(ids, n);
    // Rows of padding tokens are compared only where the reference's position ids equal ours:
    // RoBERTa numbering gives padding the position of the pad id; BERT and causal CLIP need no care.
    const realRows = (x: Float32Array) => {
      const out: number[] = [];
      for (let r = 0; r < n * context; r++) if (!ROBERTA_NUMBERING.includes(name) || mask[r]) for (let j = 0; j < WIDTH; j++) out.push(x[r * WIDTH + j]);
      return Float32Array.from(out);
    };
    const per = n * context * WIDTH;
    if (name !== 'easynlp_clip_cn_tiny') {
      // (EasyNLP's reference stores the last layer's only.)
      const all = ref.get('text.hidden_states');
      assert.is(h.hiddenStates.length, all.length / per);
      h.hiddenStates.forEach((got, i) =>
        check(realRows(got.data), realRows(all.subarray(i * per, (i + 1) * per)), WIDTH, FP32, `text.hidden_states[${i}]`));
    }
    check(realRows(h.lastHiddenState.data), realRows(ref.get('text.last_hidden_state')), WIDTH, FP32, 'text.last_hidden_state');
    if (name === 'altclip_tiny')
      check(realRows(h.hiddenStates[h.hiddenStates.length - 1].data), realRows(ref.get('text.roberta_last_hidden_state')), WIDTH, FP32, 'text.roberta_last_hidden_state');
  });

  if (name === 'chinese_clip_tiny')
    test('image tower: the 9 real images (stored pixels) in batches of 4, 4, 1', async ({ m, ref }) => {
      const out = await m.visionForward(ref.get('real_images.pixel_values'), 9);
      check(out.embeds.data, ref.get('real_images.image_embeds'), PROJ, FP32, 'real_images.image_embeds');
    });

  test('text tower: input_ids → pooled_output and text_embeds', async ({ m, ref }) => {
    const out = await m.textForward(ref.ints('text.input_ids'), 6);
    check(out.pooled.data, ref.get('text.pooled_output'), WIDTH, FP32, 'text.pooled_output');
    check(out.embeds.data, ref.get('text_embeds'), PROJ, FP32, 'text_embeds');
    const unit = concat(await m.encodeTokens(ref.ints('text.input_ids'), 6));
    check(unit, ref.get('text_embeds_normalized'), PROJ, FP32, 'text_embeds_normalized');
  });

  test('text tower: all 153 tokenizer cases', async ({ m, ref }) => {
    const ids = ref.ints('all_cases.input_ids');
    const out = await m.textForward(ids, 153);
    check(out.embeds.data, ref.get('all_cases.text_embeds'), PROJ, FP32, 'all_cases.text_embeds');
  });

  test('tokenize() equals the reference input_ids; encodeText end to end', async ({ m, ref }) => {
    assert.equal(m.tokenize(referenceInfo(name).texts), ref.ints('text.input_ids'));
    const cases = ({ chinese_clip_tiny: cnCases, openai_clip_tiny: oaCases, altclip_tiny: xrCases, easynlp_clip_cn_tiny: cnCases })[name]().cases.map((c) => c.text);
    assert.equal(m.tokenize(cases), ref.ints('all_cases.input_ids'));
    const unit = concat(await m.encodeText(cases));
    check(unit, ref.get('all_cases.text_embeds_normalized'), PROJ, FP32, 'encodeText');
    assert.equal(concat(await m.encodeText(cases[0])), unit.subarray(0, PROJ));
  });

  test('logits_per_image = exp(logit_scale) · cosine', async ({ m, ref, pixels }) => {
    const img = await m.visionForward(pixels, 4);
    const txt = await m.textForward(ref.ints('text.input_ids'), 6);
    const l = await logits(img.embeds, txt.embeds, Math.exp(m.config.logitScale));
    // logits are ~25x the embeddings' cosines: 25 · 1e-5 relative.
    assertClose(l.data, ref.get('logits_per_image'), { atol: 3e-4, rtol: 1e-5, name: 'logits_per_image' });
  });

  test('true length equals the padded run', async ({ m, ref }) => {
    for (const key of ['text.input_ids', 'all_cases.input_ids']) {
      const ids = ref.ints(key), n = ref.shape(key)[0];
      const exact = await m.textForward(ids, n);
      const padded = await m.textForward(ids, n, m.config.contextLength);
      const e = compare(exact.embeds.data, padded.embeds.data, PROJ);
      assert.ok(e.maxAbs <= 1e-6, `${key}: true length vs padded differ by ${e.maxAbs}`);
    }
  });

  test('batch size 1 equals batch size 4', async ({ m, m1, ref, pixels }) => {
    const ids = ref.ints('all_cases.input_ids');
    const a = await m.textForward(ids, 153), b = await m1.textForward(ids, 153);
    assert.ok(compare(a.embeds.data, b.embeds.data, PROJ).maxAbs <= 1e-6, 'text');
    const px = pixels;
    const c = await m.visionForward(px, 4), d = await m1.visionForward(px, 4);
    assert.ok(compare(c.embeds.data, d.embeds.data, PROJ).maxAbs <= 1e-6, 'image');
  });

  test('concurrent calls on one model (each with its own workspace) equal calls one at a time', async ({ m, ref, pixels }) => {
    const ids = ref.ints('all_cases.input_ids');
    const [t1, i1] = [await m.textForward(ids, 153), await m.visionForward(pixels, 4)];
    const [t2, i2, t3, i3] = await Promise.all([m.textForward(ids, 153), m.visionForward(pixels, 4), m.textForward(ids, 153), m.visionForward(pixels, 4)]);
    for (const t of [t2, t3]) assert.equal(t.embeds.data, t1.embeds.data);
    for (const i of [i2, i3]) assert.equal(i.embeds.data, i1.embeds.data);
    // Results never alias a workspace: a later call leaves earlier results intact.
    const before = i1.pooled.data.slice();
    await m.visionForward(pixels.map((v) => -v), 4);
    assert.equal(i1.pooled.data, before);
  });

  test('bf16 mode within its bound', async ({ ref, pixels }) => {
    const m = await loadModel(modelDir(name), { dtype: 'bf16', batchSize: 8 });
    assert.is(m.dtype, 'bf16');
    const img = await m.visionForward(pixels, 4);
    check(img.embeds.data, ref.get('image_embeds'), PROJ, BF16, 'bf16 image_embeds');
    const txt = await m.textForward(ref.ints('all_cases.input_ids'), 153);
    check(txt.embeds.data, ref.get('all_cases.text_embeds'), PROJ, BF16, 'bf16 all_cases.text_embeds');
  });

  test('bad inputs are refused', async ({ m1 }) => {
    await rejectsCode(() => m1.encodeTokens(new Int32Array(5), 1), 'E_SHAPE', undefined, RangeError);
    await rejectsCode(() => m1.encodeTokens(new Float32Array(m1.config.contextLength) as unknown as Int32Array, 1), 'E_DTYPE', undefined, TypeError);
    await rejectsCode(() => m1.encodePixels(new Float32Array(10), 1), 'E_SHAPE', undefined, RangeError);
    await rejectsCode(() => loadModel(modelDir(name), { dtype: 'fp16' as 'fp32' }), 'E_ARG', undefined, RangeError);
    await rejectsCode(() => loadModel(modelDir(name), { batchSize: 0 }), 'E_ARG', undefined, RangeError);
    assert.equal(await m1.encodeTokens(new Int32Array(0), 0), []);
  });

  test.run();
}

const errors = suite('loadModel errors');
errors('unknown model_type is refused with E_UNSUPPORTED', async () => {
  const dir = tempDir('clipkit-model-');
  const config = JSON.parse(readFileSync(join(modelDir('openai_clip_tiny'), 'config.json'), 'utf8'));
  writeFileSync(join(dir, 'config.json'), JSON.stringify({ ...config, model_type: 'siglip' }));
  copyFileSync(join(modelDir('openai_clip_tiny'), 'model.safetensors'), join(dir, 'model.safetensors'));
  await rejectsCode(() => loadModel(dir), 'E_UNSUPPORTED', /siglip/);
});
errors.run();
