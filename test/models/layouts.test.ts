import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { throwsCode } from '../helpers';
import { lazyTensorEntry, TensorEntry } from '../../src/io/tensor_entry';
import { detectLayout, EASYNLP_DEFAULT_LOGIT_SCALE, toHfLayout } from '../../src/loading/layouts';

/**
 * Synthetic state dicts: shapes only (reading a tensor's bytes fails the test, so these also check
 * that mapping and inference read nothing), or small F32 tensors holding 0, 1, 2, ... for value checks.
 */
function entry(name: string, shape: number[], withValues: boolean): TensorEntry {
  const n = shape.reduce((a, b) => a * b, 1);
  return lazyTensorEntry(name, 'F32', shape, () => {
    if (!withValues) throw new Error(`${name} was read`);
    return new Uint8Array(Float32Array.from({ length: n }, (_, i) => i).buffer);
  }, 'synthetic');
}

interface Geometry {
  width: number; layers: number; patch: number; image: number; // vision
  textWidth: number; textLayers: number; proj: number; vocab: number; context: number;
}

function block(prefix: string, w: number, out: [string, number[]][]): void {
  out.push(
    [`${prefix}attn.in_proj_weight`, [3 * w, w]], [`${prefix}attn.in_proj_bias`, [3 * w]],
    [`${prefix}attn.out_proj.weight`, [w, w]], [`${prefix}attn.out_proj.bias`, [w]],
    [`${prefix}ln_1.weight`, [w]], [`${prefix}ln_1.bias`, [w]], [`${prefix}ln_2.weight`, [w]], [`${prefix}ln_2.bias`, [w]],
    [`${prefix}mlp.c_fc.weight`, [4 * w, w]], [`${prefix}mlp.c_fc.bias`, [4 * w]],
    [`${prefix}mlp.c_proj.weight`, [w, 4 * w]], [`${prefix}mlp.c_proj.bias`, [w]],
  );
}

function visual(g: Geometry, out: [string, number[]][]): void {
  const grid = g.image / g.patch;
  out.push(
    ['visual.class_embedding', [g.width]], ['visual.positional_embedding', [grid * grid + 1, g.width]], ['visual.proj', [g.width, g.proj]],
    ['visual.conv1.weight', [g.width, 3, g.patch, g.patch]], ['visual.ln_pre.weight', [g.width]], ['visual.ln_pre.bias', [g.width]],
    ['visual.ln_post.weight', [g.width]], ['visual.ln_post.bias', [g.width]],
  );
  for (let i = 0; i < g.layers; i++) block(`visual.transformer.resblocks.${i}.`, g.width, out);
}

function openaiStateDict(g: Geometry, prefix = '', withValues = false): Map<string, TensorEntry> {
  const names: [string, number[]][] = [
    ['positional_embedding', [g.context, g.textWidth]], ['text_projection', [g.textWidth, g.proj]], ['logit_scale', []],
    ['token_embedding.weight', [g.vocab, g.textWidth]], ['ln_final.weight', [g.textWidth]], ['ln_final.bias', [g.textWidth]],
  ];
  visual(g, names);
  for (let i = 0; i < g.textLayers; i++) block(`transformer.resblocks.${i}.`, g.textWidth, names);
  return new Map(names.map(([n, s]) => [prefix + n, entry(prefix + n, s, withValues)]));
}

