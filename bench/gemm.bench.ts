/**
 * GEMM (linear layers on packed weights, fp32 and bf16) and patch embedding at CLIP shapes.
 * Run with `npx clipkit bench --op gemm` (or gemm_bf16, patch_embed): `gemmCases()` and
 * `patchEmbedCases()` feed the bench harness (bench/index.ts). bf16 GEMMs are measured against the
 * bf16 peak of the ISA in use (AMX tiles under amx, vdpbf16ps under avx512); without a bf16 dot
 * product they widen to fp32 FMAs, and their peak is the FMA peak.
 * FLOPs counted: 2·M·N·K (the epilogue is not counted).
 */
import { native } from '../src/native';
import { packWeight, PackedWeight } from '../src/ops/gemm';
import { Tensor } from '../src/tensor';
import type { BenchCase } from './case';

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
    peak: dtype === 'bfloat16' ? 'bf16' : 'fma',
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
  // ViT-B/16 and ViT-B/32 (49 patches an image: K = 3072 over few rows).
  return [16, 32].flatMap((p) => [1, 8].map((batch) => [p, batch])).map(([p, batch]) => {
    const C = 3, H = 224, D = 768, P = (H / p) ** 2;
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
