/**
 * Whole-model benchmark: full-size CLIP-family towers with random weights, clipkit (fp32 and bf16)
 * against onnxruntime-node (fp32, same tensors, same process, 2 intra-op threads) as the anchor.
 *
 *   npm ci --prefix bench     # once: the anchor, onnxruntime-node, into bench/node_modules
 *   node dist/bench/model.js [--quick] [--json] [--no-ort] [--model chinese|openai] [--load-only] [--markdown FILE]
 *
 * The anchor is not a dependency of clipkit: bench/package.json pins it with a lockfile of its own,
 * so installing or testing clipkit never fetches it. Without it the benchmark runs clipkit alone and
 * says so.
 *
 * Writes each model folder (config.json, preprocessor_config.json, model.safetensors with every
 * Hugging Face parameter the loader expects, tokenizer files) into a temp dir, checks that both
 * engines give the same embeddings (max relative error <= 1e-4, see MAX_REL_ERROR), then times, interleaving the engines:
 * load (in a fresh child process, with the RSS it leaves over the fp32 weight bytes; clipkit also
 * writing its weight cache into a fresh folder and then mapping it, with the private memory that
 * costs and the PSS two processes holding the same mapping sum to), images/s at
 * batch 1 and 8, texts/s at the full context (batch 1 and 8) and on real captions (10-30 tokens):
 * clipkit runs each at its true length (batch 1: one per call; batch 8: all eight in one ragged
 * batch), ORT runs them zero-padded to the context as the reference tokenizers give them (and, as a
 * second anchor at batch 1, cut to their true length). Rates are medians; ratio = clipkit / ORT.
 *
 * --load-only stops after the load rows (time, RSS, peak RSS, PSS of two) of each model.
 * --markdown FILE also writes the table as this machine's `bench:model` section of FILE (heading with
 * the CPU and ISA, date, commit, node, threads, the command), replacing the section an earlier run on
 * the same machine wrote and leaving the rest of FILE as it was (bench/markdown.ts).
 */
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClipConfig, parseClipConfig } from '../src/loading/config';
import { assetsDir } from '../src/loading/family_files';
import { ClipModel, loadModel } from '../src/models/model';
import { cpuInfo } from '../src/runtime';
import { expectedParameters } from '../src/loading/weights';
import { checkSectionFile, machineId, MarkerError, pipeTable, runFacts, sig3, times, writeSection } from './markdown';
import { bertTextOnnx, clipTextOnnx, Tensors, visionOnnx } from './model_onnx';

/**
 * The part of onnxruntime-node's API the anchor uses. The package is not a dependency of clipkit:
 * it lives in bench/'s own package (`npm ci --prefix bench`), so its types may be absent here.
 */
interface OrtTensor {
  data: unknown;
}
interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
}
interface OrtModule {
  InferenceSession: { create(file: string, options: Record<string, unknown>): Promise<OrtSession> };
  Tensor: new (type: 'float32' | 'int64', data: Float32Array | BigInt64Array, dims: number[]) => OrtTensor;
}

const THREADS = 2;

interface Spec {
  key: 'chinese' | 'openai';
  name: string;
  config: Record<string, unknown>;
  tokenizer: string[]; // the family's vocabulary, copied from the package's assets/ next to the weights
  tokenizerConfig: Record<string, unknown>;
  captions: string[];
}

const VISION_B = (patch: number) => ({
  hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3,
  image_size: 224, patch_size: patch, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5, projection_dim: 512,
});

