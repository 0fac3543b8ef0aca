/**
 * The weight cache (src/loading/weight_cache.ts) through loadModel on the tiny models: a cold load
 * writes the file and a warm one maps it, with bit-identical embeddings (fp32 and bf16, every family,
 * an original checkpoint too); every key field invalidates; truncated, zero-filled and bit-flipped
 * files are detected and rebuilt; two processes racing the first load; a writer killed before its
 * rename; a folder that cannot be written; and the switches that turn the cache off.
 */
import { spawn } from 'node:child_process';
import { appendFileSync, chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipModel, loadModel } from '../../src/models';
import type { LoadModelOptions } from '../../src/models/model';
import {
  CACHE_FORMAT_VERSION, CacheKey, CacheMiss, defaultWeightCacheFolder, keyFileName, modelKey, pruneWeightCache, readCacheFile, weightCacheFolder, writeCacheFile,
} from '../../src/loading/weight_cache';
import { packedLayoutId } from '../../src/ops/gemm';
import { readSafetensors } from '../../src/io/safetensors';
import { writeSafetensorsFile } from '../../src/io/safetensors_writer';
import { rejectsCode, tempDir } from '../helpers';
import { modelDir, TinyName } from '../models/reference';
import { REF_CHECKPOINTS } from '../reference_fixtures';
import { embedBytes } from './weight_cache_child';

const ROOT = join(__dirname, '..', '..');
const CHILD = join(__dirname, 'weight_cache_child.ts');

/** A writable copy of a tiny model's folder (the fixtures are read-only). */
function modelCopy(name: TinyName): string {
  const dir = tempDir(`clipkit-wc-${name}-`);
  for (const f of readdirSync(modelDir(name))) {
    copyFileSync(join(modelDir(name), f), join(dir, f));
    chmodSync(join(dir, f), 0o644);
  }
  return dir;
}

const cacheDir = () => tempDir('clipkit-wc-cache-');
const TEXTS = ['a photo of a cat', '一只猫在沙发上', 'two dogs'];

function sameBits(got: Buffer, want: Buffer, what: string): void {
  assert.ok(got.length === want.length && got.equals(want), `${what}: embeddings differ bit for bit`);
}

const load = (dir: string, cache: string | false, o: LoadModelOptions = {}) => loadModel(dir, { weightCache: cache, ...o });

/** The cache files in a folder (not temporaries). */
const ckwFiles = (folder: string) => (existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith('.ckw')) : []);
const tempFiles = (folder: string) => (existsSync(folder) ? readdirSync(folder).filter((f) => f.endsWith('.tmp')) : []);

// ---- cold, then warm ----

const roundTrip = suite('weight cache: cold then warm load');

for (const name of ['chinese_clip_tiny', 'openai_clip_tiny', 'altclip_tiny', 'easynlp_clip_cn_tiny'] as const) {
  for (const dtype of ['fp32', 'bf16'] as const) {
    roundTrip(`${name} ${dtype}: the warm load maps the file and embeds bit for bit as the cold one and as no cache`, async () => {
      const cache = cacheDir();
      const plain = await load(modelDir(name), false, { dtype });
      assert.is(plain.weightCache.status, 'off');
      const cold = await load(modelDir(name), cache, { dtype });
      assert.is(cold.weightCache.status, 'built');
      assert.equal(ckwFiles(cache), [cold.weightCache.file!.split('/').pop()]);
      const warm = await load(modelDir(name), cache, { dtype });
      assert.is(warm.weightCache.status, 'mapped', `warm load: ${JSON.stringify(warm.weightCache)}`);
      assert.is(warm.weightCache.file, cold.weightCache.file);
      assert.equal(warm.config, cold.config);
      const want = await embedBytes(plain);
      sameBits(await embedBytes(cold), want, 'cold');
      sameBits(await embedBytes(warm), want, 'warm');
      // Hidden states run every row through every layer: the mapped weights give them exactly too.
      const ids = warm.tokenize(TEXTS);
      const [hw, hp] = [await warm.textHiddenStates(ids, TEXTS.length), await plain.textHiddenStates(ids, TEXTS.length)];
      assert.equal(hw.lastHiddenState.data, hp.lastHiddenState.data);
      assert.equal(tempFiles(cache), []);
    });
  }
}