function chineseStateDict(g: Geometry, prefix = 'module.'): Map<string, TensorEntry> {
  const w = g.textWidth;
  const names: [string, number[]][] = [
    ['text_projection', [w, g.proj]], ['logit_scale', []],
    ['bert.embeddings.word_embeddings.weight', [g.vocab, w]], ['bert.embeddings.position_embeddings.weight', [g.context, w]],
    ['bert.embeddings.token_type_embeddings.weight', [2, w]], ['bert.embeddings.LayerNorm.weight', [w]], ['bert.embeddings.LayerNorm.bias', [w]],
    ['bert.pooler.dense.weight', [w, w]], ['bert.pooler.dense.bias', [w]],
  ];
  visual(g, names);
  for (let i = 0; i < g.textLayers; i++) {
    const p = `bert.encoder.layer.${i}.`;
    for (const part of ['attention.self.query', 'attention.self.key', 'attention.self.value', 'attention.output.dense'])
      names.push([`${p}${part}.weight`, [w, w]], [`${p}${part}.bias`, [w]]);
    names.push([`${p}intermediate.dense.weight`, [4 * w, w]], [`${p}intermediate.dense.bias`, [4 * w]]);
    names.push([`${p}output.dense.weight`, [w, 4 * w]], [`${p}output.dense.bias`, [w]]);
    for (const ln of ['attention.output.LayerNorm', 'output.LayerNorm']) names.push([`${p}${ln}.weight`, [w]], [`${p}${ln}.bias`, [w]]);
  }
  return new Map(names.map(([n, s]) => [prefix + n, entry(prefix + n, s, false)]));
}

const VIT_H_14: Geometry = { width: 1280, layers: 32, patch: 14, image: 224, textWidth: 1024, textLayers: 24, proj: 1024, vocab: 49408, context: 77 };
const CN_VIT_B_16: Geometry = { width: 768, layers: 12, patch: 16, image: 224, textWidth: 768, textLayers: 12, proj: 512, vocab: 21128, context: 512 };
const SMALL: Geometry = { width: 64, layers: 1, patch: 4, image: 8, textWidth: 64, textLayers: 1, proj: 8, vocab: 10, context: 5 };

// ---------------------------------------------------------------------------------------------
const Infer = suite('layouts: geometry from shapes, checked against model names');

Infer('open_clip ViT-H-14 (open_clip. prefix): 16 heads of width 80, every size from the shapes, nothing read', () => {
  const hf = toHfLayout(openaiStateDict(VIT_H_14, 'open_clip.'), { source: 'vit-h.pt' });
  assert.is(hf.layout, 'openai');
  assert.is(hf.prefix, 'open_clip.');
  const v = hf.config.vision_config, t = hf.config.text_config;
  assert.equal(
    [v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.intermediate_size, v.patch_size, v.image_size, v.hidden_act, v.layer_norm_eps],
    [1280, 32, 16, 5120, 14, 224, 'quick_gelu', 1e-5],
  );
  assert.equal([t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.intermediate_size, t.max_position_embeddings, t.vocab_size], [1024, 24, 16, 4096, 77, 49408]);
  assert.is(hf.config.projection_dim, 1024);
  assert.equal(hf.tensors.get('vision_model.encoder.layers.31.self_attn.v_proj.weight')!.shape, [1280, 1280]);
  assert.equal(hf.tensors.get('visual_projection.weight')!.shape, [1024, 1280]);
  assert.equal(hf.tensors.get('text_projection.weight')!.shape, [1024, 1024]);
  assert.equal(hf.tensors.get('logit_scale')!.shape, []);
  // The name agrees (written either way); another name does not, and says which field.
  assert.equal(toHfLayout(openaiStateDict(VIT_H_14, 'open_clip.'), { model: 'vit-h/14' }).config, hf.config);
  throwsCode(() => toHfLayout(openaiStateDict(VIT_H_14), { model: 'ViT-L-14', source: 'vit-h.pt' }), 'E_SHAPE', /vit-h\.pt does not match ViT-L-14: its vision hidden_size is 1280 but ViT-L-14 has 1024/);
  throwsCode(() => toHfLayout(openaiStateDict(VIT_H_14), { model: 'ViT-Q-99' }), 'E_ARG', /Unknown model name "ViT-Q-99"; known: ViT-B-32, ViT-B-16, ViT-L-14, ViT-L-14-336, ViT-H-14/);
  throwsCode(() => toHfLayout(openaiStateDict(VIT_H_14), { text: 'RBT3-chinese' }), 'E_ARG', /applies to Chinese-CLIP checkpoints only/);
  // LAION's ViT-H-14 was trained with erf GELU, which the weights cannot show: the caller says so.
  const laion = toHfLayout(openaiStateDict(VIT_H_14), { model: 'ViT-H-14', hiddenAct: 'gelu' }).config;
  assert.equal([laion.vision_config.hidden_act, laion.text_config.hidden_act], ['gelu', 'gelu']);
  throwsCode(() => toHfLayout(openaiStateDict(VIT_H_14), { hiddenAct: 'relu' as 'gelu' }), 'E_ARG', /Expected hiddenAct 'quick_gelu' or 'gelu' but received "relu"/);
});

