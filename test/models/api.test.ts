/**
 * The image-side public API of ClipModel on the two tiny models: preprocess, encodeImage,
 * similarity, infoNCE and zero-shot classify, against the float64 reference forward passes.
 *
 * Tolerances as in model.test.ts: embeddings |got - want| ≤ 1e-5 + 1e-5·|want| with row cosine ≥
 * 0.99999; logits (≈ 25× the cosines) ≤ 3e-4 + 1e-5·|want|; the loss within 1e-5 relative.
 * Preprocessing is bit-exact.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipkitError } from '../../src/errors';
import { readSafetensors } from '../../src/io/safetensors';
import { ClipModel, EN_TEMPLATES, loadModel, ZH_TEMPLATES } from '../../src/models';
import { assertClose, rejectsCode, tempDir } from '../helpers';
import { compare, concat, modelDir, reference, Reference, TinyName, tokenizerDir } from './reference';
import { REF_IMAGES } from '../reference_fixtures';

const FP32 = { atol: 1e-5, rtol: 1e-5, cos: 0.99999 };
const PROJ = 64;
const IMAGES = REF_IMAGES;
const imgMeta = JSON.parse(readFileSync(join(IMAGES, 'image_preprocess_reference.json'), 'utf8')) as { images: { key: string; file: string }[] };
const imgRef = readSafetensors(join(IMAGES, 'image_preprocess_reference.safetensors')).tensors;
const fileOf = (key: string) => join(IMAGES, imgMeta.images.find((i) => i.key === key)!.file);

function check(got: Float32Array, want: Float32Array, name: string): void {
  const e = compare(got, want, PROJ);
  assert.ok(e.minCos >= FP32.cos, `${name}: cosine ${e.minCos} < ${FP32.cos}`);
  assertClose(got, want, { atol: FP32.atol, rtol: FP32.rtol, name });
}

function firstMismatch(got: ArrayLike<number>, want: ArrayLike<number>): string {
  if (got.length !== want.length) return `length ${got.length} != ${want.length}`;
  for (let i = 0; i < want.length; i++) if (!Object.is(got[i], want[i])) return `index ${i}: got ${got[i]} want ${want[i]}`;
  return '';
}

interface Manifest {
  texts: string[];
  real_image_keys: string[];
  main_batch_images: string[];
}

/** Chinese models default to (and are tested with) Chinese labels and Chinese-CLIP's templates. */
const CHINESE: readonly TinyName[] = ['chinese_clip_tiny', 'easynlp_clip_cn_tiny'];