roundTrip('an original checkpoint file (OpenAI .pt, geometry from its shapes) is cached too', async () => {
  const cache = cacheDir();
  const file = join(REF_CHECKPOINTS, 'openai_clip_tiny.pt');
  const cold = await load(file, cache);
  const warm = await load(file, cache);
  assert.equal([cold.weightCache.status, warm.weightCache.status], ['built', 'mapped']);
  sameBits(await embedBytes(warm), await embedBytes(cold), 'checkpoint');
  sameBits(await embedBytes(cold), await embedBytes(await load(file, false)), 'checkpoint, no cache');
  const key = await modelKey(file, { dtype: 'float32' });
  assert.is(key.config, null); // no config.json beside it: the shapes, keyed through the file, give the geometry
  assert.match(key.files[0].header, /^ends:[0-9a-f]{64}$/);
});

/** A copy of chinese_clip_tiny's folder whose weights are stored another way. */
function storedAs(how: 'pytorch_model.bin' | 'shards' | 'bf16 safetensors'): string {
  const dir = modelCopy('chinese_clip_tiny');
  const st = readSafetensors(join(dir, 'model.safetensors'));
  const all = [...st.tensors.values()];
  rmSync(join(dir, 'model.safetensors'));
  if (how === 'pytorch_model.bin') copyFileSync(join(REF_CHECKPOINTS, 'chinese_clip_tiny.pytorch_model.bin'), join(dir, 'pytorch_model.bin'));
  else if (how === 'shards') {
    const half = all.length >> 1, names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
    writeSafetensorsFile(join(dir, names[0]), all.slice(0, half));
    writeSafetensorsFile(join(dir, names[1]), all.slice(half));
    const weightMap = Object.fromEntries(all.map((t, i) => [t.name, names[i < half ? 0 : 1]]));
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  } else {
    // float32 → bfloat16 by truncation: any bf16 values will do, the no-cache load of the same folder is the reference.
    const bf16 = (t: (typeof all)[number]) => {
      const d = t.data(), out = new Uint16Array(d.length);
      new Uint32Array(d.buffer, d.byteOffset, d.length).forEach((u, i) => (out[i] = u >>> 16));
      return new Uint8Array(out.buffer);
    };
    writeSafetensorsFile(join(dir, 'model.safetensors'), all.map((t) => ({ name: t.name, dtype: t.dtype === 'F32' ? 'BF16' : t.dtype, shape: t.shape, bytes: () => (t.dtype === 'F32' ? bf16(t) : t.bytes()) })));
  }
  return dir;
}

for (const how of ['pytorch_model.bin', 'shards', 'bf16 safetensors'] as const) {
  roundTrip(`weights stored as ${how}: built from the mapped files, then mapped, bit for bit as no cache`, async () => {
    const dir = storedAs(how), cache = cacheDir();
    for (const dtype of ['fp32', 'bf16'] as const) {
      const want = await embedBytes(await load(dir, false, { dtype }));
      const cold = await load(dir, cache, { dtype });
      assert.is(cold.weightCache.status, 'built', `${how} ${dtype}`);
      sameBits(await embedBytes(cold), want, `${how} ${dtype} cold`);
      const warm = await load(dir, cache, { dtype });
      assert.is(warm.weightCache.status, 'mapped', `${how} ${dtype}`);
      sameBits(await embedBytes(warm), want, `${how} ${dtype} warm`);
    }
  });
}

roundTrip('a checkpoint that fails to load leaves no file behind, and its error is the reader\'s', async () => {
  const dir = modelCopy('chinese_clip_tiny'), cache = cacheDir();
  const st = readSafetensors(join(dir, 'model.safetensors'));
  writeSafetensorsFile(join(dir, 'model.safetensors'), [...st.tensors.values()].filter((t) => !t.name.includes('layer.0.output.dense.weight')));
  await rejectsCode(load(dir, cache), 'E_WEIGHTS', /layer\.0\.output\.dense\.weight/);
  assert.equal([ckwFiles(cache), tempFiles(cache)], [[], []]);
});