export const SPECS: Spec[] = [
  {
    key: 'chinese',
    name: 'Chinese-CLIP ViT-B/16 + RoBERTa-wwm-base',
    config: {
      architectures: ['ChineseCLIPModel'], model_type: 'chinese_clip', projection_dim: 512, logit_scale_init_value: 2.6592,
      text_config: {
        model_type: 'chinese_clip_text_model', vocab_size: 21128, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12,
        intermediate_size: 3072, hidden_act: 'gelu', max_position_embeddings: 512, type_vocab_size: 2, layer_norm_eps: 1e-12, pad_token_id: 0,
      },
      vision_config: { model_type: 'chinese_clip_vision_model', ...VISION_B(16) },
    },
    tokenizer: ['vocab.txt'],
    tokenizerConfig: {
      tokenizer_class: 'BertTokenizer', do_lower_case: true, tokenize_chinese_chars: true, strip_accents: null, model_max_length: 52,
      unk_token: '[UNK]', sep_token: '[SEP]', pad_token: '[PAD]', cls_token: '[CLS]', mask_token: '[MASK]',
    },
    captions: [
      '一只橘色的猫趴在窗台上晒太阳',
      '夕阳下，一群孩子在海边的沙滩上奔跑嬉戏',
      '北京故宫的红墙和金色琉璃瓦在雪中显得格外壮观',
      '桌上放着一碗热气腾腾的牛肉面和一双筷子',
      '一位老人坐在公园的长椅上，手里拿着一份报纸，旁边有几只鸽子',
      '雨后的城市街道，霓虹灯倒映在湿漉漉的路面上',
      '一辆红色的自行车靠在开满鲜花的白色篱笆旁',
      '穿着汉服的女孩在樱花树下微笑',
    ],
  },
  {
    key: 'openai',
    name: 'OpenAI CLIP ViT-B/32',
    config: {
      architectures: ['CLIPModel'], model_type: 'clip', projection_dim: 512, logit_scale_init_value: 2.6592,
      text_config: {
        model_type: 'clip_text_model', vocab_size: 49408, hidden_size: 512, intermediate_size: 2048, num_hidden_layers: 12,
        num_attention_heads: 8, max_position_embeddings: 77, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5,
        pad_token_id: 1, bos_token_id: 49406, eos_token_id: 49407, projection_dim: 512,
      },
      vision_config: { model_type: 'clip_vision_model', ...VISION_B(32) },
    },
    tokenizer: ['bpe_simple_vocab_16e6.txt.gz'],
    tokenizerConfig: {
      tokenizer_class: 'CLIPTokenizer', do_lower_case: true, errors: 'replace', model_max_length: 77,
      bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '<|endoftext|>',
    },
    captions: [
      'an orange cat lying on a sunny windowsill next to a potted plant',
      'a group of children running on a sandy beach at sunset, with waves rolling in',
      'a bowl of steaming beef noodle soup with chopsticks on a wooden table',
      'an old man reading a newspaper on a park bench while pigeons gather around his feet',
      'a wet city street at night with neon signs reflected in the puddles',
      'a red bicycle leaning against a white picket fence covered in flowers',
      'a close-up photo of a golden retriever puppy playing with a tennis ball on green grass',
      'two people hiking up a snowy mountain trail under a clear blue sky',
    ],
  },
];

const PREPROCESSOR = {
  crop_size: { height: 224, width: 224 }, do_center_crop: true, do_convert_rgb: true, do_normalize: true, do_rescale: true, do_resize: true,
  image_mean: [0.48145466, 0.4578275, 0.40821073], image_std: [0.26862954, 0.26130258, 0.27577711],
  resample: 3, rescale_factor: 1 / 255, size: { shortest_edge: 224 },
};

// ---------------------------------------------------------------------------------------------
// Random weights and the model folder

/** xorshift128+ → uniform [-1, 1). */
function rng(seed: number): () => number {
  let s0 = (seed * 0x9e3779b9) >>> 0 || 1, s1 = 0x6d2b79f5;
  return () => {
    let x = s0;
    const y = s1;
    s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    s1 = x >>> 0;
    return (((s0 + s1) >>> 0) / 2 ** 31) - 1;
  };
}

/** Uniform values of the given standard deviation around `mean`. */
function fill(n: number, std: number, mean: number, next: () => number): Float32Array {
  const a = std * Math.sqrt(3), out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = mean + a * next();
  return out;
}

