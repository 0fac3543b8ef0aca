/**
 * loadModel on original PyTorch checkpoints, as they are: a .pt / .bin file alone (tokenizer from the
 * bundled vocabulary, standard preprocessing) and a folder holding pytorch_model.bin. Tokens, text
 * and image embeddings equal the tiny models' float64 references within the fp32 tolerances of
 * model.test.ts.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadModel } from '../../src/models';
import { assertClose, rejectsCode, tempDir } from '../helpers';
import { REF_CHECKPOINTS } from '../reference_fixtures';
import { concat, imageFile, modelDir, reference, referenceInfo, TinyName } from './reference';

const CHECKPOINTS = REF_CHECKPOINTS;
const FP32 = { atol: 1e-5, rtol: 1e-5 };

const CASES: [file: string, name: TinyName, modelType: string][] = [
  ['openai_clip_tiny.pt', 'openai_clip_tiny', 'clip'],
  ['chinese_clip_tiny.pt', 'chinese_clip_tiny', 'chinese_clip'],
  ['chinese_clip_tiny.pytorch_model.bin', 'chinese_clip_tiny', 'chinese_clip'],
];

const test = suite('models from original PyTorch checkpoints');

for (const [file, name, modelType] of CASES) {
  test(`${file}: loaded as it is, equal to the ${name} reference`, async () => {
    const ref = reference(name), info = referenceInfo(name);
    const m = await loadModel(join(CHECKPOINTS, file), { batchSize: 4 });
    assert.is(m.config.modelType, modelType);
    assert.is(m.config.logitScale, ref.get('logit_scale')[0]);
    assert.equal(m.tokenize(info.texts), ref.ints('text.input_ids'), 'bundled vocabulary gives the reference ids');
    assertClose(concat(await m.encodeText(info.texts, { normalize: false })), ref.get('text_embeds'), { ...FP32, name: 'text_embeds' });
    const images = info.real_image_keys!.map(imageFile);
    assertClose(concat(await m.encodeImage(images, { normalize: false })), ref.get('real_images.image_embeds'), { ...FP32, name: 'real_images.image_embeds' });
  });
}

test('checkpoint options: a named geometry must agree with the shapes; gelu changes the image tower', async () => {
  const file = join(CHECKPOINTS, 'openai_clip_tiny.pt');
  // ViT-B-32 does not fit the tiny model.
  await rejectsCode(() => loadModel(file, { checkpoint: { model: 'ViT-B-32' } }), 'E_SHAPE');
  const quick = await loadModel(file), gelu = await loadModel(file, { checkpoint: { hiddenAct: 'gelu' } });
  assert.is(gelu.config.clip.vision.hiddenAct, 'gelu');
  const img = imageFile('pokemon');
  const [a] = await quick.encodeImage(img), [b] = await gelu.encodeImage(img);
  assert.not.equal(a, b);
  // A string is not the options object.
  await rejectsCode(() => loadModel(file, { checkpoint: 'ViT-B-32' as unknown as object }), 'E_ARG', undefined, TypeError);
});

test('a folder with pytorch_model.bin and config.json loads like the safetensors folder', async () => {
  const dir = tempDir('clipkit-bin-');
  copyFileSync(join(CHECKPOINTS, 'chinese_clip_tiny.pytorch_model.bin'), join(dir, 'pytorch_model.bin'));
  const fixture = modelDir('chinese_clip_tiny');
  for (const f of ['config.json', 'preprocessor_config.json']) copyFileSync(join(fixture, f), join(dir, f));
  const m = await loadModel(dir);
  const ref = reference('chinese_clip_tiny');
  const out = await m.textForward(ref.ints('all_cases.input_ids'), 153);
  assertClose(out.embeds.data, ref.get('all_cases.text_embeds'), { ...FP32, name: 'all_cases.text_embeds' });
});

test.run();