roundTrip('fp32 and bf16 of one model are two files side by side', async () => {
  const cache = cacheDir();
  const dir = modelDir('chinese_clip_tiny');
  await load(dir, cache, { dtype: 'fp32' });
  await load(dir, cache, { dtype: 'bf16' });
  assert.is(ckwFiles(cache).length, 2);
  assert.is((await load(dir, cache, { dtype: 'fp32' })).weightCache.status, 'mapped');
  assert.is((await load(dir, cache, { dtype: 'bf16' })).weightCache.status, 'mapped');
});

roundTrip.run();

// ---- the key ----

const keys = suite('weight cache: the key');

keys('its fields: format, layout, dtype, location, each file (realpath, size, mtime, header hash), config, checkpoint options', async () => {
  const dir = modelDir('chinese_clip_tiny');
  const key = await modelKey(dir, { dtype: 'float32' });
  assert.equal(Object.keys(key), ['format', 'layout', 'dtype', 'location', 'files', 'config', 'checkpoint']);
  assert.is(key.format, CACHE_FORMAT_VERSION);
  assert.is(key.layout, packedLayoutId());
  const st = statSync(join(dir, 'model.safetensors'));
  assert.equal(key.files.map((f) => [f.size, f.mtimeMs]), [[st.size, st.mtimeMs]]);
  assert.match(key.files[0].header, /^safetensors:[0-9a-f]{64}$/);
  assert.is((key.config as { modelType: string }).modelType, 'chinese_clip'); // parsed, not the raw file
  assert.match(keyFileName(key), /^[0-9a-f]{32}\.ckw$/);
});

/** A whole second, which every file system stores exactly (a Date restored from a stat may not round-trip its mtimeMs). */
const PINNED = 1_700_000_000;

/** Keys of the same model folder (its files' times pinned to PINNED) before and after `change`. */
async function keyChange(change: (dir: string) => void, o: Parameters<typeof modelKey>[1] = { dtype: 'float32' }, name: TinyName = 'chinese_clip_tiny'): Promise<[CacheKey, CacheKey]> {
  const dir = modelCopy(name);
  for (const f of readdirSync(dir)) utimesSync(join(dir, f), PINNED, PINNED);
  const before = await modelKey(dir, o);
  change(dir);
  return [before, await modelKey(dir, o)];
}

/** The keys differ, and in `field` (and no other field, unless told). */
function differ([a, b]: [CacheKey, CacheKey], what: string, field?: string, sub?: keyof CacheKey['files'][number]): void {
  assert.is.not(keyFileName(a), keyFileName(b), `${what} leaves the key as it was`);
  if (field === undefined) return;
  const changed = (Object.keys(a) as (keyof CacheKey)[]).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  assert.equal(changed, [field], `${what} changed ${changed.join(', ')}`);
  if (sub) {
    const subs = (Object.keys(a.files[0]) as (keyof CacheKey['files'][number])[]).filter((k) => a.files[0][k] !== b.files[0][k]);
    assert.equal(subs, [sub], `${what} changed files[0].${subs.join(', ')}`);
  }
}