Infer('a named model sets the heads where shapes cannot: ViT-B-32 geometry with names', () => {
  const b32: Geometry = { width: 768, layers: 12, patch: 32, image: 224, textWidth: 512, textLayers: 12, proj: 512, vocab: 49408, context: 77 };
  const hf = toHfLayout(openaiStateDict(b32), { model: 'ViT-B-32' });
  assert.is(hf.config.vision_config.num_attention_heads, 12);
  assert.is(hf.config.text_config.num_attention_heads, 8);
  throwsCode(() => toHfLayout(openaiStateDict(b32), { model: 'ViT-B-16' }), 'E_SHAPE', /its vision patch_size is 32 but ViT-B-16 has 16/);
  const l336 = toHfLayout(openaiStateDict({ ...b32, width: 1024, layers: 24, patch: 14, image: 336, textWidth: 768, proj: 768 }), { model: 'ViT-L-14-336' });
  assert.is(l336.config.vision_config.image_size, 336);
  assert.is(l336.config.vision_config.num_attention_heads, 16);
});

Infer('Chinese-CLIP ViT-B-16 + RoBERTa-wwm-ext-base-chinese: BERT text config, pooler dropped', () => {
  const hf = toHfLayout(chineseStateDict(CN_VIT_B_16), { model: 'ViT-B-16', text: 'RoBERTa-wwm-ext-base-chinese' });
  assert.is(hf.layout, 'chinese_clip');
  assert.is(hf.config.model_type, 'chinese_clip');
  const t = hf.config.text_config;
  assert.equal(
    [t.vocab_size, t.hidden_size, t.num_hidden_layers, t.num_attention_heads, t.intermediate_size, t.max_position_embeddings, t.type_vocab_size, t.hidden_act, t.layer_norm_eps],
    [21128, 768, 12, 12, 3072, 512, 2, 'gelu', 1e-12],
  );
  assert.equal(hf.unused, ['module.bert.pooler.dense.bias', 'module.bert.pooler.dense.weight']);
  assert.ok(hf.tensors.has('text_model.encoder.layer.11.attention.self.query.weight'));
  assert.ok(hf.tensors.has('vision_model.encoder.layers.11.self_attn.q_proj.bias'));
  throwsCode(() => toHfLayout(chineseStateDict(CN_VIT_B_16), { text: 'RoBERTa-wwm-ext-large-chinese' }), 'E_SHAPE', /does not match RoBERTa-wwm-ext-large-chinese: its text hidden_size is 768 but RoBERTa-wwm-ext-large-chinese has 1024/);
  throwsCode(() => toHfLayout(chineseStateDict(CN_VIT_B_16), { text: 'bert-base' }), 'E_ARG', /Unknown text tower name "bert-base"/);
});

// ---------------------------------------------------------------------------------------------
const Views = suite('layouts: q/k/v rows and transposes are lazy views with the right values');

Views('in_proj rows are subarrays of the packed tensor; projections are transposed', () => {
  const sd = openaiStateDict(SMALL, '', true);
  const hf = toHfLayout(sd);
  const packed = sd.get('visual.transformer.resblocks.0.attn.in_proj_weight')!; // [192, 64] = 0, 1, 2, ...
  for (const [i, p] of ['q', 'k', 'v'].entries()) {
    const e = hf.tensors.get(`vision_model.encoder.layers.0.self_attn.${p}_proj.weight`)!;
    assert.equal(e.shape, [64, 64]);
    assert.is(e.bytes().buffer, packed.bytes().buffer, 'a view, not a copy');
    assert.is(e.data()[0], i * 64 * 64);
    assert.is(e.data()[64 * 64 - 1], (i + 1) * 64 * 64 - 1);
  }
  const bias = hf.tensors.get('text_model.encoder.layers.0.self_attn.v_proj.bias')!;
  assert.equal([bias.data()[0], bias.shape[0]], [128, 64]);
  const proj = hf.tensors.get('visual_projection.weight')!; // visual.proj [64, 8] transposed
  assert.equal(proj.shape, [8, 64]);
  for (let e = 0; e < 8; e++) for (let w = 0; w < 64; w++) assert.is(proj.data()[e * 64 + w], w * 8 + e);
  const renamed = hf.tensors.get('text_model.final_layer_norm.weight')!;
  assert.is(renamed.data(), sd.get('ln_final.weight')!.data(), 'a rename shares the decoded values');
});

