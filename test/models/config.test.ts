import * as fs from 'node:fs';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ErrorCode } from '../../src/errors';
import { throwsCode } from '../helpers';
import { parseClipConfig, parsePreprocessConfig, readClipConfig, readPreprocessConfig } from '../../src/loading/config';
import { tempDir } from '../io/safetensors_writer';
import { REF_MODELS } from '../reference_fixtures';

const MODELS = REF_MODELS;
const CN = path.join(MODELS, 'chinese_clip_tiny');
const OA = path.join(MODELS, 'openai_clip_tiny');
const json = (file: string) => JSON.parse(fs.readFileSync(file, 'utf8'));


const Config = suite('config.json');

Config('chinese_clip_tiny: every field from the file, nothing defaulted', () => {
  const c = readClipConfig(CN);
  assert.is(c.modelType, 'chinese_clip');
  assert.is(c.source, path.join(CN, 'config.json'));
  assert.is(c.projectionDim, 64);
  assert.is(c.logitScaleInitValue, 2.6592);
  assert.equal(c.vision, {
    hiddenSize: 128, intermediateSize: 512, numHiddenLayers: 2, numAttentionHeads: 2, numChannels: 3,
    imageSize: 96, patchSize: 16, hiddenAct: 'quick_gelu', layerNormEps: 1e-5,
  });
  assert.equal(c.text, {
    kind: 'bert', vocabSize: 21128, hiddenSize: 128, intermediateSize: 512, numHiddenLayers: 2, numAttentionHeads: 2,
    maxPositionEmbeddings: 512, typeVocabSize: 2, hiddenAct: 'gelu', layerNormEps: 1e-12, padTokenId: 0,
    positionOffset: 0, pooling: 'cls', pooledSize: 128,
  });
  assert.equal(c.defaulted, []);
});

Config('altclip_tiny: XLM-R numbering (positions from pad + 1), transformation to project_dim', () => {
  const c = readClipConfig(path.join(MODELS, 'altclip_tiny', 'config.json'));
  assert.is(c.modelType, 'altclip');
  assert.equal(c.text, {
    kind: 'bert', vocabSize: 8002, hiddenSize: 128, intermediateSize: 512, numHiddenLayers: 2, numAttentionHeads: 2,
    maxPositionEmbeddings: 514, typeVocabSize: 1, hiddenAct: 'gelu', layerNormEps: 1e-5, padTokenId: 1,
    positionOffset: 2, pooling: 'transformation', pooledSize: 128,
  });
  assert.equal(c.defaulted, []);
  const bare = parseClipConfig({ model_type: 'altclip' }, 'alt.json');
  assert.ok(bare.text.kind === 'bert');
  assert.equal([bare.text.vocabSize, bare.text.hiddenSize, bare.text.numHiddenLayers, bare.text.pooledSize, bare.projectionDim], [250002, 1024, 24, 768, 768]);
  throwsCode(() => parseClipConfig({ model_type: 'altclip', text_config: { max_position_embeddings: 2 } }, 'alt.json'), 'E_FORMAT', /leaves no positions/);
});

Config('openai_clip_tiny: every field from the file, nothing defaulted', () => {
  const c = readClipConfig(path.join(OA, 'config.json'));
  assert.is(c.modelType, 'clip');
  assert.is(c.projectionDim, 64);
  assert.equal(c.vision, {
    hiddenSize: 128, intermediateSize: 512, numHiddenLayers: 2, numAttentionHeads: 2, numChannels: 3,
    imageSize: 224, patchSize: 32, hiddenAct: 'quick_gelu', layerNormEps: 1e-5,
  });
  assert.equal(c.text, {
    kind: 'clip', vocabSize: 49408, hiddenSize: 128, intermediateSize: 512, numHiddenLayers: 2, numAttentionHeads: 2,
    maxPositionEmbeddings: 77, hiddenAct: 'quick_gelu', layerNormEps: 1e-5, padTokenId: 1, bosTokenId: 49406, eosTokenId: 49407,
  });
  assert.equal(c.defaulted, []);
});