keys('each field changes the key', async () => {
  const weights = (dir: string) => join(dir, 'model.safetensors');
  const keepTimes = (file: string, fn: () => void) => {
    fn();
    utimesSync(file, PINNED, PINNED);
  };
  differ(await keyChange((d) => utimesSync(weights(d), PINNED, PINNED + 5)), 'a new mtime', 'files', 'mtimeMs');
  differ(await keyChange((d) => keepTimes(weights(d), () => appendFileSync(weights(d), Buffer.alloc(8)))), 'a new size', 'files', 'size');
  // The same size and mtime, another header: the header hash sees it.
  differ(await keyChange((d) => keepTimes(weights(d), () => {
    const b = readFileSync(weights(d));
    const at = b.indexOf('"format":"pt"');
    b.write('"format":"tp"', at);
    writeFileSync(weights(d), b);
  })), 'a new safetensors header', 'files', 'header');
  // pytorch_model.bin: its first and last 64 KiB are hashed.
  const bin = (d: string) => join(d, 'pytorch_model.bin');
  differ(await keyChange((d) => keepTimes(bin(d), () => {
    const b = readFileSync(bin(d));
    b[100] ^= 1;
    writeFileSync(bin(d), b);
  }), { dtype: 'float32' }, 'easynlp_clip_cn_tiny'), 'a new head of a .bin', 'files', 'header');
  differ(await keyChange((d) => keepTimes(bin(d), () => {
    const b = readFileSync(bin(d));
    b[b.length - 100] ^= 1;
    writeFileSync(bin(d), b);
  }), { dtype: 'float32' }, 'easynlp_clip_cn_tiny'), 'a new tail of a .bin', 'files', 'header');
  differ(await keyChange((d) => {
    const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    c.text_config.layer_norm_eps = 1e-6;
    writeFileSync(join(d, 'config.json'), JSON.stringify(c));
  }), 'a new config', 'config');
  const dir = modelDir('chinese_clip_tiny');
  const base = await modelKey(dir, { dtype: 'float32' });
  differ([base, await modelKey(dir, { dtype: 'bfloat16' })], 'another dtype', 'dtype');
  differ([base, await modelKey(dir, { dtype: 'float32', layoutId: `${packedLayoutId()}-other` })], 'another packed layout', 'layout');
  differ([base, await modelKey(dir, { dtype: 'float32', formatVersion: CACHE_FORMAT_VERSION + 1 })], 'another format version', 'format');
  differ([base, await modelKey(dir, { dtype: 'float32', checkpoint: { hiddenAct: 'gelu' } })], 'other checkpoint options', 'checkpoint');
  differ(await keyChange(() => undefined, { dtype: 'float32' }).then(async ([a]) => [a, await modelKey(modelCopy('chinese_clip_tiny'), { dtype: 'float32' })] as [CacheKey, CacheKey]), 'another location');
});

keys('what the key leaves out: a config.json change the parsed config does not see, and the middle of a .bin of unchanged size and mtime', async () => {
  const [a, b] = await keyChange((d) => {
    const c = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...c, _name_or_path: 'elsewhere' }, null, 4));
  });
  assert.is(keyFileName(a), keyFileName(b));
  const bin = (d: string) => join(d, 'pytorch_model.bin');
  const [c, e] = await keyChange((d) => {
    const buf = readFileSync(bin(d));
    buf[buf.length >> 1] ^= 1;
    writeFileSync(bin(d), buf);
    utimesSync(bin(d), PINNED, PINNED);
  }, { dtype: 'float32' }, 'easynlp_clip_cn_tiny');
  assert.is(keyFileName(c), keyFileName(e));
});

keys('through loadModel: a touched weight file, a new config and another format version each rebuild', async () => {
  const dir = modelCopy('chinese_clip_tiny'), cache = cacheDir();
  const first = await load(dir, cache);
  assert.is((await load(dir, cache)).weightCache.status, 'mapped');
  utimesSync(join(dir, 'model.safetensors'), new Date(), new Date(Date.now() + 10_000));
  const touched = await load(dir, cache);
  assert.is(touched.weightCache.status, 'built');
  assert.is.not(touched.weightCache.file, first.weightCache.file);
  assert.is((await load(dir, cache)).weightCache.status, 'mapped');

  const c = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  c.vision_config.layer_norm_eps = 1e-3;
  writeFileSync(join(dir, 'config.json'), JSON.stringify(c));
  const reconfigured = await load(dir, cache);
  assert.is(reconfigured.weightCache.status, 'built');
  assert.is(reconfigured.config.clip.vision.layerNormEps, 1e-3);
  const again = await load(dir, cache);
  assert.is(again.weightCache.status, 'mapped');
  assert.is(again.config.clip.vision.layerNormEps, 1e-3);
  sameBits(await embedBytes(again), await embedBytes(reconfigured), 'reconfigured');

  // A file of another format version under the key's very name is not read as this one.
  const key = await modelKey(dir, { dtype: 'float32' });
  const m = await load(dir, false);
  await writeCacheFile(cache, key, { modelType: m.config.modelType, config: m.config.clip, logitScale: m.config.logitScale }, { vision: m.vision.state, text: m.text.state } as never, { formatVersion: CACHE_FORMAT_VERSION + 1 });
  const rebuilt = await load(dir, cache);
  assert.is(rebuilt.weightCache.status, 'built');
  assert.match(rebuilt.weightCache.reason!, new RegExp(`format ${CACHE_FORMAT_VERSION + 1}, not ${CACHE_FORMAT_VERSION}`));
  assert.is((await load(dir, cache)).weightCache.status, 'mapped');
});