Views('EasyNLP without logit_scale gets the value CLIPApp uses', () => {
  const sd = chineseStateDict(SMALL, '');
  const easy = new Map<string, TensorEntry>();
  // Rebuild the Chinese-CLIP tensors under EasyNLP names through a Hugging Face mapping.
  const hf = toHfLayout(sd);
  for (const [name, e] of hf.tensors) {
    if (name === 'logit_scale') continue;
    const to = name.startsWith('text_model.') ? 'text_encoder.' + name.slice('text_model.'.length)
      : name.startsWith('vision_model.') ? 'vision_encoder.' + name : name.replace('visual_projection', 'vision_projection');
    easy.set(to, e);
  }
  const out = toHfLayout(easy);
  assert.is(out.layout, 'easynlp');
  assert.is(out.config.model_type, 'easynlp_clip');
  assert.is(out.tensors.get('logit_scale')!.data()[0], Math.fround(EASYNLP_DEFAULT_LOGIT_SCALE));
});

// ---------------------------------------------------------------------------------------------
const Errors = suite('layouts: what cannot be mapped');

Errors('ResNet towers, unknown layouts, gaps in the blocks, misshaped packed weights, disagreeing projections', () => {
  const rn = new Map([['visual.layer1.0.conv1.weight', entry('x', [64, 64, 1, 1], false)]]);
  throwsCode(() => detectLayout(rn.keys(), 'RN50.pt'), 'E_UNSUPPORTED', /RN50\.pt has a ResNet image tower/);
  throwsCode(() => toHfLayout(new Map([['encoder.weight', entry('x', [1], false)]]), { source: 'odd.pt' }), 'E_UNSUPPORTED', /odd\.pt is not in a CLIP layout .* first names are "encoder\.weight"/);

  const gap = openaiStateDict({ ...SMALL, layers: 3 });
  for (const k of [...gap.keys()]) if (k.startsWith('visual.transformer.resblocks.1.')) gap.delete(k);
  throwsCode(() => toHfLayout(gap), 'E_WEIGHTS', /has blocks vision_model\.encoder\.layers\.\{0,2\} but lacks block 1/);

  const bad = openaiStateDict(SMALL);
  bad.set('transformer.resblocks.0.attn.in_proj_weight', entry('transformer.resblocks.0.attn.in_proj_weight', [190, 64], false));
  throwsCode(() => toHfLayout(bad), 'E_SHAPE', /in_proj_weight must have shape \[3W, W\] but has \[190, 64\]/);

  const proj = openaiStateDict(SMALL);
  proj.set('text_projection', entry('text_projection', [64, 9], false));
  throwsCode(() => toHfLayout(proj), 'E_SHAPE', /the image projection gives 8 dimensions but the text projection 9/);

  const noPos = openaiStateDict(SMALL);
  noPos.delete('visual.positional_embedding');
  throwsCode(() => toHfLayout(noPos, { source: 'c.pt' }), 'E_WEIGHTS', /c\.pt lacks vision_model\.embeddings\.position_embedding\.weight, which gives the image size/);

  const twoScales = openaiStateDict(SMALL);
  twoScales.set('logit_scale', entry('logit_scale', [2], false));
  throwsCode(() => toHfLayout(twoScales), 'E_SHAPE', /logit_scale must hold one value but its shape is \[2\]/);
});

Infer.run();
Views.run();
Errors.run();
