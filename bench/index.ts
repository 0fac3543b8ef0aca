/**
 * Kernel microbenchmarks: every case from the per-op bench files, timed on the native pool, with the
 * machine's peaks measured in the same run. Prints a table, or one JSON object per line with --json:
 * { op, shape, isa, threads, median_ms, gflops | gbps, peak, ratio }.
 *
 * Timing: a case runs `repeat` times inside one native job (so the hand-off to the pool is amortised);
 * repeat is chosen so one sample takes ≥ 25 ms; the median of `samples` samples is reported. Each
 * sample is followed by a short probe of the peak (FMA, bf16, or for memory-bound ops the memory
 * bandwidth — a copy over 2 × 64 MiB — and the copy bandwidth at the case's own working-set size),
 * and `ratio` is the median of the per-sample ratios: on a shared machine whose speed drifts by
 * 2× within seconds, a peak measured once would not describe the moment the case ran.
 *
 * `clipkit bench ... --markdown FILE` also writes the table as this machine's `bench:kernels` section
 * of FILE (heading with the CPU and ISA, date, commit, node, threads, the command), replacing the
 * section an earlier run on the same machine wrote and leaving the rest of FILE as it was
 * (bench/markdown.ts).
 */
import { cpuInfo, setIsa, setThreads, Isa } from '../src/runtime';
import { BenchCase, BenchRow } from './case';
import { elementwiseCases } from './elementwise.bench';
import { machineId, percent, pipeTable, runFacts, sig3, writeSection } from './markdown';
import { probeOnce } from './peak';

export { checkSectionFile } from './markdown';

export interface BenchOptions {
  op?: string; // run only cases whose op equals this (or starts with it followed by "_")
  threads?: number; // 0 = physical cores
  isa?: Isa;
  samples?: number;
  minSampleMs?: number;
  onRow?: (row: BenchRow) => void;
}

// The cases hold their inputs, so they are built once per process: listing the ops, checking --op
// and running share them.
let casesOnce: Promise<BenchCase[]> | undefined;
function allCases(): Promise<BenchCase[]> {
  return (casesOnce ??= buildCases());
}

