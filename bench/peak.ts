/**
 * Machine peaks measured in the same run as the kernels: FMA throughput (per ISA), bf16 dot-product
 * throughput (vdpbf16ps; where the CPU lacks it bf16 GEMM widens to fp32 FMAs, so its peak is the
 * FMA peak), and copy bandwidth at a given working-set size. Best of several probes.
 */
import { native } from '../src/native';

async function best(kind: 'fma' | 'bf16' | 'bandwidth', extra: Record<string, number>, tries: number): Promise<number | null> {
  let top = 0;
  for (let i = 0; i < tries; i++) {
    const r = (await native().probePeak({ kind, ...extra })) as { rate: number; available: boolean };
    if (!r.available) return null;
    top = Math.max(top, r.rate);
  }
  return top;
}

/** One short probe (~20 ms), for pairing with a single timing sample. */
export async function probeOnce(kind: 'fma' | 'bf16' | 'bandwidth', bytes = 0): Promise<number | null> {
  if (kind === 'bandwidth') {
    const size = 2 ** Math.ceil(Math.log2(Math.max(bytes / 2, 1 << 16)));
    const reps = Math.max(2, Math.min(200, Math.round((64 << 20) / size)));
    return best('bandwidth', { bytes: size, reps }, 1);
  }
  return best(kind, { iters: kind === 'fma' ? 4_000_000 : 2_000_000 }, 1);
}

export class Peaks {
  private fma?: number;
  private bf16?: number | null;
  private bandwidth = new Map<number, number>();

  async fmaGflops(): Promise<number> {
    return (this.fma ??= (await best('fma', { iters: 40_000_000 }, 5))!);
  }
  /** null where the CPU has no bf16 dot product. */
  async bf16Gflops(): Promise<number | null> {
    if (this.bf16 === undefined) this.bf16 = await best('bf16', { iters: 20_000_000 }, 5);
    return this.bf16;
  }
  /** Copy bandwidth (read + write) over two buffers of about `bytes / 2` each, rounded up to a power of two. */
  async bandwidthGbps(bytes: number): Promise<number> {
    const size = 2 ** Math.ceil(Math.log2(Math.max(bytes / 2, 1 << 16)));
    if (!this.bandwidth.has(size)) this.bandwidth.set(size, (await best('bandwidth', { bytes: size, reps: 20 }, 3))!);
    return this.bandwidth.get(size)!;
  }
}