keys('the key stored in the file is compared: a file under the name of another key (another layout id) is a miss', async () => {
  const dir = modelDir('openai_clip_tiny'), cache = cacheDir();
  const built = await load(dir, cache);
  const key = await modelKey(dir, { dtype: 'float32' });
  const other = { ...key, layout: `${key.layout}-mocked` };
  const miss = await readCacheFile(built.weightCache.file!, other);
  assert.instance(miss, CacheMiss);
  assert.is((miss as CacheMiss).message, 'written for another key');
  assert.not.instance(await readCacheFile(built.weightCache.file!, key), CacheMiss);
});

keys.run();

// ---- damaged files ----

const damage = suite<{ dir: string; cache: string; file: string; good: Buffer; key: CacheKey; want: Buffer }>('weight cache: damaged files');

damage.before(async (ctx) => {
  ctx.dir = modelCopy('chinese_clip_tiny');
  ctx.cache = cacheDir();
  const m = await load(ctx.dir, ctx.cache);
  ctx.file = m.weightCache.file!;
  ctx.good = readFileSync(ctx.file);
  ctx.key = await modelKey(ctx.dir, { dtype: 'float32' });
  ctx.want = await embedBytes(m);
});

const header = (b: Buffer) => ({
  indexLength: b.readUInt32LE(12),
  dataOffset: Number(b.readBigUInt64LE(48)),
  dataLength: Number(b.readBigUInt64LE(56)),
  indexOffset: Number(b.readBigUInt64LE(80)),
});

/** Each damage: what it does to a copy of the good file, and the reason the reader gives. */
const DAMAGES: [string, (b: Buffer) => Buffer, RegExp][] = [
  ['empty', () => Buffer.alloc(0), /shorter than its 4096-byte header/],
  ['truncated inside the header', (b) => b.subarray(0, 100), /shorter than/],
  ['truncated to the header page', (b) => b.subarray(0, 4096), /bytes, but the header says/],
  ['truncated by a byte', (b) => b.subarray(0, b.length - 1), /bytes, but the header says/],
  ['truncated by a page', (b) => b.subarray(0, b.length - 4096), /bytes, but the header says/],
  ['truncated to the end of the data', (b) => b.subarray(0, header(b).indexOffset), /bytes, but the header says/],
  ['a byte appended', (b) => Buffer.concat([b, Buffer.alloc(1)]), /bytes, but the header says/],
  ['all zeros', (b) => Buffer.alloc(b.length), /no CLIPKITW magic/],
  ['zeros over the header', (b) => zero(b, 0, 64), /no CLIPKITW magic/],
  ['zeros over the index', (b) => zero(b, header(b).indexOffset + 100, header(b).indexOffset + 200), /index does not match its sha256/],
  ['zeros over a page of data', (b) => zero(b, header(b).dataOffset + 8192, header(b).dataOffset + 12288), /data does not match its hash/],
  ['zeros over the last bytes of data', (b) => zero(b, header(b).indexOffset - 16, header(b).indexOffset), /data does not match its hash/],
  ['a flipped bit in the magic', (b) => flip(b, 3), /no CLIPKITW magic/],
  ['a flipped bit in the format version', (b) => flip(b, 8), /format/],
  ['a flipped bit in the index length', (b) => flip(b, 12), /index|header says/],
  ['a flipped bit in the index sha256', (b) => flip(b, 20), /index does not match its sha256/],
  ['a flipped bit in the data offset', (b) => flip(b, 49), /fit together/],
  ['a flipped bit in the data length', (b) => flip(b, 57), /fit together/],
  ['a flipped bit in the data hash', (b) => flip(b, 70, 0x01), /hash/],
  ['a flipped bit in the index offset', (b) => flip(b, 81), /fit together/],
  ['a flipped bit in the header padding', (b) => flip(b, 2000), /header byte 2000 is not zero/],
  ['a flipped bit in the index', (b) => flip(b, header(b).indexOffset + (header(b).indexLength >> 1)), /index does not match its sha256/],
  ['a flipped bit in the last byte of the index', (b) => flip(b, b.length - 1, 0x80), /index does not match its sha256/],
  ['a flipped bit at the start of the data', (b) => flip(b, header(b).dataOffset), /data does not match its hash/],
  ['a flipped bit in the middle of the data', (b) => flip(b, header(b).dataOffset + (header(b).dataLength >> 1)), /data does not match its hash/],
  ['a flipped bit in the last byte of the data', (b) => flip(b, header(b).indexOffset - 1, 0x80), /data does not match its hash/],
];

