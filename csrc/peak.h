#pragma once
#include "common.h"

namespace ck {

// Measured machine peaks for the benchmarks' ratios, on the pool's threads with the current ISA.
struct PeakResult {
  double gflops_or_gbps = 0;  // rate over all threads
  double seconds = 0;
  bool available = true;      // false: the CPU lacks the instruction (bf16 probe)
};

// Independent FMA chains per thread (enough to cover latency × pipes): fp32 FMA throughput.
ck_status probe_fma(size_t iters, PeakResult* out);
// bf16 dot-product throughput: AMX tdpbf16ps under the amx ISA, else vdpbf16ps (32 bf16
// multiply-adds per zmm instruction); unavailable without AVX512-BF16.
ck_status probe_bf16(size_t iters, PeakResult* out);
// Copy bandwidth (bytes read + bytes written per second) over two buffers of `bytes` each, split
// across threads, best of `reps` passes.
ck_status probe_bandwidth(size_t bytes, size_t reps, PeakResult* out);

}  // namespace ck
