/**
 * Options objects: an option clipkit does not have (`{ device: 'cuda' }`) or a typo (`{ devcie }`)
 * is refused with E_ARG naming it and listing the options there are, everywhere options are taken
 * (it was once ignored, and the call ran with the defaults). A non-object where the options belong
 * is E_ARG too, never a raw TypeError.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ck from '../../src';
import { modelDir } from '../models/reference';
import { REF_IMAGES } from '../reference_fixtures';
import { tempDir } from '../helpers';

const Options = suite('options objects');

const t = (shape: number[]) => new ck.Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5), shape);
const image = `${REF_IMAGES}/tiny.png`;
/** Wrappers that add required fields only do so to plain objects, so the bad values reach the call as they are. */
const isPlain = (o: unknown) => o !== null && typeof o === 'object' && !Array.isArray(o);

Options('unknown options and non-objects are E_ARG for every call that takes options', async () => {
  const model = await ck.loadModel(modelDir('chinese_clip_tiny'));
  const packed = await ck.packWeight(t([4, 8]));
  const pre = ck.readPreprocessConfig(modelDir('chinese_clip_tiny'));
  const store = await ck.ImageStore.create(tempDir('clipkit-opt-db-'), { model: 'm', dim: 4 });
  const calls: [string, (o: any) => unknown][] = [
    ['loadModel', (o) => ck.loadModel(modelDir('chinese_clip_tiny'), o)],
    ['loadModel checkpoint', (o) => ck.loadModel(modelDir('chinese_clip_tiny'), { checkpoint: o })],
    ['encodeText', (o) => model.encodeText('猫', o)],
    ['encodeImage', (o) => model.encodeImage(image, o)],
    ['encodeTokens', (o) => model.encodeTokens(model.tokenize(['猫']), 1, o)],
    ['encodePixels', (o) => model.encodePixels(new Float32Array(3 * 96 * 96), 1, o)],
    ['classify', (o) => model.classify(image, ['猫', '狗'], o)],
    ['labelEmbeddings', (o) => model.labelEmbeddings(['猫'], o)],
    ['decodeImage', (o) => ck.decodeImage(image, o)],
    ['preprocess', (o) => ck.preprocess(image, pre, o)],
    ['resizeU8', (o) => ck.resizeU8({ data: new Uint8Array(12), width: 2, height: 2, channels: 3 }, 1, 1, o)],
    ['loadTokenizer', (o) => ck.loadTokenizer(modelDir('chinese_clip_tiny'), o)],
    ['convertCheckpoint', (o) => ck.convertCheckpoint(modelDir('chinese_clip_tiny'), tempDir('clipkit-opt-conv-') + '/out', o)],
    ['indexFolder', (o) => ck.indexFolder(REF_IMAGES, !isPlain(o) ? o : { db: tempDir('clipkit-opt-ix-'), modelId: 'm', openModel: () => Promise.resolve(model), ...o })],
    ['ImageStore.search', (o) => store.search(new Float32Array(4).fill(0.5), o)],
    ['packWeight', (o) => ck.packWeight(t([4, 8]), o)],
    ['linear', (o) => ck.linear(t([2, 8]), packed, o)],
    ['matmul', (o) => ck.matmul(t([2, 3]), t([3, 2]), o)],
    ['softmax', (o) => ck.softmax(t([2, 3]), o)],
    ['layerNorm', (o) => ck.layerNorm(t([2, 4]), t([4]), t([4]), o)],
    ['attention', (o) => ck.attention(t([1, 3, 4]), t([1, 3, 4]), t([1, 3, 4]), !isPlain(o) ? o : { heads: 1, ...o })],
    ['attentionPacked', (o) => ck.attentionPacked(t([1, 3, 12]), !isPlain(o) ? o : { heads: 1, ...o })],
    ['gatherRows', (o) => ck.gatherRows(t([3, 4]), [0, 2], o)],
  ];
  const wrong: string[] = [];
  for (const [name, call] of calls)
    for (const [what, o, match] of [
      ['{ device: "cuda" }', { device: 'cuda' }, /Unknown option "device" for .*; the options are: /],
      ['a typo', { devcie: 'cpu', normalise: true }, /Unknown options "devcie", "normalise"/],
      ['null', null, /Expected an (options )?object/],
      ['a number', 5, /Expected an (options )?object/],
      ['an array', [], /Expected an (options )?object/],
    ] as const) {
      let err: unknown;
      try {
        await call(o);
      } catch (e) {
        err = e;
      }
      const e = err as { code?: unknown; message?: string } | undefined;
      if (e?.code !== 'E_ARG' || !(match as RegExp).test(e.message ?? '')) wrong.push(`${name}(${what}): ${err === undefined ? 'no error' : `${e?.code ?? 'no code'}: ${e?.message}`}`);
    }
  store.close();
  assert.equal(wrong, [], `calls that did not refuse with E_ARG:\n${wrong.join('\n')}`);
  // The known ones still work.
  assert.is((await model.encodeText('猫', { normalize: false }))[0].length, 64);
});

Options.run();