function zero(b: Buffer, start: number, end: number): Buffer {
  const c = Buffer.from(b);
  c.fill(0, start, end);
  return c;
}

function flip(b: Buffer, at: number, bit = 0x10): Buffer {
  const c = Buffer.from(b);
  c[at] ^= bit;
  return c;
}

damage('every damage is detected by the reader, with its reason', async ({ file, good, key }) => {
  for (const [what, hurt, reason] of DAMAGES) {
    writeFileSync(file, hurt(good));
    const r = await readCacheFile(file, key);
    assert.instance(r, CacheMiss, `${what}: not detected`);
    assert.match((r as CacheMiss).message, reason, `${what}: ${(r as CacheMiss).message}`);
  }
  writeFileSync(file, good);
  assert.not.instance(await readCacheFile(file, key), CacheMiss);
});

damage('a damaged file is rebuilt by the next load, which embeds exactly as before; the load after maps it again', async ({ dir, cache, file, good, want }) => {
  for (const what of ['truncated by a page', 'zeros over a page of data', 'a flipped bit in the magic', 'a flipped bit in the index', 'a flipped bit in the middle of the data']) {
    const [, hurt, reason] = DAMAGES.find(([w]) => w === what)!;
    writeFileSync(file, hurt(good));
    const m = await load(dir, cache);
    assert.is(m.weightCache.status, 'built', what);
    assert.match(m.weightCache.reason!, reason);
    sameBits(await embedBytes(m), want, what);
    const again = await load(dir, cache);
    assert.is(again.weightCache.status, 'mapped', `${what}: not rewritten`);
    sameBits(await embedBytes(again), want, `${what}, mapped`);
  }
  assert.equal(ckwFiles(cache), [file.split('/').pop()]);
});

damage('a state that does not fit the model (a layer missing, written under the right key) is rebuilt', async ({ dir, cache, key, want }) => {
  const m = await load(dir, false);
  const vision = { ...m.vision.state, layers: m.vision.state.layers.slice(1) };
  await writeCacheFile(cache, key, { modelType: m.config.modelType, config: m.config.clip, logitScale: m.config.logitScale }, { vision, text: m.text.state } as never);
  const r = await load(dir, cache);
  assert.is(r.weightCache.status, 'built');
  assert.match(r.weightCache.reason!, /state does not fit the model: .*vision\.layers has 1 layers, expected 2/);
  sameBits(await embedBytes(r), want, 'rebuilt');
  assert.is((await load(dir, cache)).weightCache.status, 'mapped');
});

damage.run();

// ---- processes ----

const procs = suite('weight cache: concurrent and killed writers');

