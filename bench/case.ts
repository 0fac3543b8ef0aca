/** What a kernel benchmark case is: one op at one shape, with the work it does per run. */
export interface BenchCase {
  op: string; // kernel name, for --op (gemm, gemm_bf16, attention, layer_norm, ...)
  shape: string; // human-readable shape, e.g. "197x768->3072"
  /** Floating-point operations per repetition (compute-bound ops): reported as GFLOP/s. */
  flops?: number;
  /** Bytes read + written per repetition (memory-bound ops): reported as GB/s. */
  bytes?: number;
  /** Which measured peak the rate is divided by; default: fma when flops is set, else bandwidth
   *  (memory bandwidth; the copy bandwidth at the case's size is reported beside it). */
  peak?: 'fma' | 'bf16' | 'bandwidth';
  /** Runs the op `repeat` times (inside one native job where the op supports it). */
  run: (repeat: number) => Promise<void>;
}

export interface BenchRow {
  op: string;
  shape: string;
  isa: string;
  threads: number;
  median_ms: number;
  gflops?: number;
  gbps?: number;
  peak: number; // GFLOP/s or GB/s measured by the probe in this run
  peak_kind: 'fma' | 'bf16' | 'bandwidth';
  ratio: number; // achieved rate / peak
  /** Memory-bound ops: copy bandwidth at the case's working-set size, and the rate over it. */
  cache_peak?: number;
  cache_ratio?: number;
}