/** Every parameter the loader expects, initialised by kind: linear N(0, 1/fan_in)-ish, LayerNorm 1 ± small. */
function randomTensors(config: ClipConfig): Map<string, { data: Float32Array; shape: number[] }> {
  const next = rng(42);
  const out = new Map<string, { data: Float32Array; shape: number[] }>();
  for (const p of expectedParameters(config)) {
    const shape = [...p.shape], n = shape.reduce((a, b) => a * b, 1);
    const norm = /norm|layrnorm/i.test(p.name);
    let data: Float32Array;
    if (p.name === 'logit_scale') data = Float32Array.of(Math.log(1 / 0.07));
    else if (norm) data = fill(n, 0.02, p.name.endsWith('.weight') ? 1 : 0, next);
    else if (p.name.endsWith('.bias')) data = fill(n, 0.02, 0, next);
    else if (/embedding/.test(p.name) && !/patch_embedding/.test(p.name)) data = fill(n, 0.02, 0, next);
    else data = fill(n, 1 / Math.sqrt(n / shape[0]), 0, next); // [out, in...]: fan_in = in...
    out.set(p.name, { data, shape });
  }
  return out;
}

function writeSafetensors(file: string, tensors: ReadonlyMap<string, { data: Float32Array; shape: number[] }>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, t] of tensors) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, len);
    fs.writeSync(fd, Buffer.from(json));
    for (const t of tensors.values()) fs.writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  } finally {
    fs.closeSync(fd);
  }
}

interface Folder {
  dir: string;
  config: ClipConfig;
  tensors: Map<string, { data: Float32Array; shape: number[] }>;
  weightBytes: number;
}

export function writeFolder(spec: Spec, root: string, withOnnx: boolean): Folder {
  const dir = path.join(root, spec.key);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(spec.config, null, 2));
  fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify(PREPROCESSOR, null, 2));
  for (const f of spec.tokenizer) fs.copyFileSync(path.join(assetsDir(), f), path.join(dir, f));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(spec.tokenizerConfig, null, 2));
  const config = parseClipConfig(spec.config, path.join(dir, 'config.json'));
  const tensors = randomTensors(config);
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  let weightBytes = 0;
  for (const t of tensors.values()) weightBytes += t.data.byteLength;
  if (withOnnx) {
    const v = config.vision, t = config.text;
    fs.writeFileSync(
      path.join(dir, 'vision.onnx'),
      visionOnnx(tensors as Tensors, { width: v.hiddenSize, layers: v.numHiddenLayers, heads: v.numAttentionHeads, patch: v.patchSize, image: v.imageSize, projection: config.projectionDim, eps: v.layerNormEps }),
    );
    const tg = { width: t.hiddenSize, layers: t.numHiddenLayers, heads: t.numAttentionHeads, maxPositions: t.maxPositionEmbeddings, projection: config.projectionDim, eps: t.layerNormEps, act: t.hiddenAct };
    fs.writeFileSync(path.join(dir, 'text.onnx'), config.modelType === 'chinese_clip' ? bertTextOnnx(tensors as Tensors, tg) : clipTextOnnx(tensors as Tensors, tg));
  }
  return { dir, config, tensors, weightBytes };
}

// ---------------------------------------------------------------------------------------------
// Engines

/** bench/, which holds the anchors' package.json: beside this file in the sources, two levels up from dist/bench/. */
const ANCHOR_DIR = [__dirname, path.resolve(__dirname, '..', '..', 'bench')].find((d) => fs.existsSync(path.join(d, 'package.json')));