function runChild(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', CHILD, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

procs('two processes racing the first load both succeed; one valid file remains and no temporary file', async () => {
  const dir = modelCopy('openai_clip_tiny'), cache = cacheDir();
  const runs = await Promise.all([runChild(['load', dir, cache]), runChild(['load', dir, cache])]);
  for (const r of runs) assert.is(r.code, 0, r.stderr);
  const [a, b] = runs.map((r) => JSON.parse(r.stdout.trim().split('\n').pop()!));
  for (const x of [a, b]) assert.ok(x.status === 'built' || x.status === 'mapped', x.status);
  assert.is(a.embeds, b.embeds);
  assert.equal(tempFiles(cache), []);
  const files = ckwFiles(cache);
  assert.is(files.length, 1);
  assert.not.instance(await readCacheFile(join(cache, files[0]), await modelKey(dir, { dtype: 'float32' })), CacheMiss);
  const m = await load(dir, cache);
  assert.is(m.weightCache.status, 'mapped');
  sameBits(await embedBytes(m), Buffer.from(a.embeds, 'base64'), 'after the race');
});

procs('a writer killed before its rename leaves only its temporary file, which prune removes', async () => {
  const dir = modelDir('chinese_clip_tiny'), cache = cacheDir();
  const child = spawn(process.execPath, ['-r', 'tsx/cjs', CHILD, 'hang', dir, cache], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stderr.on('data', (d) => (err += d));
  const temp = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /ready (.+)\n/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`the writer exited (${code}) before its rename: ${err}`)));
  });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  assert.equal(ckwFiles(cache), []);
  assert.equal(tempFiles(cache), [temp.split('/').pop()]);
  // A load now builds its own file; the dead writer's temporary file stays until prune.
  assert.is((await load(dir, cache)).weightCache.status, 'built');
  const removed = await pruneWeightCache(cache);
  assert.equal(removed.map((r) => [r.file, r.reason]), [[temp, 'unfinished write']]);
  assert.equal(tempFiles(cache), []);
  assert.is(ckwFiles(cache).length, 1);
});

procs('prune leaves the temporary file of a live writer alone', async () => {
  const cache = cacheDir();
  const mine = join(cache, `.0123456789abcdef0123456789abcdef.ckw.${process.pid}.abcdef.tmp`);
  writeFileSync(mine, 'partial');
  assert.equal(await pruneWeightCache(cache), []);
  assert.ok(existsSync(mine));
});

procs.run();

// ---- unwritable folders, and off ----

const fallback = suite('weight cache: unwritable folders and off');

/** Warnings emitted while fn runs (and the ticks after it). */
async function warningsDuring(fn: () => Promise<unknown>): Promise<Error[]> {
  const seen: Error[] = [];
  const on = (w: Error) => seen.push(w);
  process.on('warning', on);
  try {
    await fn();
    await new Promise((r) => setImmediate(r));
  } finally {
    process.off('warning', on);
  }
  return seen;
}

fallback('a folder that cannot be created (under a regular file) falls back to the packed model with one warning', async () => {
  const file = join(cacheDir(), 'a-file');
  writeFileSync(file, '');
  const folder = join(file, 'sub');
  const dir = modelDir('chinese_clip_tiny');
  let m: ClipModel | undefined, again: ClipModel | undefined;
  const warnings = await warningsDuring(async () => {
    m = await load(dir, folder);
    again = await load(dir, folder);
  });
  assert.is(m!.weightCache.status, 'unwritable');
  assert.is(again!.weightCache.status, 'unwritable');
  const ours = warnings.filter((w) => (w as { code?: string }).code === 'CLIPKIT_WEIGHT_CACHE');
  assert.is(ours.length, 1, `warnings: ${warnings.map((w) => w.message).join(' | ')}`);
  assert.match(ours[0].message, /cannot write its weight cache in .*a-file\/sub/);
  assert.match(ours[0].message, /CLIPKIT_CACHE/);
  sameBits(await embedBytes(m!), await embedBytes(await load(dir, false)), 'unwritable');
});

