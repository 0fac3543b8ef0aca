/**
 * GEMM (linear layers on packed weights, fp32 and bf16) and patch embedding at CLIP shapes.
 * Run alone: npx tsx bench/gemm.bench.ts [--threads N] [--isa avx2] [--filter 197x]
 * prints one line per case: op, isa, threads, shape (MxK->N), median ms, GFLOP/s and % of the FMA
 * peak measured in the same run, then the best sample (the least disturbed by other processes) (bf16 without a bf16 dot product widens to fp32 FMAs, so its peak is
 * the FMA peak). `gemmCases()` / `patchEmbedCases()` feed the same cases to the bench CLI.
 * FLOPs counted: 2·M·N·K (the epilogue is not counted).
 */
import { native } from '../src/native';
import { cpuInfo, setIsa, setThreads, Isa } from '../src/runtime';
import { packWeight, PackedWeight } from '../src/ops/gemm';
import { Tensor } from '../src/tensor';
import type { BenchCase } from './case';
import { Peaks } from './peak';

function filled(n: number, seed: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) a[i] = (((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1) * scale;
  return a;
}

export interface GemmBenchCase extends BenchCase {
  name: string;
}

// [M, K, N]: ViT-B/16 (197 tokens; ×8 images) QKV, attention out, MLP up/down; text (52 tokens, width 512).
const VIT: [number, number, number][] = [];
for (const m of [197, 197 * 8]) VIT.push([m, 768, 2304], [m, 768, 768], [m, 768, 3072], [m, 3072, 768]);
const TEXT: [number, number, number][] = [[52, 512, 1536], [52, 512, 512], [52, 512, 2048], [52, 2048, 512], [52, 768, 3072], [52, 3072, 768]];

const weights = new Map<string, Promise<PackedWeight>>();
function weight(n: number, k: number, dtype: 'float32' | 'bfloat16'): Promise<PackedWeight> {
  const key = `${n}x${k}/${dtype}`;
  if (!weights.has(key)) weights.set(key, packWeight(new Tensor(filled(n * k, n + k, 0.05), [n, k]), { dtype }));
  return weights.get(key)!;
}

function gemmCase(m: number, k: number, n: number, dtype: 'float32' | 'bfloat16', epilogue = 'none'): GemmBenchCase {
  const x = filled(m * k, 1), y = new Float32Array(m * n), bias = filled(n, 2);
  const op = dtype === 'bfloat16' ? 'gemm_bf16' : 'gemm';
  const shape = `${m}x${k}->${n}${epilogue !== 'none' ? ` +bias ${epilogue}` : ''}`;
  return {
    name: `${op} ${shape}`,
    op,
    shape,
    flops: 2 * m * n * k,
    peak: 'fma',
    run: async (repeat = 1) => {
      const w = await weight(n, k, dtype);
      await native().gemm({ x, m, k, w: w.handle, y, epilogue, bias: epilogue === 'none' ? undefined : bias, repeat });
    },
  };
}

export function gemmCases(): GemmBenchCase[] {
  const cases: GemmBenchCase[] = [];
  for (const [m, k, n] of [...VIT, ...TEXT]) cases.push(gemmCase(m, k, n, 'float32'));
  cases.push(gemmCase(197, 768, 3072, 'float32', 'gelu'), gemmCase(52, 512, 2048, 'float32', 'quick_gelu'));
  for (const [m, k, n] of [...VIT, ...TEXT.slice(0, 4)]) cases.push(gemmCase(m, k, n, 'bfloat16'));
  return cases;
}

export function patchEmbedCases(): GemmBenchCase[] {
  return [1, 8].map((batch) => {
    const C = 3, H = 224, p = 16, D = 768, P = (H / p) ** 2;
    const pixels = filled(batch * C * H * H, 3), cls = filled(D, 4), pos = filled((1 + P) * D, 5), y = new Float32Array(batch * (1 + P) * D);
    const shape = `b${batch} ${C}x${H}x${H} patch ${p} D${D}`;
    return {
      name: `patch_embed ${shape}`,
      op: 'patch_embed',
      shape,
      flops: 2 * batch * P * D * C * p * p,
      peak: 'fma' as const,
      run: async (repeat = 1) => {
        const w = await weight(D, C * p * p, 'float32');
        for (let r = 0; r < repeat; r++)
          await native().patchEmbed({ pixels, batch, channels: C, height: H, width: H, patch: p, w: w.handle, classEmb: cls, posEmb: pos, y });
      },
    };
  });
}

/** Median and best per-run milliseconds over `samples` samples of ≥ minMs each. */
async function timeCase(c: BenchCase, samples: number, minMs = 40): Promise<{ median: number; best: number }> {
  await c.run(1); // warm-up: packing, first touch, scratch allocation
  let t0 = performance.now();
  await c.run(1);
  const once = performance.now() - t0;
  const repeat = Math.max(1, Math.min(10000, Math.ceil(minMs / Math.max(once, 1e-3))));
  const times: number[] = [];
  for (let s = 0; s < samples; s++) {
    t0 = performance.now();
    await c.run(repeat);
    times.push((performance.now() - t0) / repeat);
  }
  times.sort((a, b) => a - b);
  return { median: times[samples >> 1], best: times[0] };
}

async function main() {
  const argv = process.argv.slice(2);
  const arg = (name: string) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : undefined);
  if (arg('--isa')) setIsa(arg('--isa') as Isa);
  const info = cpuInfo();
  const threadList = arg('--threads') !== undefined ? [Number(arg('--threads'))] : [info.physicalCores];
  const samples = Number(arg('--samples') ?? 7);
  const peaks = new Peaks();
  for (const threads of threadList) {
    setThreads(threads);
    const peak = await peaks.fmaGflops();
    console.log(`FMA peak (${threads} thread${threads > 1 ? 's' : ''}, ${cpuInfo().isa}): ${peak.toFixed(1)} GFLOP/s`);
    for (const c of [...gemmCases(), ...patchEmbedCases()]) {
      if (arg('--filter') && !c.name.includes(arg('--filter')!)) continue;
      const { median, best } = await timeCase(c, samples);
      const gflops = c.flops! / median / 1e6, bestGflops = c.flops! / best / 1e6;
      console.log(
        `${c.op.padEnd(11)} ${cpuInfo().isa.padEnd(6)} t=${threads}  ${c.shape.padEnd(28)} ${median.toFixed(3).padStart(8)} ms ${gflops.toFixed(1).padStart(7)} GFLOP/s ${((100 * gflops) / peak).toFixed(0).padStart(4)} % of peak` +
          `   (best ${best.toFixed(3)} ms, ${bestGflops.toFixed(1)} GFLOP/s, ${((100 * bestGflops) / peak).toFixed(0)} %)`,
      );
    }
  }
  setThreads(0);
}

if (require.main === module) main();