async function buildCases(): Promise<BenchCase[]> {
  const cases = [...elementwiseCases()];
  // Kernels whose bench files exist in this build (each exports a function returning BenchCase[]).
  for (const [file, fn] of [
    ['./gemm.bench', 'gemmCases'],
    ['./attention.bench', 'benchCases'],
    ['./gemm.bench', 'patchEmbedCases'],
  ] as const) {
    let mod: Record<string, () => BenchCase[] | Promise<BenchCase[]>>;
    try {
      mod = require(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && String((err as Error).message).includes(file.slice(2))) continue;
      throw err;
    }
    if (typeof mod[fn] === 'function') cases.push(...(await mod[fn]()));
  }
  return cases;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function matchesOp(caseOp: string, op?: string): boolean {
  return !op || caseOp === op || caseOp.startsWith(op + '_');
}

export async function listOps(): Promise<string[]> {
  return [...new Set((await allCases()).map((c) => c.op))];
}

export async function runBench(opts: BenchOptions = {}): Promise<BenchRow[]> {
  if (opts.isa) setIsa(opts.isa);
  setThreads(opts.threads ?? 0);
  const info = cpuInfo();
  const cases = (await allCases()).filter((c) => matchesOp(c.op, opts.op));
  const rows: BenchRow[] = [];
  const samples = opts.samples ?? 7, minMs = opts.minSampleMs ?? 25;
  for (const c of cases) {
    // Warm up (first touch, packing caches) and size the repeat count.
    let t0 = performance.now();
    await c.run(1);
    let once = performance.now() - t0;
    t0 = performance.now();
    await c.run(1);
    once = Math.min(once, performance.now() - t0);
    const repeat = Math.max(1, Math.min(100000, Math.ceil(minMs / Math.max(once, 1e-3))));
    // The machine's speed drifts (shared hosts): each sample is paired with a short probe of the peak
    // taken right after it, and the ratio is the median of the per-sample ratios.
    const kind = c.peak ?? (c.flops ? 'fma' : 'bandwidth');
    // Memory-bound ops are compared with the machine's memory (DRAM) bandwidth, as `peak`/`ratio`, and
    // also with the copy bandwidth at their own working-set size (`cache_peak`/`cache_ratio`): at
    // cache-resident sizes the second is the stricter bar.
    const times: number[] = [], peaksSeen: number[] = [], ratios: number[] = [], cachePeaks: number[] = [], cacheRatios: number[] = [];
    for (let s = 0; s < samples; s++) {
      const t = performance.now();
      await c.run(repeat);
      const ms = (performance.now() - t) / repeat;
      const rate = c.flops ? c.flops / ms / 1e6 : (c.bytes ?? 0) / ms / 1e6;
      let peak = kind === 'bf16' ? await probeOnce('bf16') : null;
      if (kind === 'bandwidth') {
        peak = (await probeOnce('bandwidth', DRAM_BYTES))!;
        const cachePeak = (await probeOnce('bandwidth', c.bytes ?? 0))!;
        cachePeaks.push(cachePeak);
        cacheRatios.push(rate / cachePeak);
      }
      if (peak === null) peak = (await probeOnce('fma'))!;
      times.push(ms);
      peaksSeen.push(peak);
      ratios.push(rate / peak);
    }
    const ms = median(times);
    const peak = median(peaksSeen);
    const row: BenchRow = { op: c.op, shape: c.shape, isa: info.isa, threads: info.threads, median_ms: round(ms, 4), peak: round(peak, 1), peak_kind: kind, ratio: round(median(ratios), 3) };
    if (c.flops) row.gflops = round(c.flops / ms / 1e6, 1);
    if (c.bytes && !c.flops) row.gbps = round(c.bytes / ms / 1e6, 1);
    if (cachePeaks.length) {
      row.cache_peak = round(median(cachePeaks), 1);
      row.cache_ratio = round(median(cacheRatios), 3);
    }
    rows.push(row);
    opts.onRow?.(row);
  }
  return rows;
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

/** Working set of the memory-bandwidth probe: two 64 MiB buffers, twice the L3 of a large desktop part. */
const DRAM_BYTES = 128 << 20;

/** A fixed-width table of rows, for terminals and BENCHMARKS.md. */
export function formatTable(rows: BenchRow[]): string {
  const head = ['op', 'shape', 'isa', 'threads', 'median ms', 'rate', 'peak', 'ratio', 'vs copy at this size'];
  const body = rows.map((r) => [
    r.op,
    r.shape,
    r.isa,
    String(r.threads),
    r.median_ms.toFixed(4),
    r.gflops !== undefined ? `${sig3(r.gflops)} GFLOP/s` : `${sig3(r.gbps)} GB/s`,
    `${sig3(r.peak)} ${r.peak_kind === 'bandwidth' ? 'GB/s' : 'GFLOP/s'} (${r.peak_kind})`,
    percent(r.ratio),
    r.cache_ratio !== undefined ? `${percent(r.cache_ratio)} of ${sig3(r.cache_peak)} GB/s` : '',
  ]);
  return pipeTable(head, body);
}

/** Writes `rows` as this machine's bench:kernels section of `file` (see bench/markdown.ts). */
export function writeMarkdown(file: string, rows: BenchRow[]): void {
  const info = cpuInfo();
  writeSection(file, {
    kind: 'kernels',
    machine: machineId(info),
    what: 'Kernels',
    facts: runFacts(rows[0]?.threads ?? info.threads),
    table: formatTable(rows),
    notes: ['Medians; ratio: rate / the peak probed right after each sample (median of the per-sample ratios).'],
  });
}