Config('left-out fields take the defaults of that model type and are listed', () => {
  const cn = parseClipConfig({ model_type: 'chinese_clip', vision_config: { patch_size: 16 }, text_config: { vocab_size: 21128 } }, 'cn.json');
  assert.is(cn.text.vocabSize, 21128);
  assert.is(cn.vision.patchSize, 16);
  assert.is(cn.text.hiddenSize, 768);
  assert.is(cn.text.layerNormEps, 1e-12);
  assert.is(cn.text.hiddenAct, 'gelu');
  assert.is(cn.vision.layerNormEps, 1e-5);
  assert.is(cn.projectionDim, 512);
  assert.ok(cn.defaulted.includes('text_config.hidden_size') && cn.defaulted.includes('projection_dim'));
  assert.not.ok(cn.defaulted.includes('text_config.vocab_size') || cn.defaulted.includes('vision_config.patch_size'));

  const bare = parseClipConfig({ model_type: 'chinese_clip' }, 'bare.json');
  assert.is(bare.text.vocabSize, 30522, 'ChineseCLIPTextConfig default differs from the real vocabulary');
  assert.is(bare.vision.patchSize, 32);

  const oa = parseClipConfig({ model_type: 'clip' }, 'oa.json');
  assert.ok(oa.text.kind === 'clip');
  assert.equal([oa.text.vocabSize, oa.text.hiddenSize, oa.text.numAttentionHeads, oa.text.maxPositionEmbeddings], [49408, 512, 8, 77]);
  assert.equal([oa.vision.hiddenSize, oa.vision.patchSize, oa.vision.imageSize], [768, 32, 224]);
  assert.is(oa.text.layerNormEps, 1e-5);
  assert.is(oa.defaulted.length, 2 + 9 + 11); // projection_dim and logit_scale_init_value, 9 vision fields, 11 text fields
});

Config('legacy text_config_dict / vision_config_dict replace text_config / vision_config', () => {
  const c = parseClipConfig(
    { model_type: 'clip', text_config: { hidden_size: 999 }, text_config_dict: { hidden_size: 128, num_attention_heads: 2 }, vision_config_dict: { patch_size: 16 } },
    'legacy.json',
  );
  assert.is(c.text.hiddenSize, 128);
  assert.is(c.vision.patchSize, 16);
});

Config('square pairs are accepted; other pairs are unsupported', () => {
  const c = parseClipConfig({ ...json(path.join(CN, 'config.json')), vision_config: { ...json(path.join(CN, 'config.json')).vision_config, image_size: [96, 96] } }, 'x');
  assert.is(c.vision.imageSize, 96);
  throwsCode(() => parseClipConfig({ model_type: 'clip', vision_config: { image_size: [224, 160] } }, 'x.json'), 'E_UNSUPPORTED', /vision_config\.image_size \[224,160\] in x\.json/);
});

Config('unknown or missing model_type', () => {
  throwsCode(() => parseClipConfig({ model_type: 'siglip' }, 'a/config.json'), 'E_UNSUPPORTED', /model_type string "siglip" in a\/config\.json; supported: chinese_clip, clip, altclip/);
  throwsCode(() => parseClipConfig({ model_type: 7 }, 'a/config.json'), 'E_UNSUPPORTED', /model_type number 7/);
  throwsCode(() => parseClipConfig({ text_config: {} }, 'a/config.json'), 'E_FORMAT', /a\/config\.json: required field model_type is missing/);
  throwsCode(() => parseClipConfig([], 'a/config.json'), 'E_FORMAT', /expected a JSON object but found array/);
});

Config('bad fields name the field and the file', () => {
  const base = json(path.join(CN, 'config.json'));
  const withText = (t: object) => ({ ...base, text_config: { ...base.text_config, ...t } });
  const withVision = (v: object) => ({ ...base, vision_config: { ...base.vision_config, ...v } });
  const cases: [object, ErrorCode, RegExp][] = [
    [withText({ hidden_size: '128' }), 'E_FORMAT', /Invalid config cn\.json: expected an integer >= 1 for text_config\.hidden_size but found string "128"/],
    [withText({ num_attention_heads: 0 }), 'E_FORMAT', /text_config\.num_attention_heads but found number 0/],
    [withText({ intermediate_size: 512.5 }), 'E_FORMAT', /text_config\.intermediate_size but found number 512\.5/],
    [withText({ num_attention_heads: 3 }), 'E_FORMAT', /text_config\.hidden_size 128 is not divisible by text_config\.num_attention_heads 3/],
    [withText({ hidden_act: 'gelu_new' }), 'E_UNSUPPORTED', /text_config\.hidden_act "gelu_new" in cn\.json; supported: gelu, quick_gelu/],
    [withText({ position_embedding_type: 'relative_key' }), 'E_UNSUPPORTED', /text_config\.position_embedding_type string "relative_key"/],
    [withText({ layer_norm_eps: -1 }), 'E_FORMAT', /a positive number for text_config\.layer_norm_eps/],
    [withVision({ patch_size: 10 }), 'E_FORMAT', /vision_config\.image_size 96 is not a multiple of vision_config\.patch_size 10/],
    [withVision({ hidden_act: 42 }), 'E_FORMAT', /an activation name for vision_config\.hidden_act but found number 42/],
    [{ ...base, vision_config: [1] }, 'E_FORMAT', /expected an object for vision_config but found array/],
    [{ ...base, projection_dim: -64 }, 'E_FORMAT', /projection_dim but found number -64/],
  ];
  for (const [cfg, code, match] of cases) throwsCode(() => parseClipConfig(cfg, 'cn.json'), code, match);
});

