/**
 * The CUDA backend from Node: every way of not having one gives E_CUDA naming what is missing
 * (tested on every run), and with a GPU the ops match the float64 references. The kernels' own
 * tests, at every size and dtype, are the C++ program test/cuda/kernels_test.cpp.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { CudaDevice, layerNorm, Tensor } from '../../src';
import { native } from '../../src/native';
import { assertClose, hasProgram, normal, rejectsCode, tempDir, uniform } from '../helpers';
import { attentionRefF64 } from '../ref/attention';
import { gemmRefF64, roundBf16 } from '../ref/gemm';
import { layerNormRefF64 } from '../ref/layer_norm';

const Missing = suite('cuda: without a usable GPU');
const root = path.join(__dirname, '..', '..');
const built = path.join(root, 'build', 'Release', 'libclipkit_cuda.so');

// A stand-in library: the real interface's names, compiled from C here (ABI version and symbols chosen by the test).
function fakeLibrary(dir: string, name: string, abi: number, symbols: readonly string[]): string {
  const src = path.join(dir, `${name}.c`), out = path.join(dir, `${name}.so`);
  const body = symbols.map((s) => (s === 'ckc_abi_version' ? `int ${s}(void) { return ${abi}; }` : `int ${s}(void) { return 0; }`));
  fs.writeFileSync(src, body.join('\n') + '\n');
  const r = spawnSync('cc', ['-shared', '-fPIC', '-o', out, src], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  return out;
}
const SYMBOLS = [
  'ckc_abi_version', 'ckc_last_error', 'ckc_status_name', 'ckc_init', 'ckc_stream_create', 'ckc_stream_destroy', 'ckc_stream_sync',
  'ckc_alloc', 'ckc_free', 'ckc_copy_to_device', 'ckc_copy_to_host', 'ckc_convert', 'ckc_gemm', 'ckc_attention', 'ckc_layer_norm',
];

// The fakes come first: once the real library is opened the process keeps it.
Missing('a library file that does not exist: E_CUDA names it and how to build one', async () => {
  await rejectsCode(CudaDevice.open({ library: '/nonexistent/libclipkit_cuda.so' }), 'E_CUDA', [
    /\/nonexistent\/libclipkit_cuda\.so/,
    /does not exist/,
    /nvcc/,
  ]);
});

Missing('a file that is not a shared library: E_CUDA says it could not be loaded', async () => {
  const dir = tempDir('clipkit-cuda-');
  const file = path.join(dir, 'libclipkit_cuda.so');
  fs.writeFileSync(file, 'not an ELF file\n');
  await rejectsCode(CudaDevice.open({ library: file }), 'E_CUDA', [/could not be loaded/, /libclipkit_cuda\.so/]);
});

const withCc = hasProgram('cc', 'building stand-in CUDA libraries') ? Missing : Missing.skip;
withCc('a library that lacks an entry point, or has another interface version: E_CUDA says which', async () => {
  const dir = tempDir('clipkit-cuda-');
  const partial = fakeLibrary(dir, 'partial', 1, SYMBOLS.filter((s) => s !== 'ckc_gemm'));
  await rejectsCode(CudaDevice.open({ library: partial }), 'E_CUDA', [/lacks ckc_gemm/, /rebuild/]);
  const other = fakeLibrary(dir, 'other', 999, SYMBOLS);
  await rejectsCode(CudaDevice.open({ library: other }), 'E_CUDA', [/interface version 999/, /needs version 1/]);
});

Missing('ops before a device is open are E_CUDA, and the CPU ops keep working after every failure', async () => {
  assert.throws(() => native().cudaStream({}), (e: Error & { code?: string }) => e.code === 'E_CUDA' && /cudaInit first/.test(e.message));
  const x = normal(3 * 7, 1), g = uniform(7, 2, 0.5, 1.5);
  const y = await layerNorm(new Tensor(x, [3, 7]), new Tensor(g, [7]), null, { eps: 1e-5 });
  assertClose(y.data, layerNormRefF64(x, g, null, 3, 7, 1e-5).y, { atol: 1e-5, rtol: 1e-5, name: 'cpu layer norm' });
});

// The library built beside the addon: on a machine without a GPU it must say what is missing.
const withLibrary = fs.existsSync(built) ? Missing : Missing.skip;
if (!fs.existsSync(built)) console.log('  (skipped: the built CUDA library; this build has none, as without nvcc)');
// Whether this machine has a usable GPU, asked in a child process so the suites below can be skipped
// (not passed) without one; the answer is checked again in this process by the test after it.
const probe = fs.existsSync(built)
  ? spawnSync(process.execPath, ['-r', 'tsx/cjs', '-e', "require('./src').CudaDevice.open().then(() => process.exit(0), (e) => { console.log(e.message); process.exit(3); })"], {
      cwd: root,
      encoding: 'utf8',
      timeout: 120_000,
    })
  : undefined;
const hasGpu = probe?.status === 0;
withLibrary('the built library opens a GPU, or says which of driver, GPU or version is missing', async () => {
  if (hasGpu) {
    const gpu = await CudaDevice.open();
    assert.match(gpu.info.computeCapability, /^\d+\.\d+$/);
    assert.ok(gpu.info.library.endsWith('libclipkit_cuda.so'));
    return;
  }
  const e = await rejectsCode(CudaDevice.open(), 'E_CUDA');
  assert.match(e.message, /no NVIDIA driver|sees no GPU|driver supports CUDA|driver is older|compute capability|was asked for/);
  assert.is(probe?.stdout.trim(), e.message, 'the child process saw the same');
});
const testProgram = path.join(root, 'build', 'Release', 'clipkit_cuda_test');
(fs.existsSync(testProgram) ? Missing : Missing.skip)('the kernels\' C++ test program passes on a GPU, or skips (77) saying why', () => {
  const r = spawnSync(testProgram, hasGpu ? [] : ['--quick'], { encoding: 'utf8', timeout: 600_000 });
  if (hasGpu) {
    assert.is(r.status, 0, r.stdout.split('\n').filter((l) => l.includes('"pass":false')).slice(0, 5).join('\n') + r.stderr);
    return;
  }
  assert.is(r.status, 77, r.stdout + r.stderr);
  assert.match(r.stdout, /^skip: (no NVIDIA driver|no GPU|NVIDIA driver too old|GPU too old): /m);
});
Missing.run();

// ---- on a GPU ----
const OnGpu = suite('cuda: ops on the GPU');
if (!hasGpu) console.log(`  (skipped: CUDA ops need a GPU${probe?.stdout.trim() ? `: ${probe.stdout.trim()}` : ''})`);
let device: CudaDevice;
OnGpu.before(async () => {
  if (hasGpu) device = await CudaDevice.open();
});
const gpuTest = (name: string, fn: (g: CudaDevice) => Promise<void>) => (hasGpu ? OnGpu : OnGpu.skip)(name, () => fn(device));

gpuTest('gemm, fp32 exact and bf16 tensor cores, bias and GELU, against float64', async (g) => {
  for (const [m, n, k] of [[1, 7, 8], [7, 63, 64], [197, 769, 768]] as const) {
    const x = normal(m * k, m + k), w = normal(n * k, n, 0.05), bias = normal(n, 3);
    const ref = gemmRefF64(x, w, m, n, k, { bias, epilogue: 'gelu' });
    const b = await g.upload(bias, [n]);
    const y32 = await g.download(await g.gemm(await g.upload(x, [m, k]), await g.upload(w, [n, k]), { bias: b, epilogue: 'gelu', precision: 'exact' }));
    assertClose(y32, ref.y, { atol: 1e-5, rtol: 1e-5, name: `fp32 ${m}x${n}x${k}` });
    // bf16: against the float64 product of the bf16-rounded inputs; the rest is fp32 accumulation.
    const refB = gemmRefF64(roundBf16(x), roundBf16(w), m, n, k, { bias, epilogue: 'gelu' });
    const yb = await g.download(await g.gemm(await g.upload(x, [m, k], 'bf16'), await g.upload(w, [n, k], 'bf16'), { bias: b, epilogue: 'gelu' }));
    assertClose(yb, refB.y, { atol: 1e-4, rtol: 1e-4, name: `bf16 ${m}x${n}x${k}` });
  }
});

gpuTest('layer norm with the residual add, against float64', async (g) => {
  for (const [rows, dim] of [[1, 7], [197, 768], [7, 769]] as const) {
    const x = normal(rows * dim, dim, 2, 0.5), r = normal(rows * dim, dim + 1), gamma = uniform(dim, 3, 0.5, 1.5), beta = uniform(dim, 4);
    const out = await g.layerNorm(await g.upload(x, [rows, dim]), await g.upload(gamma, [dim]), await g.upload(beta, [dim]), {
      eps: 1e-5,
      residual: await g.upload(r, [rows, dim]),
    });
    const ref = layerNormRefF64(x, gamma, beta, rows, dim, 1e-5, r);
    assertClose(await g.download(out.y), ref.y, { atol: 1e-5, rtol: 1e-5, name: `y ${rows}x${dim}` });
    assertClose(await g.download(out.sum!), ref.sum, { atol: 0, rtol: 1e-7, name: `sum ${rows}x${dim}` });
  }
});

gpuTest('attention with a key mask and causal, fp32 and bf16, against float64', async (g) => {
  for (const [batch, seq, heads, d, causal] of [[2, 7, 2, 64, false], [1, 77, 8, 64, true], [2, 197, 12, 64, false]] as const) {
    const n = batch * seq * heads * d;
    const q = normal(n, 1), k = normal(n, 2), v = normal(n, 3);
    const mask = Int32Array.from({ length: batch * seq }, (_, i) => (i % seq < seq - 2 || seq < 3 ? 1 : 0));
    const ref = attentionRefF64(q, k, v, { batch, seq, heads, headDim: d, causal, keyMask: mask });
    const keyMask = await g.uploadInt32(mask, [batch, seq]);
    for (const dtype of ['fp32', 'bf16'] as const) {
      const t = async (a: Float32Array) => g.upload(a, [batch, seq, heads * d], dtype);
      const out = await g.attention(await t(q), await t(k), await t(v), { heads, causal, keyMask });
      const tol = dtype === 'fp32' ? 1e-5 : 2e-2; // bf16 q, k, v and P: ~3 significant digits each
      assertClose(await g.download(out), ref, { atol: tol, rtol: tol, name: `${dtype} b${batch} s${seq} h${heads}` });
    }
  }
});

gpuTest('a buffer too small for its shape is E_SHAPE before anything runs on the GPU', async (g) => {
  const x = await g.upload(normal(8 * 8, 1), [8, 8]);
  const small = g.empty([4, 8]);
  await rejectsCode(
    native().cudaGemm({ stream: (g as unknown as { stream: unknown }).stream, x: x.buffer, w: small.buffer, y: x.buffer, m: 8, n: 8, k: 8 }) as Promise<unknown>,
    'E_SHAPE',
    /w holds 128 bytes/,
    Error,
  );
});

OnGpu.run();