fallback('a read-only folder falls back the same way (where permissions bind: not as root)', async () => {
  const folder = cacheDir();
  chmodSync(folder, 0o555);
  try {
    const m = await load(modelDir('openai_clip_tiny'), folder);
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    // root writes through 0555; anyone else gets the fallback.
    assert.is(m.weightCache.status, root ? 'built' : 'unwritable');
    assert.equal(tempFiles(folder), []);
  } finally {
    chmodSync(folder, 0o755);
  }
});

fallback('CLIPKIT_CACHE=off and weightCache: false turn it off; CLIPKIT_CACHE names the folder otherwise', async () => {
  const saved = { CLIPKIT_CACHE: process.env.CLIPKIT_CACHE, XDG_CACHE_HOME: process.env.XDG_CACHE_HOME };
  const xdg = cacheDir(), folder = cacheDir();
  const dir = modelDir('openai_clip_tiny');
  try {
    process.env.XDG_CACHE_HOME = xdg;
    process.env.CLIPKIT_CACHE = 'off';
    assert.is((await loadModel(dir)).weightCache.status, 'off');
    process.env.CLIPKIT_CACHE = 'OFF';
    assert.is((await loadModel(dir)).weightCache.status, 'off');
    assert.equal(readdirSync(xdg), []);
    process.env.CLIPKIT_CACHE = folder;
    assert.is((await loadModel(dir, { weightCache: false })).weightCache.status, 'off');
    assert.equal(readdirSync(folder), []);
    const m = await loadModel(dir);
    assert.is(m.weightCache.status, 'built');
    assert.ok(m.weightCache.file!.startsWith(folder));
    assert.is((await loadModel(dir)).weightCache.status, 'mapped');
    // The option wins over the environment.
    const other = cacheDir();
    assert.ok((await loadModel(dir, { weightCache: other })).weightCache.file!.startsWith(other));
    // Unset: beside the hub cache's default root.
    delete process.env.CLIPKIT_CACHE;
    const d = await loadModel(dir);
    assert.ok(d.weightCache.file!.startsWith(join(xdg, 'clipkit', 'weights')), d.weightCache.file);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
});

fallback('the folder: option, $CLIPKIT_CACHE (~ expanded), $XDG_CACHE_HOME, ~/.cache', () => {
  assert.is(weightCacheFolder(false, { CLIPKIT_CACHE: '/somewhere' }), undefined);
  assert.is(weightCacheFolder('/opt/c', { CLIPKIT_CACHE: '/somewhere' }), '/opt/c');
  assert.is(weightCacheFolder(undefined, { CLIPKIT_CACHE: '/somewhere' }), '/somewhere');
  assert.is(weightCacheFolder(undefined, { CLIPKIT_CACHE: '~/ck' }), join(os.homedir(), 'ck'));
  assert.is(weightCacheFolder(undefined, { CLIPKIT_CACHE: 'off' }), undefined);
  assert.is(weightCacheFolder(undefined, { XDG_CACHE_HOME: '/xdg' }), '/xdg/clipkit/weights');
  assert.is(weightCacheFolder(undefined, {}), join(os.homedir(), '.cache', 'clipkit', 'weights'));
  assert.is(defaultWeightCacheFolder({}), join(os.homedir(), '.cache', 'clipkit', 'weights'));
});

fallback('weightCache must be a folder path or false', async () => {
  const dir = modelDir('openai_clip_tiny');
  await rejectsCode(() => loadModel(dir, { weightCache: '' }), 'E_ARG', /weightCache/, TypeError);
  await rejectsCode(() => loadModel(dir, { weightCache: true as never }), 'E_ARG', /folder path string or false/, TypeError);
});

fallback('weight files that cannot be keyed (not there) leave the load to say so', async () => {
  const dir = tempDir('clipkit-wc-empty-');
  mkdirSync(join(dir, 'x'));
  await rejectsCode(() => loadModel(dir, { weightCache: cacheDir() }), 'E_IO', /No such model|No weights|config/);
});

fallback.run();