Config('file errors: missing file, invalid JSON', () => {
  const { dir, cleanup } = tempDir('clipkit-cfg-');
  try {
    throwsCode(() => readClipConfig(dir), 'E_IO', /Cannot read config .*config\.json/);
    fs.writeFileSync(path.join(dir, 'config.json'), '{"model_type": "clip",');
    throwsCode(() => readClipConfig(dir), 'E_FORMAT', /Invalid config .*config\.json: not valid JSON/);
  } finally {
    cleanup();
  }
});

Config.run();

const Pre = suite('preprocessor_config.json');

Pre('chinese_clip_tiny: fixed height/width resize, bicubic, CLIP mean/std', () => {
  const p = readPreprocessConfig(CN);
  assert.equal(p, {
    source: path.join(CN, 'preprocessor_config.json'), processorType: 'ChineseCLIPImageProcessor', doConvertRgb: true, doResize: true,
    size: { height: 96, width: 96 }, resample: 'bicubic', doCenterCrop: true, cropSize: { height: 96, width: 96 }, doRescale: true,
    rescaleFactor: 0.00392156862745098, doNormalize: true, mean: [0.48145466, 0.4578275, 0.40821073], std: [0.26862954, 0.26130258, 0.27577711],
    defaulted: [],
  });
});

Pre('openai_clip_tiny: shortest edge then crop', () => {
  const p = readPreprocessConfig(path.join(OA, 'preprocessor_config.json'));
  assert.equal(p.size, { shortestEdge: 224 });
  assert.equal(p.cropSize, { height: 224, width: 224 });
  assert.is(p.processorType, 'CLIPImageProcessor');
  assert.is(p.resample, 'bicubic');
  assert.equal(p.defaulted, []);
});

Pre('defaults and legacy integer sizes', () => {
  const d = parsePreprocessConfig({}, 'p.json');
  assert.equal(d.size, { shortestEdge: 224 });
  assert.equal(d.cropSize, { height: 224, width: 224 });
  assert.is(d.resample, 'bicubic');
  assert.is(d.rescaleFactor, 1 / 255);
  assert.equal(d.mean, [0.48145466, 0.4578275, 0.40821073]);
  assert.is(d.processorType, null);
  assert.is(d.defaulted.length, 11);
  const legacy = parsePreprocessConfig({ feature_extractor_type: 'CLIPFeatureExtractor', size: 336, crop_size: 336, resample: 2, do_center_crop: false }, 'p.json');
  assert.equal(legacy.size, { shortestEdge: 336 });
  assert.equal(legacy.cropSize, { height: 336, width: 336 });
  assert.is(legacy.resample, 'bilinear');
  assert.is(legacy.doCenterCrop, false);
  assert.is(legacy.processorType, 'CLIPFeatureExtractor');
});

Pre('bad fields name the field and the file', () => {
  const cases: [object, ErrorCode, RegExp][] = [
    [{ resample: 7 }, 'E_FORMAT', /Invalid config p\.json: expected a PIL resampling filter 0\.\.5 .* for resample but found number 7/],
    [{ image_mean: [0.5, 0.5] }, 'E_FORMAT', /three finite numbers .* for image_mean but found array \[0\.5,0\.5\]/],
    [{ image_std: [0.5, 0, 0.5] }, 'E_FORMAT', /a positive number for image_std\[1\] but found number 0/],
    [{ do_resize: 'yes' }, 'E_FORMAT', /true or false for do_resize but found string "yes"/],
    [{ size: {} }, 'E_FORMAT', /\{shortest_edge\}, \{height, width\} or an integer for size but found an object/],
    [{ size: { height: 96 } }, 'E_FORMAT', /a positive integer for size\.width but found undefined/],
    [{ size: { shortest_edge: 224, longest_edge: 1333 } }, 'E_UNSUPPORTED', /size\.longest_edge in p\.json/],
    [{ crop_size: { height: 0, width: 224 } }, 'E_FORMAT', /crop_size\.height but found number 0/],
    [{ rescale_factor: 0 }, 'E_FORMAT', /a positive number for rescale_factor/],
    [[1, 2], 'E_FORMAT', /expected a JSON object/],
  ];
  for (const [cfg, code, match] of cases) throwsCode(() => parsePreprocessConfig(cfg, 'p.json'), code, match);
});

Pre.run();