/** onnxruntime-node from bench/node_modules, or undefined when `npm ci --prefix bench` has not been run. */
function loadOrt(): OrtModule | undefined {
  if (!ANCHOR_DIR) return undefined;
  let file: string;
  try {
    file = require.resolve('onnxruntime-node', { paths: [ANCHOR_DIR] });
  } catch {
    return undefined;
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return require(file) as OrtModule;
}

async function ortSession(ort: OrtModule, file: string): Promise<OrtSession> {
  return ort.InferenceSession.create(file, {
    executionProviders: ['cpu'],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
}

interface Ort {
  ort: OrtModule;
  vision: OrtSession;
  text: OrtSession;
}

async function ortImages(o: Ort, pixels: Float32Array, n: number): Promise<Float32Array> {
  const out = await o.vision.run({ pixel_values: new o.ort.Tensor('float32', pixels, [n, 3, 224, 224]) });
  return out.image_embeds.data as Float32Array;
}

/** rows: token ids of each text, unpadded; all rows the same length. */
async function ortTexts(o: Ort, rows: Int32Array[]): Promise<Float32Array> {
  const len = rows[0].length;
  const ids = new BigInt64Array(rows.length * len);
  rows.forEach((r, i) => r.forEach((v, j) => (ids[i * len + j] = BigInt(v))));
  const out = await o.text.run({ input_ids: new o.ort.Tensor('int64', ids, [rows.length, len]) });
  return out.text_embeds.data as Float32Array;
}

/** The real tokens of each row of ids [n, context]: BERT up to the last non-[PAD]; CLIP up to the first end-of-text. */
function unpad(model: ClipModel, ids: Int32Array, n: number): Int32Array[] {
  const c = model.config.contextLength, clip = model.config.clip;
  return Array.from({ length: n }, (_, r) => {
    const row = ids.subarray(r * c, (r + 1) * c);
    let len: number;
    if (clip.modelType === 'clip') len = row.indexOf(clip.text.eosTokenId) + 1 || c;
    else for (len = c; len > 1 && row[len - 1] === clip.text.padTokenId; len--);
    return row.slice(0, len);
  });
}

/** ids [n, context] of full-context texts: [CLS]/BOS, random tokens, [SEP]/EOS (BERT: no padding). */
function fullContextIds(model: ClipModel, n: number): Int32Array {
  const c = model.config.contextLength, clip = model.config.clip, next = rng(7);
  const ids = new Int32Array(n * c);
  for (let r = 0; r < n; r++) {
    const row = ids.subarray(r * c, (r + 1) * c);
    if (clip.modelType === 'clip') {
      for (let j = 1; j < c - 1; j++) row[j] = Math.floor((next() + 1) * 20000) + 300;
      row[0] = clip.text.bosTokenId;
      row[c - 1] = clip.text.eosTokenId;
    } else {
      for (let j = 1; j < c - 1; j++) row[j] = Math.floor((next() + 1) * 6000) + 670;
      row[0] = 101;
      row[c - 1] = 102;
    }
  }
  return ids;
}

/**
 * The largest |a - b| over the embedding, relative to b's largest entry. The engines must agree to
 * MAX_REL_ERROR: a cosine bar (0.9999) once passed a tower with GELU swapped for QuickGELU (cosine
 * 0.99990-0.99996 on ViT-L/14, max relative error 1e-2), while the right one is near 1e-6.
 */
function relError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return a.length === b.length && scale > 0 ? diff / scale : Infinity;
}
const MAX_REL_ERROR = 1e-4;

function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------------------------------------
// Load timing in a fresh process

interface LoadResult {
  ms: number;
  rssMiB: number;
  deltaMiB: number;
  /** Anonymous (private, not file-backed) memory the load added: what a mapped cache must not cost. */
  anonDeltaMiB: number;
  /** Proportional set size after the load (with a second holder of the same mapping, half its pages each). */
  pssMiB: number;
  /** The process's peak resident set (VmHWM): what loading needed at its most. */
  hwmMiB: number;
}

/** VmHWM of /proc/self/status in MiB (Linux); NaN elsewhere. */
function peakRss(): number {
  try {
    const m = fs.readFileSync('/proc/self/status', 'utf8').match(/^VmHWM:\s+(\d+) kB/m);
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Fields of /proc/self/smaps_rollup in MiB (Linux); NaN elsewhere. */
function rollup(field: 'Anonymous' | 'Pss'): number {
  try {
    const m = fs.readFileSync('/proc/self/smaps_rollup', 'utf8').match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/**
 * cache: 'off' (weightCache: false, packing in memory) or the cache folder to use. With `hold`, the
 * child prints its result, then waits for a line on stdin before it exits (two holders of one mapping).
 */
async function childLoad(dir: string, engine: string, cache: string, hold: boolean): Promise<void> {
  const ort = engine === 'ort' ? loadOrt()! : undefined;
  const before = process.memoryUsage().rss, anonBefore = rollup('Anonymous');
  const t0 = performance.now();
  let keep: unknown;
  if (ort) keep = await Promise.all([ortSession(ort, path.join(dir, 'vision.onnx')), ortSession(ort, path.join(dir, 'text.onnx'))]);
  else keep = await loadModel(dir, { dtype: engine === 'bf16' ? 'bf16' : 'fp32', threads: THREADS, weightCache: cache === 'off' ? false : cache });
  const ms = performance.now() - t0;
  // Settled memory: V8 frees dead ArrayBuffers' storage on a background thread after a GC, so collect,
  // give it time, and collect again (the same for both engines).
  if (global.gc) global.gc();
  await new Promise((r) => setTimeout(r, 300));
  if (global.gc) global.gc();
  await new Promise((r) => setTimeout(r, 300));
  const rss = process.memoryUsage().rss;
  const out: LoadResult = { ms, rssMiB: rss / 2 ** 20, deltaMiB: (rss - before) / 2 ** 20, anonDeltaMiB: rollup('Anonymous') - anonBefore, pssMiB: rollup('Pss'), hwmMiB: peakRss() };
  process.stdout.write(JSON.stringify(out) + '\n');
  if (hold) await new Promise((r) => process.stdin.once('data', r));
  void keep;
}

function childArgs(dir: string, engine: string, cache: string, hold = false): string[] {
  return [...process.execArgv, '--expose-gc', __filename, '--child-load', dir, engine, cache, hold ? 'hold' : 'exit'];
}

function timeLoad(dir: string, engine: string, cache = 'off'): LoadResult {
  const r = spawnSync(process.execPath, childArgs(dir, engine, cache), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`load child (${engine}) failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as LoadResult;
}

/** Two processes holding the same model from one mapped cache at once: their summed PSS over one alone's. */
async function pssOfTwo(dir: string, engine: string, cache: string): Promise<number> {
  const one = timeLoad(dir, engine, cache).pssMiB;
  const start = () => {
    const child = spawn(process.execPath, childArgs(dir, engine, cache, true), { stdio: ['pipe', 'pipe', 'inherit'] });
    const result = new Promise<LoadResult>((resolve, reject) => {
      let out = '';
      child.stdout.on('data', (d: Buffer) => {
        out += d;
        if (out.includes('\n')) resolve(JSON.parse(out.trim().split('\n').pop()!) as LoadResult);
      });
      child.on('exit', (code) => reject(new Error(`holder (${engine}) exited with ${code}`)));
    });
    return { child, result };
  };
  const a = start();
  await a.result;
  const b = start();
  const rb = await b.result;
  // a's PSS now that b shares its pages: ask a fresh reading by loading nothing more; b's own reading
  // was taken with a alive, so b's PSS is already the shared one, and a's equals it by symmetry.
  const both = 2 * rb.pssMiB;
  for (const h of [a, b]) h.child.stdin.end('\n');
  return both / one;
}

// ---------------------------------------------------------------------------------------------
// Main

interface Row {
  model: string;
  case: string;
  unit: string;
  fp32: number;
  bf16: number;
  ort?: number;
  ratio_fp32?: number;
  ratio_bf16?: number;
  extra?: string;
}

type Engine = 'fp32' | 'bf16' | 'ort';

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child-load') return childLoad(argv[1], argv[2], argv[3] ?? 'off', argv[4] === 'hold');
  const quick = argv.includes('--quick'), json = argv.includes('--json'), loadOnly = argv.includes('--load-only');
  const only = argv.includes('--model') ? argv[argv.indexOf('--model') + 1] : undefined;
  const markdown = argv.includes('--markdown') ? argv[argv.indexOf('--markdown') + 1] : undefined;
  if (argv.includes('--markdown') && (!markdown || markdown.startsWith('--'))) {
    console.error('bench/model: --markdown needs a file name');
    process.exitCode = 2;
    return;
  }
  if (markdown) checkSectionFile(markdown); // before the run, so bad markers do not cost one
  const ortMod = argv.includes('--no-ort') ? undefined : loadOrt();
  const reps = quick ? 3 : 5, loadReps = quick ? 1 : 3;
  const log = (s: string) => process.stderr.write(s + '\n');
  if (!ortMod && !argv.includes('--no-ort')) log('onnxruntime-node is not installed, so clipkit runs alone; for the anchor run `npm ci --prefix bench` once (or pass --no-ort to silence this)');

  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'clipkit-model-bench-'));
  const rows: Row[] = [];
  try {
    for (const spec of SPECS.filter((s) => !only || s.key === only)) {
      let t0 = performance.now();
      const folder = writeFolder(spec, root, !!ortMod);
      log(`${spec.name}: ${(folder.weightBytes / 2 ** 20).toFixed(0)} MiB fp32 weights written in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      folder.tensors.clear(); // the engines load from disk

      // Load time and RSS, each in a fresh process, interleaved: without the weight cache (packing in
      // memory), writing it (a fresh cache folder each time), and mapping it.
      const engines: Engine[] = ortMod ? ['fp32', 'bf16', 'ort'] : ['fp32', 'bf16'];
      const loads: Record<string, LoadResult[]> = {}, built: Record<string, LoadResult[]> = {}, mapped: Record<string, LoadResult[]> = {};
      const cacheRoot = path.join(root, `${spec.key}-weights`);
      timeLoad(folder.dir, 'fp32'); // warms the page cache: every timed load reads the files from memory
      for (let r = 0; r < loadReps; r++)
        for (let i = 0; i < engines.length; i++) {
          const e = engines[(i + r) % engines.length];
          (loads[e] ??= []).push(timeLoad(folder.dir, e));
          if (e === 'ort') continue;
          const cache = path.join(cacheRoot, `${e}-${r}`);
          (built[e] ??= []).push(timeLoad(folder.dir, e, cache));
          (mapped[e] ??= []).push(timeLoad(folder.dir, e, cache));
        }
      const med = (e: Engine, k: keyof LoadResult, from = loads) => (from[e] ? median(from[e].map((x) => x[k])) : NaN);
      const wMiB = folder.weightBytes / 2 ** 20;
      const row = (c: string, unit: string, v: (e: Engine) => number, higherIsBetter: boolean): Row => {
        const out: Row = { model: spec.key, case: c, unit, fp32: v('fp32'), bf16: v('bf16') };
        if (ortMod && !Number.isNaN(v('ort'))) {
          out.ort = v('ort');
          const ratio = (x: number) => (higherIsBetter ? x / out.ort! : out.ort! / x);
          out.ratio_fp32 = ratio(out.fp32);
          out.ratio_bf16 = ratio(out.bf16);
        }
        return out;
      };
      rows.push(row('load (both towers), no cache', 'ms', (e) => med(e, 'ms'), false));
      rows.push(row('load, writing the weight cache', 'ms', (e) => med(e, 'ms', built), false));
      rows.push(row('load, weight cache mapped', 'ms', (e) => med(e, 'ms', mapped), false));
      rows.push(row('RSS after load, no cache', 'MiB', (e) => med(e, 'rssMiB'), false));
      rows.push(row('RSS after load, weight cache mapped', 'MiB', (e) => med(e, 'rssMiB', mapped), false));
      rows.push(row('peak RSS, no cache', 'MiB', (e) => med(e, 'hwmMiB'), false));
      rows.push(row('peak RSS, writing the weight cache', 'MiB', (e) => med(e, 'hwmMiB', built), false));
      // The bound the streaming build keeps: its peak over what the loaded model holds (a mapped load's RSS).
      rows.push(row('peak RSS writing / RSS mapped', 'x', (e) => med(e, 'hwmMiB', built) / med(e, 'rssMiB', mapped), false));
      rows.push(row('RSS growth / fp32 weights, no cache', 'x', (e) => med(e, 'deltaMiB') / wMiB, false));
      rows.push(row('private memory growth / fp32 weights, mapped', 'x', (e) => med(e, 'anonDeltaMiB', mapped) / wMiB, false));
      const pss: Partial<Record<Engine, number>> = {};
      for (const e of ['fp32', 'bf16'] as const) pss[e] = await pssOfTwo(folder.dir, e, path.join(cacheRoot, `${e}-0`));
      rows.push(row('PSS of 2 processes / 1, mapped', 'x', (e) => pss[e] ?? NaN, false));

      if (loadOnly) continue;

      // Throughput, in this process.
      t0 = performance.now();
      const models: Record<'fp32' | 'bf16', ClipModel> = {
        // Packed in memory: the same numbers as mapped, and nothing left in the user's weight cache.
        fp32: await loadModel(folder.dir, { dtype: 'fp32', batchSize: 8, threads: THREADS, weightCache: false }),
        bf16: await loadModel(folder.dir, { dtype: 'bf16', batchSize: 8, threads: THREADS, weightCache: false }),
      };
      const ort: Ort | undefined = ortMod && {
        ort: ortMod,
        vision: await ortSession(ortMod, path.join(folder.dir, 'vision.onnx')),
        text: await ortSession(ortMod, path.join(folder.dir, 'text.onnx')),
      };
      log(`  engines loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      const m = models.fp32, per = 3 * 224 * 224, next = rng(3);
      const pixels = fill(8 * per, 1, 0, next);
      const ctxIds = fullContextIds(m, 8);
      const capIds = m.tokenize(spec.captions);
      const caps = unpad(m, capIds, spec.captions.length);
      const ctxRows = unpad(m, ctxIds, 8);
      const capLens = caps.map((c) => c.length), ctx = m.config.contextLength;
      const capRange = `${Math.min(...capLens)}-${Math.max(...capLens)}`;
      const capsPadded = caps.map((r) => {
        const row = new Int32Array(ctx); // zeros after the text, as the reference tokenizers pad
        row.set(r);
        return row;
      });

      // Same embeddings before timing.
      const check: string[] = [];
      const img = await m.encodePixels(pixels.subarray(0, 2 * per), 2, { normalize: false });
      const txt = await m.encodeTokens(capIds.subarray(0, 2 * m.config.contextLength), 2, { normalize: false });
      const imgB = await models.bf16.encodePixels(pixels.subarray(0, per), 1, { normalize: false });
      check.push(`bf16/fp32 image cos ${cosine(img[0], imgB[0]).toFixed(5)}`);
      if (ort) {
        const oi = await ortImages(ort, pixels.subarray(0, 2 * per), 2);
        const ot = await ortTexts(ort, [caps[0]]), op = await ortTexts(ort, capsPadded.slice(0, 2));
        const d = m.config.projectionDim;
        const pairs: [ArrayLike<number>, ArrayLike<number>][] = [
          [img[0], oi.subarray(0, d)], [img[1], oi.subarray(d)], [txt[0], ot], [txt[0], op.subarray(0, d)], [txt[1], op.subarray(d)],
        ];
        const err = pairs.map(([a, b]) => relError(a, b));
        check.push(`clipkit/ORT max rel error image ${err[0].toExponential(1)} ${err[1].toExponential(1)}, text ${err[2].toExponential(1)}, padded text ${err[3].toExponential(1)} ${err[4].toExponential(1)}`);
        if (err.some((e) => !(e <= MAX_REL_ERROR))) throw new Error(`${spec.name}: clipkit and ORT disagree beyond ${MAX_REL_ERROR} (${check.join('; ')})`);
      }
      log(`  ${check.join('; ')}`);

      const cases: { name: string; items: number; run: Record<Engine, () => Promise<unknown>> }[] = [
        { name: 'images b1', items: 1, run: engineRuns((mm) => mm.encodePixels(pixels.subarray(0, per), 1), () => ortImages(ort!, pixels.subarray(0, per), 1)) },
        { name: 'images b8', items: 8, run: engineRuns((mm) => mm.encodePixels(pixels, 8), () => ortImages(ort!, pixels, 8)) },
        { name: `texts ${m.config.contextLength} tok b1`, items: 1, run: engineRuns((mm) => mm.encodeTokens(ctxIds.subarray(0, m.config.contextLength), 1), () => ortTexts(ort!, ctxRows.slice(0, 1))) },
        { name: `texts ${m.config.contextLength} tok b8`, items: 8, run: engineRuns((mm) => mm.encodeTokens(ctxIds, 8), () => ortTexts(ort!, ctxRows)) },
        // Captions: clipkit runs each at its true length; ORT gets them as the reference tokenizer
        // gives them, zero-padded to the context (masked), and, as a second anchor, cut to their true length.
        { name: `captions ${capRange} tok b1`, items: caps.length, run: engineRuns(captionsOneByOne, () => ortOneByOne(capsPadded)) },
        { name: `captions ${capRange} tok b8`, items: caps.length, run: engineRuns((mm) => mm.encodeTokens(capIds, caps.length), () => ortTexts(ort!, capsPadded)) },
        { name: `captions ${capRange} tok b1, ORT unpadded`, items: caps.length, run: engineRuns(captionsOneByOne, () => ortOneByOne(caps)) },
      ];
      async function captionsOneByOne(mm: ClipModel): Promise<void> {
        for (let i = 0; i < caps.length; i++) await mm.encodeTokens(capIds.subarray(i * ctx, (i + 1) * ctx), 1);
      }
      async function ortOneByOne(rows: Int32Array[]): Promise<void> {
        for (const r of rows) await ortTexts(ort!, [r]);
      }
      function engineRuns(ck: (mm: ClipModel) => Promise<unknown>, o: () => Promise<unknown>): Record<Engine, () => Promise<unknown>> {
        return { fp32: () => ck(models.fp32), bf16: () => ck(models.bf16), ort: o };
      }
      for (const c of cases) {
        const times: Record<string, number[]> = {};
        const order = ort ? engines : engines.filter((e) => e !== 'ort');
        for (const e of order) await c.run[e](); // warm-up
        for (let r = 0; r < reps; r++)
          for (let i = 0; i < order.length; i++) {
            const e = order[(i + r) % order.length]; // rotate which engine goes first
            const t = performance.now();
            await c.run[e]();
            (times[e] ??= []).push(performance.now() - t);
          }
        const rate = (e: Engine) => (times[e] ? (c.items * 1000) / median(times[e]) : NaN);
        const r = row(c.name, c.name.startsWith('images') ? 'img/s' : 'text/s', rate, true);
        rows.push(r);
        log(`  ${c.name}: ${fmtRow(r)}`);
      }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }

  if (json) for (const r of rows) process.stdout.write(JSON.stringify({ ...r, threads: THREADS, cpu: os.cpus()[0]?.model }) + '\n');
  else {
    console.log(`${os.cpus()[0]?.model ?? 'cpu'}, ${THREADS} threads; ${LEGEND}`);
    console.log(formatTable(rows));
  }
  if (markdown) writeMarkdown(markdown, rows, !!ortMod);
}

const LEGEND = 'medians; ratio > 1: clipkit better (rates: faster; ms and RSS: lower)';

/** The result table: text columns left-aligned, numbers right-aligned; "-" where ORT did not run. */
function formatTable(rows: Row[]): string {
  const head = ['model', 'case', 'unit', 'clipkit fp32', 'clipkit bf16', 'ORT fp32', 'fp32/ORT', 'bf16/ORT'];
  const body = rows.map((r) => [r.model, r.case, r.unit, sig3(r.fp32), sig3(r.bf16), sig3(r.ort), times(r.ratio_fp32), times(r.ratio_bf16)]);
  return pipeTable(head, body, (i) => i >= 3);
}

/** Writes `rows` as this machine's bench:model section of `file` (see bench/markdown.ts). */
function writeMarkdown(file: string, rows: Row[], withOrt: boolean): void {
  writeSection(file, {
    kind: 'model',
    machine: machineId(cpuInfo()),
    what: 'Towers',
    facts: runFacts(THREADS),
    table: formatTable(rows),
    notes: [withOrt ? `Random weights, onnxruntime-node fp32 as the anchor; ${LEGEND}.` : 'Random weights, clipkit alone (ORT did not run, so no ratios); medians.'],
  });
}

function fmtRow(r: Row): string {
  return `fp32 ${sig3(r.fp32)}, bf16 ${sig3(r.bf16)}` + (r.ort !== undefined ? `, ORT ${sig3(r.ort)} (${times(r.ratio_fp32)}, ${times(r.ratio_bf16)})` : '') + ` ${r.unit}`;
}

if (require.main === module)
  main().catch((err) => {
    console.error(err instanceof MarkerError ? err.message : err); // a file to fix, not a bug: no stack
    process.exit(1);
  });