for (const name of ['chinese_clip_tiny', 'openai_clip_tiny', 'altclip_tiny', 'easynlp_clip_cn_tiny'] as TinyName[]) {
  const test = suite<{ ref: Reference; m: ClipModel; man: Manifest; real: string[] }>(`${name} api`);
  test.before(async (ctx) => {
    ctx.ref = reference(name);
    ctx.m = await loadModel(modelDir(name), { batchSize: 4, tokenizerDir: tokenizerDir(name) });
    ctx.man = JSON.parse(readFileSync(join(modelDir(name), '..', `${name}.reference.json`), 'utf8'));
    ctx.real = ctx.man.real_image_keys.map(fileOf);
  });

  test('preprocess() equals the reference pixel_values bit for bit', async ({ m, ref, man, real }) => {
    if (name === 'chinese_clip_tiny') {
      const want = ref.get('real_images.pixel_values'), per = 3 * 96 * 96;
      for (let i = 0; i < real.length; i++)
        assert.is(firstMismatch(await m.preprocess(real[i]), want.subarray(i * per, (i + 1) * per)), '', man.real_image_keys[i]);
    } else {
      let n = 0;
      for (const key of man.real_image_keys) {
        const pv = imgRef.get(`${key}.openai_clip_224.pixel_values`);
        if (!pv) continue;
        assert.is(firstMismatch(await m.preprocess(fileOf(key)), pv.data()), '', key);
        assert.is(firstMismatch(await m.preprocess(readFileSync(fileOf(key))), pv.data()), '', `${key} (bytes)`);
        n++;
      }
      assert.ok(n >= 2, 'stored openai_clip_224 pixel_values');
    }
  });

  test('encodeImage() on the 9 real images equals real_images.image_embeds(_normalized)', async ({ m, ref, real }) => {
    check(concat(await m.encodeImage(real, { normalize: false })), ref.get('real_images.image_embeds'), 'real_images.image_embeds');
    const unit = concat(await m.encodeImage(real));
    check(unit, ref.get('real_images.image_embeds_normalized'), 'real_images.image_embeds_normalized');
    // One image (path and bytes) gives the same row as in the batch.
    assert.equal(concat(await m.encodeImage(real[2])), unit.subarray(2 * PROJ, 3 * PROJ));
    assert.equal(concat(await m.encodeImage(readFileSync(real[2]))), unit.subarray(2 * PROJ, 3 * PROJ));
    assert.equal(await m.encodeImage([]), []);
  });

  test('similarity() equals real_images.logits_per_image', async ({ m, ref, man, real }) => {
    const img = await m.encodeImage(real, { normalize: false });
    const txt = await m.encodeText(man.texts, { normalize: false });
    const l = await m.similarity(img, txt);
    assert.is(l.length, 9 * man.texts.length);
    assertClose(l, ref.get('real_images.logits_per_image'), { atol: 3e-4, rtol: 1e-5, name: 'real_images.logits_per_image' });
    // Unit embeddings give the same logits.
    assertClose(await m.similarity(await m.encodeImage(real), await m.encodeText(man.texts)), l, { atol: 1e-5, rtol: 1e-6, name: 'unit' });
  });

  test('infoNCE() equals loss.infonce_square (images i ↔ texts i, first 4)', async ({ m, ref, man }) => {
    const img = await m.encodeImage(man.main_batch_images.map(fileOf));
    const txt = await m.encodeText(man.texts.slice(0, 4));
    const r = await m.infoNCE(img, txt);
    const want = ref.get('loss.infonce_square')[0];
    assert.ok(Math.abs(r.loss - want) <= 1e-5 * Math.abs(want), `loss ${r.loss} vs ${want}`);
    const lpi = ref.get('logits_per_image'), t = man.texts.length;
    const square = Float32Array.from({ length: 16 }, (_, k) => lpi[Math.floor(k / 4) * t + (k % 4)]);
    assertClose(r.logits.data, square, { atol: 3e-4, rtol: 1e-5, name: 'infoNCE logits' });
    await rejectsCode(() => m.infoNCE(img, txt.slice(0, 3)), 'E_SHAPE', undefined, RangeError);
  });

  test('classify(): a softmax over the labels, best first, equal to the template-ensemble hand computation', async ({ m, real }) => {
    const labels = CHINESE.includes(name) ? ['猫', '狗', '宝可梦'] : ['cat', 'dog', 'pokemon'];
    const templates = CHINESE.includes(name) ? ZH_TEMPLATES : EN_TEMPLATES;
    const got = await m.classify(real[0], labels);
    assert.equal(got.map((g) => g.label).sort(), [...labels].sort());
    assert.ok(Math.abs(got.reduce((s, g) => s + g.score, 0) - 1) < 1e-12, 'scores sum to 1');
    for (let i = 1; i < got.length; i++) assert.ok(got[i - 1].score >= got[i].score, 'sorted');

    // By hand: mean of the unit prompt embeddings, renormalised; cosine with the unit image row.
    const [image] = await m.encodeImage(real[0]);
    const scale = Math.exp(m.config.logitScale);
    const logit = await Promise.all(
      labels.map(async (label) => {
        const rows = await m.encodeText(templates.map((t) => t.replace('{}', label)));
        const mean = new Float64Array(PROJ);
        for (const r of rows) r.forEach((v, j) => (mean[j] += v));
        const norm = Math.hypot(...mean);
        let dot = 0;
        for (let j = 0; j < PROJ; j++) dot += (mean[j] / norm) * image[j];
        return scale * dot;
      }),
    );
    const max = Math.max(...logit), e = logit.map((v) => Math.exp(v - max)), z = e.reduce((s, v) => s + v, 0);
    for (const g of got) {
      const want = e[labels.indexOf(g.label)] / z;
      assert.ok(Math.abs(g.score - want) <= 1e-5, `${g.label}: ${g.score} vs ${want}`);
    }
    // Cached: the same answer again, also from concurrent calls (which share one encoding).
    assert.equal(await m.classify(real[0], labels), got);
    const [a, b] = await Promise.all([m.classify(real[0], labels, { templates: ['{}'] }), m.classify(real[0], labels, { templates: ['{}'] })]);
    assert.equal(a, b);
    const emb = await m.labelEmbeddings(labels);
    assert.is(emb.length, 3);
    for (const r of emb) assert.ok(Math.abs(Math.hypot(...r) - 1) < 1e-6, 'unit label embedding');
  });

  test('classify(): custom templates and the other ensemble', async ({ m, real }) => {
    const labels = ['cat', 'dog'];
    const custom = ['a photo of a {}.', 'a drawing of a {}.'];
    const got = await m.classify(real[1], labels, { templates: custom });
    const [image] = await m.encodeImage(real[1]);
    const rows = await m.encodeText(labels.flatMap((l) => custom.map((t) => t.replace('{}', l))));
    const lab = labels.map((_, i) => {
      const s = rows[2 * i].map((v, j) => v + rows[2 * i + 1][j]);
      const n = Math.hypot(...s);
      return s.map((v) => v / n);
    });
    const sims = await m.similarity([image], lab);
    const want = 1 / (1 + Math.exp(sims[1] - sims[0])); // P(cat)
    assertClose([got.find((g) => g.label === 'cat')!.score], [want], { atol: 1e-5, rtol: 0, name: 'custom templates' });
    const other = await m.classify(real[1], labels, { templates: CHINESE.includes(name) ? 'en' : 'zh' });
    assert.is(other.length, 2);
  });

  test('classify() / encodeImage() errors', async ({ m, real }) => {
    await rejectsCode(() => m.classify(real[0], []), 'E_ARG', /non-empty array of label/, TypeError);
    await rejectsCode(() => m.classify(real[0], ['a'], { templates: 'fr' as 'en' }), 'E_ARG', undefined, RangeError);
    await rejectsCode(() => m.classify(real[0], ['a'], { templates: ['no placeholder'] }), 'E_ARG', /templates\[0\]/, RangeError);
    const dir = tempDir('clipkit-api-');
    const broken = join(dir, 'broken.jpg');
    writeFileSync(broken, readFileSync(real[1]).subarray(0, 200));
    const e = await rejectsCode(() => m.encodeImage([real[0], real[1], real[2], real[3], real[4], broken, real[5]]), 'E_FORMAT', /Image 5 \(.*broken\.jpg\)/);
    assert.instance(e, ClipkitError);
    await rejectsCode(() => m.encodeImage([real[0], join(dir, 'missing.png')]), 'E_IO', /Image 1 \(.*missing\.png\)/);
    await rejectsCode(() => m.classify(broken, ['a', 'b']), 'E_FORMAT', /broken\.jpg/);
    await rejectsCode(() => m.encodeImage([real[0], 42 as unknown as string]), 'E_ARG', /img\[1\]/, TypeError);
    await rejectsCode(() => m.similarity([new Float32Array(3)], [new Float32Array(PROJ)]), 'E_SHAPE', undefined, RangeError);
  });

  test.run();
}

const templates = suite('templates');
templates('80 English and 80 Chinese ImageNet templates, each with one {}', () => {
  for (const list of [EN_TEMPLATES, ZH_TEMPLATES]) {
    assert.is(list.length, 80);
    for (const t of list) assert.is(t.split('{}').length, 2, t);
  }
  assert.is(new Set(EN_TEMPLATES).size, 80);
  assert.is(EN_TEMPLATES[0], 'a bad photo of a {}.');
  assert.is(ZH_TEMPLATES[0], '{}的照片。');
});
templates.run();
