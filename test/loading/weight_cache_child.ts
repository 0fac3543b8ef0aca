/**
 * A second process for the weight cache suite (weight_cache.test.ts), run with `node -r tsx/cjs`:
 *
 *   load MODEL_DIR CACHE_DIR   loadModel with that cache folder; prints one JSON line:
 *                              { status, file, embeds } (embeds: embedBytes, base64)
 *   hang MODEL_DIR CACHE_DIR   packs the model and writes its cache file, but stops before the
 *                              rename: prints "ready <temp file>" and waits to be killed
 */
import { ClipModel, loadModel } from '../../src/models';
import { modelKey, writeCacheFile } from '../../src/loading/weight_cache';
import { uniform } from '../helpers';

const TEXTS = ['a photo of a cat', '一只猫在沙发上', 'two dogs'];

/** Fixed random pixels for two images and three texts → every raw embedding's bytes, in order. */
export async function embedBytes(m: ClipModel): Promise<Buffer> {
  const s = m.config.imageSize;
  const rows = [...(await m.encodePixels(uniform(2 * 3 * s * s, 11), 2, { normalize: false })), ...(await m.encodeText(TEXTS, { normalize: false }))];
  return Buffer.concat(rows.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength)));
}

async function main(): Promise<void> {
  const [mode, dir, cache] = process.argv.slice(2);
  if (mode === 'load') {
    const m = await loadModel(dir, { weightCache: cache });
    const embeds = (await embedBytes(m)).toString('base64');
    console.log(JSON.stringify({ status: m.weightCache.status, file: m.weightCache.file, embeds }));
    return;
  }
  if (mode === 'hang') {
    const m = await loadModel(dir, { weightCache: false });
    const key = await modelKey(dir, { dtype: 'float32' });
    const meta = { modelType: m.config.modelType, config: m.config.clip, logitScale: m.config.logitScale };
    await writeCacheFile(cache, key, meta, { vision: m.vision.state, text: m.text.state } as never, {
      beforeRename: async (temp) => {
        console.log(`ready ${temp}`);
        await new Promise(() => setInterval(() => undefined, 1000));
      },
    });
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

if (require.main === module)
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
