/**
 * Machine peaks measured in the same run as the kernels: FMA throughput (per ISA), bf16 dot-product
 * throughput (vdpbf16ps; where the CPU lacks it bf16 GEMM widens to fp32 FMAs, so its peak is the
 * FMA peak), and copy bandwidth at a given working-set size. The harness pairs one short probe with
 * every timing sample (bench/index.ts).
 */
import { native } from '../src/native';

async function probe(kind: 'fma' | 'bf16' | 'bandwidth', extra: Record<string, number>): Promise<number | null> {
  const r = (await native().probePeak({ kind, ...extra })) as { rate: number; available: boolean };
  return r.available ? r.rate : null;
}

/** One short probe (~20 ms), for pairing with a single timing sample. */
export async function probeOnce(kind: 'fma' | 'bf16' | 'bandwidth', bytes = 0): Promise<number | null> {
  if (kind === 'bandwidth') {
    const size = 2 ** Math.ceil(Math.log2(Math.max(bytes / 2, 1 << 16)));
    const reps = Math.max(2, Math.min(200, Math.round((64 << 20) / size)));
    return probe('bandwidth', { bytes: size, reps });
  }
  return probe(kind, { iters: kind === 'fma' ? 4_000_000 : 2_000_000 });
}
