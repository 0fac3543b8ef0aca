/**
 * Every path argument of the public API is type-checked (E_ARG) before anything reaches fs: a number
 * there was once taken as a file descriptor (readClipConfig(0) read stdin; -0 aborted the process).
 * And no public call leaves a promise rejection nobody handles (renderResultsPage with hits that are
 * not hits once ended the process after it had returned).
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import * as ck from '../../src';
import { readTorchCheckpoint } from '../../src/io/pytorch';
import { modelDir } from '../models/reference';
import { tempDir } from '../helpers';

const Paths = suite('path arguments');

const BAD: unknown[] = [-0, 0, 1, 2.5, NaN, null, true, {}, [], Symbol('p'), '', 'a\0b', new Uint8Array(2)];
const label = (v: unknown) => (typeof v === 'symbol' ? 'Symbol' : Object.is(v, -0) ? '-0' : v instanceof Uint8Array ? 'Uint8Array' : JSON.stringify(v) ?? String(v));

/** (v) → a call taking v where a path belongs; `bytesOk` for calls that also take image bytes. */
const CALLS: [string, (v: any) => unknown, { bytesOk?: boolean }?][] = [
  ['readClipConfig', (v) => ck.readClipConfig(v)],
  ['readPreprocessConfig', (v) => ck.readPreprocessConfig(v)],
  ['loadClipWeights', (v) => ck.loadClipWeights(v)],
  ['readSafetensors', (v) => ck.readSafetensors(v)],
  ['readSafetensorsIndex', (v) => ck.readSafetensorsIndex(v)],
  ['readSafetensorsIndex indexName', (v) => ck.readSafetensorsIndex(modelDir('chinese_clip_tiny'), v)],
  ['readTorchCheckpoint', (v) => readTorchCheckpoint(v)],
  ['loadTokenizer', (v) => ck.loadTokenizer(v)],
  ['loadModel', (v) => ck.loadModel(v)],
  ['convertCheckpoint input', (v) => ck.convertCheckpoint(v, tempDir('clipkit-conv-'))],
  ['convertCheckpoint outDir', (v) => ck.convertCheckpoint(modelDir('chinese_clip_tiny'), v)],
  ['decodeImage', (v) => ck.decodeImage(v), { bytesOk: true }],
  ['preprocess', (v) => ck.preprocess(v, ck.readPreprocessConfig(modelDir('chinese_clip_tiny'))), { bytesOk: true }],
  ['thumbnailDataUri', (v) => ck.thumbnailDataUri(v)],
  ['writeResultsPage', (v) => ck.writeResultsPage(v, 'q', [])],
  ['listImages', (v) => ck.listImages(v)],
  ['indexFolder', (v) => ck.indexFolder(v, { db: tempDir('clipkit-db-'), modelId: 'm', openModel: () => ck.loadModel(modelDir('chinese_clip_tiny')) })],
  ['ImageStore.open', (v) => ck.ImageStore.open(v)],
];

Paths('a non-string, empty or NUL-holding path is E_ARG, for every call that takes one', async () => {
  const wrong: string[] = [];
  for (const [name, call, o] of CALLS)
    for (const v of BAD) {
      if (o?.bytesOk && v instanceof Uint8Array) continue;
      let err: unknown;
      try {
        await call(v);
      } catch (e) {
        err = e;
      }
      const code = (err as { code?: unknown } | undefined)?.code;
      if (code !== 'E_ARG') wrong.push(`${name}(${label(v)}): ${err === undefined ? 'no error' : `${code ?? 'no code'}: ${(err as Error).message}`}`);
    }
  assert.equal(wrong, [], `calls that did not refuse a bad path with E_ARG:\n${wrong.join('\n')}`);
});

Paths('results pages: bad queries and hits are refused, and no rejection is left unhandled', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const bad: [unknown, unknown][] = [
      ['q', new Float32Array(3)], ['q', [1, 2]], ['q', [{ path: 5, rank: 1, score: 0.5 }]], ['q', [{ path: 'a.png', rank: 'x', score: 0.5 }]],
      ['q', [null]], [5, []], ['q', 'hits'], ['q', { length: 2 }],
    ];
    for (const [q, hits] of bad) {
      for (const call of [() => ck.renderResultsPage(q as string, hits as ck.SearchHit[]), () => ck.writeResultsPage(tempDir('clipkit-page-') + '/p.html', q as string, hits as ck.SearchHit[])]) {
        let err: unknown;
        try {
          await call();
        } catch (e) {
          err = e;
        }
        assert.is((err as { code?: unknown })?.code, 'E_ARG', `${label(q)}, ${label(hits)}: ${(err as Error)?.message}`);
      }
    }
    // A hit whose file is gone still renders, with a note in place of the thumbnail.
    const page = await ck.renderResultsPage('q', [{ path: '/no/such/image.png', rank: 1, score: 0.5 } as ck.SearchHit]);
    assert.match(page, /no preview/);
    await new Promise((r) => setTimeout(r, 200));
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.equal(unhandled.map(String), [], 'unhandled rejections');
});

Paths.run();
