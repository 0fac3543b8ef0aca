// Peak probes the benchmarks divide by: FMA throughput per ISA, bf16 dot-product throughput (AMX
// tiles under the amx ISA, else vdpbf16ps) and copy bandwidth. Each runs on every pool thread at once, like the kernels it is compared with.
#ifndef CK_ISA_PASS
#include "peak.h"

#include <chrono>
#include <cstdlib>
#include <vector>

#include "amx.h"
#include "cpu_features.h"

#define CK_SIMD_SELF "peak.cpp"
#include "isa_passes.h"

namespace ck {

using FmaFn = float (*)(size_t);
using CopyFn = void (*)(const float*, float*, size_t);
static const IsaTable<FmaFn> kFma = {pass_scalar::fma_chains, CK_X86_OR_NULL(pass_avx2::fma_chains),
                                     CK_X86_OR_NULL(pass_avx512::fma_chains), CK_NEON_OR_NULL(pass_neon::fma_chains)};
static const IsaTable<CopyFn> kCopy = {pass_scalar::copy_span, CK_X86_OR_NULL(pass_avx2::copy_span),
                                       CK_X86_OR_NULL(pass_avx512::copy_span), CK_NEON_OR_NULL(pass_neon::copy_span)};
using LanesFn = int (*)();
static const IsaTable<LanesFn> kLanes = {pass_scalar::lanes, CK_X86_OR_NULL(pass_avx2::lanes),
                                         CK_X86_OR_NULL(pass_avx512::lanes), CK_NEON_OR_NULL(pass_neon::lanes)};

static volatile float g_sink;

static double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ck_status probe_fma(size_t iters, PeakResult* out) {
  FmaFn fn = kFma.pick();
  const int threads = pool().threads();
  double t0 = now();
  pool().parallel_for(threads, [&](size_t, int) { g_sink = fn(iters); });
  out->seconds = now() - t0;
  const double flops = 2.0 * pass_scalar::kChains * kLanes.pick()() * static_cast<double>(iters) * threads;
  out->gflops_or_gbps = flops / out->seconds / 1e9;
  return CK_OK;
}

#if defined(CK_AMX)
// Four independent tdpbf16ps per iteration (C tiles 0-3 from A tiles 4-5 and B tiles 6-7), as in
// the AMX GEMM's k step: 4 · 16·16·32 multiply-adds.
CK_AMX_TARGET static float amx_dpbf16_chains(size_t iters) {
  amx_configure_thread();
  alignas(64) static const uint16_t ones[16 * 32] = {};
  alignas(64) float c[16 * 16];
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ones, 64);
  _tile_loadd(5, ones, 64);
  _tile_loadd(6, ones, 64);
  _tile_loadd(7, ones, 64);
  for (size_t i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  asm volatile("" ::: "memory");
  return c[0];
}
#endif

ck_status probe_bf16(size_t iters, PeakResult* out) {
#if defined(CK_AMX)
  if (current_isa() == Isa::Amx && cpu_features().amx) {
    // One iteration is 64 tile-cycles, not one instruction: scale so a probe takes similar time.
    const size_t tile_iters = std::max<size_t>(1, iters / 16);
    const int threads = pool().threads();
    double t0 = now();
    pool().parallel_for(threads, [&](size_t, int) { g_sink = amx_dpbf16_chains(tile_iters); });
    out->seconds = now() - t0;
    const double flops = 2.0 * 4 * 16 * 16 * 32 * static_cast<double>(tile_iters) * threads;
    out->gflops_or_gbps = flops / out->seconds / 1e9;
    return CK_OK;
  }
#endif
#if defined(CK_X86)
  if (!cpu_features().avx512_bf16 || (current_isa() != Isa::Avx512 && current_isa() != Isa::Amx)) {
    out->available = false;
    return CK_OK;
  }
  const int threads = pool().threads();
  double t0 = now();
  pool().parallel_for(threads, [&](size_t, int) { g_sink = pass_avx512::dpbf16_chains(iters); });
  out->seconds = now() - t0;
  const double flops = 2.0 * pass_scalar::kChains * 32 * static_cast<double>(iters) * threads;
  out->gflops_or_gbps = flops / out->seconds / 1e9;
#else
  out->available = false;
#endif
  return CK_OK;
}

ck_status probe_bandwidth(size_t bytes, size_t reps, PeakResult* out) {
  const size_t n = std::max<size_t>(bytes / sizeof(float), 1024);
  float* src = static_cast<float*>(std::aligned_alloc(64, ((n * 4 + 63) / 64) * 64));
  float* dst = static_cast<float*>(std::aligned_alloc(64, ((n * 4 + 63) / 64) * 64));
  if (!src || !dst) {
    std::free(src);
    std::free(dst);
    return CK_ERR_NOMEM;
  }
  CopyFn fn = kCopy.pick();
  const size_t threads = static_cast<size_t>(pool().threads());
  // First touch from the threads that will stream the data.
  pool().parallel_for(threads, [&](size_t t, int) {
    size_t b = n * t / threads, e = n * (t + 1) / threads;
    for (size_t i = b; i < e; ++i) src[i] = static_cast<float>(i & 1023), dst[i] = 0.0f;
  });
  double best = 1e300;
  for (size_t r = 0; r < std::max<size_t>(reps, 1); ++r) {
    double t0 = now();
    pool().parallel_for(threads, [&](size_t t, int) {
      size_t b = n * t / threads, e = n * (t + 1) / threads;
      fn(src + b, dst + b, e - b);
    });
    best = std::min(best, now() - t0);
  }
  g_sink = dst[n / 2];
  std::free(src);
  std::free(dst);
  out->seconds = best;
  out->gflops_or_gbps = 2.0 * n * sizeof(float) / best / 1e9;
  return CK_OK;
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

constexpr int kChains = 12;  // independent accumulators: covers 4-cycle latency × 2 FMA pipes, with room
static int lanes() { return V::W; }

static float fma_chains(size_t iters) {
  V::F acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = V::set1(0.001f * static_cast<float>(j));
  const V::F m = V::set1(0.999999f), c = V::set1(1e-7f);
  for (size_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = V::fmadd(acc[j], m, c);
  }
  V::F s = acc[0];
  for (int j = 1; j < kChains; ++j) s = V::add(s, acc[j]);
  return V::reduce_add(s);
}

static void copy_span(const float* src, float* dst, size_t n) {
  size_t i = 0;
  for (; i + 4 * V::W <= n; i += 4 * V::W) {
    V::F a = V::load(src + i), b = V::load(src + i + V::W), c = V::load(src + i + 2 * V::W), d = V::load(src + i + 3 * V::W);
    V::store(dst + i, a);
    V::store(dst + i + V::W, b);
    V::store(dst + i + 2 * V::W, c);
    V::store(dst + i + 3 * V::W, d);
  }
  for (; i < n; ++i) dst[i] = src[i];
}

#if defined(CK_PASS_AVX512)
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")))
static float dpbf16_chains(size_t iters) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(0.001f * static_cast<float>(j));
  const __m512bh a = (__m512bh)_mm512_set1_epi32(0x3F803F80), b = (__m512bh)_mm512_set1_epi32(0x33D633D6);
  for (size_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  return V::reduce_add(s);
}
#endif

#endif
