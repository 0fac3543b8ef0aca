// gemm with bf16 weights (the opt-in fast mode): W packed to bf16 (round to nearest even) as
// [panel][k/2][16][2] (k pairs adjacent, odd k padded with zero), X rounded to bf16 while it is
// packed, products accumulated in fp32. The result is the fp32-accumulated product of the
// bf16-rounded inputs. Driver, blocking and epilogue are gemm.cpp's; this file supplies the kernels:
//   gemm_bf16_ukr_amx_32x32         AMX tiles (ISA amx): four 16×16 fp32 C tiles, two A tiles
//                                   [16 rows][32 k] and two B tiles [16 k pairs][16 cols][2]
//                                   (the packed panels as they are); A packed as bf16 tiles
//   gemm_bf16_ukr_avx512bf16_12x32  vdpbf16ps on k pairs; A packed as bf16 pairs [k/2][12][2]
//   gemm_bf16_ukr_avx512_12x32      widening: a bf16 pair in each 32-bit lane becomes two fp32 vectors
//   gemm_bf16_ukr_avx2_6x16         (shift left 16 for the even k, mask the low half for the odd k),
//   gemm_bf16_ukr_scalar_4x16       then two FMAs with A packed as bf16-rounded fp32 [k][MR]
#ifndef CK_ISA_PASS
#include "amx.h"
#include "cpu_features.h"
#include "gemm_kernel.h"

#define CK_SIMD_SELF "gemm_bf16.cpp"
#include "isa_passes.h"

namespace ck {

static const IsaTable<const GemmKernel*> kGemmBf16 = {
    &pass_scalar::kGemmBf16Kernel, CK_X86_OR_NULL(&pass_avx2::kGemmBf16Kernel),
    CK_X86_OR_NULL(&pass_avx512::kGemmBf16Kernel), CK_NEON_OR_NULL(&pass_neon::kGemmBf16Kernel)};

using Bf16RoundFn = void (*)(const float* x, size_t n, uint16_t* out);
static const IsaTable<Bf16RoundFn> kBf16Round = {pass_scalar::bf16_round_n, CK_X86_OR_NULL(pass_avx2::bf16_round_n),
                                                 CK_X86_OR_NULL(pass_avx512::bf16_round_n),
                                                 CK_NEON_OR_NULL(pass_neon::bf16_round_n)};

void bf16_round(const float* x, size_t n, uint16_t* out) { kBf16Round.pick()(x, n, out); }

const GemmKernel& gemm_bf16_kernel(Isa isa) {
#if defined(CK_AMX)
  if (isa == Isa::Amx && cpu_features().amx) return pass_avx512::kGemmBf16AmxKernel;
#endif
#if defined(CK_X86)
  if ((isa == Isa::Avx512 || isa == Isa::Amx) && cpu_features().avx512 && cpu_features().avx512_bf16) return pass_avx512::kGemmBf16DotKernel;
#endif
  return *kGemmBf16.pick(isa);
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

#include "gemm_epilogue.h"

// out[i] = f32_to_bf16_bits(x[i]) (V::round_bf16 is the same rounding, a vector at a time).
static void bf16_round_n(const float* x, size_t n, uint16_t* out) {
  size_t i = 0;
#if defined(CK_PASS_AVX512)
  for (; i + 16 <= n; i += 16) {
    const __m512i b = _mm512_srli_epi32(_mm512_castps_si512(V::round_bf16(V::load(x + i))), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi32_epi16(b));
  }
#elif defined(CK_PASS_AVX2)
  for (; i + 16 <= n; i += 16) {
    const __m256i lo = _mm256_srli_epi32(_mm256_castps_si256(V::round_bf16(V::load(x + i))), 16);
    const __m256i hi = _mm256_srli_epi32(_mm256_castps_si256(V::round_bf16(V::load(x + i + 8))), 16);
    // packus works within 128-bit lanes: [lo0 hi0 lo1 hi1] → [lo0 lo1 hi0 hi1]
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xD8));
  }
#endif
  for (; i < n; ++i) out[i] = f32_to_bf16_bits(x[i]);
}

#include "gemm_tile.h"

static inline float bf16_bits_to_f32(uint32_t h) {
  const uint32_t b = h << 16;
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// V::W columns of one k pair ([col][2] bf16 at p) widened to fp32: the even k and the odd k.
static inline void bf16_pairs_widen(const uint16_t* p, V::F& even, V::F& odd) {
#if defined(CK_PASS_AVX2)
  const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  even = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  odd = _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
#elif defined(CK_PASS_AVX512)
  const __m512i w = _mm512_loadu_si512(p);
  even = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  odd = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
#else
  float e[V::W], o[V::W];
  for (int i = 0; i < V::W; ++i) {
    e[i] = bf16_bits_to_f32(p[2 * i]);
    o[i] = bf16_bits_to_f32(p[2 * i + 1]);
  }
  even = V::load(e);
  odd = V::load(o);
#endif
}

// A micro-panel for the widening kernel: bf16-rounded fp32 [kc rounded up to even][MR], zero padded.
static void gemm_bf16_pack_a(const float* x, size_t ldx, size_t rows, size_t kc, void* out_) {
  float* out = static_cast<float*>(out_);
  const size_t kpad = (kc + 1) & ~size_t(1);
  for (size_t k = 0; k < kpad; ++k)
    for (int r = 0; r < kGemmMR; ++r)
      out[k * kGemmMR + r] =
          static_cast<size_t>(r) < rows && k < kc ? bf16_bits_to_f32(f32_to_bf16_bits(x[r * ldx + k])) : 0.0f;
}

// RA rows of the A micro-panel (row stride MR): the full tile, or fewer for a last micro-panel.
template <int MR, int RA, int NV>
static void gemm_bf16_ukr_rows(size_t kc, const void* a_, const void* b_, ptrdiff_t b_panel_bytes, float* c, size_t ldc,
                               int mv, int nv, const GemmTileEpilogue& e, const GemmTileFetch& next) {
  constexpr int NR = NV * V::W;
  constexpr int NP = NR / 16;
  static_assert(NR % 16 == 0, "the tile spans whole panels");
  const float* a = static_cast<const float*>(a_);
  const uint16_t* b[NP];
  gemm_tile_panels(b_, b_panel_bytes, nv, b);
  gemm_prefetch_c(c, ldc, mv, NR);
  V::F acc[RA][NV];
#pragma GCC unroll 32
  for (int r = 0; r < RA; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();

  const size_t kp = (kc + 1) / 2;
  TileFetcher fetch(next, kp);
#pragma GCC unroll 2
  for (size_t j = 0; j < kp; ++j) {
    fetch.step();
    V::F be[NV], bo[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bf16_pairs_widen(b[v * V::W / 16] + j * 32 + (v * V::W % 16) * 2, be[v], bo[v]);
#pragma GCC unroll 32
    for (int r = 0; r < RA; ++r) {
      const V::F a0 = V::set1(a[(2 * j) * MR + r]), a1 = V::set1(a[(2 * j + 1) * MR + r]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(a1, bo[v], V::fmadd(a0, be[v], acc[r][v]));
    }
  }
  gemm_store_tile<RA, NV>(acc, c, ldc, mv, nv, e);
}

// As gemm_f32_ukr: a micro-panel of a third, two thirds or MR - 2 of the rows runs with that many.
template <int MR, int NV>
static void gemm_bf16_ukr(size_t kc, const void* a, const void* b, ptrdiff_t b_panel_bytes, float* c, size_t ldc, int mv,
                          int nv, const GemmTileEpilogue& e, const GemmTileFetch& next) {
  gemm_by_rows<MR>(mv, [&](auto ra) { gemm_bf16_ukr_rows<MR, decltype(ra)::value, NV>(kc, a, b, b_panel_bytes, c, ldc, mv, nv, e, next); });
}

static const GemmKernel kGemmBf16Kernel = {kGemmMR,
                                           kGemmNV * V::W,
                                           2,
                                           kGemmKC,
                                           kGemmMR * sizeof(float),
                                           gemm_bf16_pack_a,
                                           gemm_bf16_ukr<kGemmMR, kGemmNV>,
                                           "gemm_bf16_ukr_" CK_GEMM_TILE};
#undef CK_GEMM_TILE

#if defined(CK_PASS_AVX512)
// vdpbf16ps: acc[i] += a[2i]·b[2i] + a[2i+1]·b[2i+1] on bf16 pairs. Only dispatched to when the CPU
// reports AVX512-BF16 (gemm_bf16_kernel). Same 12×32 tile, A as bf16 pairs [k/2][12][2].
constexpr int kBf16DotMR = 12;  // the packer transposes 12 rows (gemm_pack_avx512.h)

#include "gemm_pack_avx512.h"

// 32 k at a time: each row's 32 floats become 16 bf16 pairs (vcvtne2ps2bf16: round to nearest even;
// it reads denormal inputs as zero, like the AMX packer), and the 12 × 16 pairs are transposed as
// 32-bit lanes. Rows past `rows` and k past kc are zero (masked loads).
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma,f16c"))) static void
gemm_bf16_pack_a_pairs(const float* x, size_t ldx, size_t rows, size_t kc, void* out_) {
  float* out = static_cast<float*>(out_);  // one float's bits = one bf16 pair
  const size_t kp = (kc + 1) / 2;
  for (size_t k0 = 0; k0 < kc; k0 += 32) {
    const size_t kt = std::min<size_t>(32, kc - k0);
    const __mmask16 lo = kt >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << kt) - 1);
    const __mmask16 hi = kt >= 32 ? __mmask16(0xFFFF) : kt > 16 ? __mmask16((1u << (kt - 16)) - 1) : __mmask16(0);
    __m512 t[16];
    for (int r = 0; r < 16; ++r) {
      t[r] = _mm512_setzero_ps();
      if (static_cast<size_t>(r) < rows) {
        const float* xr = x + r * ldx + k0;
        t[r] = (__m512)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, xr + 16), _mm512_maskz_loadu_ps(lo, xr));
      }
    }
    const size_t j0 = k0 / 2;
    transpose16_store12_avx512(t, out + j0 * kBf16DotMR, static_cast<int>(std::min<size_t>(16, kp - j0)));
  }
}

#define CK_BF16_DOT_TARGET __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma,f16c")))

// RA rows of the A micro-panel (row stride 12): the whole tile, or fewer for a last micro-panel.
template <int RA>
CK_BF16_DOT_TARGET static void gemm_bf16_dot_rows(size_t kc, const void* a_, const void* b_, ptrdiff_t b_panel_bytes, float* c,
                                                  size_t ldc, int mv, int nv, const GemmTileEpilogue& e,
                                                  const GemmTileFetch& next) {
  constexpr int MR = kBf16DotMR;
  const uint16_t* a = static_cast<const uint16_t*>(a_);
  const uint16_t* bp[2];
  gemm_tile_panels(b_, b_panel_bytes, nv, bp);
  const uint16_t *b0 = bp[0], *b1 = bp[1];
  gemm_prefetch_c(c, ldc, mv, 32);
  V::F acc[RA][2];
#pragma GCC unroll 32
  for (int r = 0; r < RA; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  const size_t kp = (kc + 1) / 2;
  TileFetcher fetch(next, kp);
#pragma GCC unroll 2
  for (size_t j = 0; j < kp; ++j) {
    fetch.step();
    const __m512bh w0 = (__m512bh)_mm512_loadu_si512(b0 + j * 32);
    const __m512bh w1 = (__m512bh)_mm512_loadu_si512(b1 + j * 32);
#pragma GCC unroll 32
    for (int r = 0; r < RA; ++r) {
      int32_t pair;
      std::memcpy(&pair, a + (j * MR + r) * 2, 4);
      const __m512bh ar = (__m512bh)_mm512_set1_epi32(pair);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], ar, w0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], ar, w1);
    }
  }
  gemm_store_tile<RA, 2>(acc, c, ldc, mv, nv, e);
}

// A last micro-panel of at most 4 or 8 rows (52 = 4·12 + 4) runs with that many accumulator rows.
CK_BF16_DOT_TARGET static void gemm_bf16_ukr_avx512bf16_12x32(size_t kc, const void* a, const void* b, ptrdiff_t b_panel_bytes,
                                                              float* c, size_t ldc, int mv, int nv, const GemmTileEpilogue& e,
                                                              const GemmTileFetch& next) {
  gemm_by_rows<kBf16DotMR>(mv, [&](auto ra) { gemm_bf16_dot_rows<decltype(ra)::value>(kc, a, b, b_panel_bytes, c, ldc, mv, nv, e, next); });
}
#undef CK_BF16_DOT_TARGET

static const GemmKernel kGemmBf16DotKernel = {kBf16DotMR,
                                              32,
                                              2,
                                              gemm_blocks::kKcBf16Dot,
                                              kBf16DotMR * sizeof(uint16_t),
                                              gemm_bf16_pack_a_pairs,
                                              gemm_bf16_ukr_avx512bf16_12x32,
                                              "gemm_bf16_ukr_avx512bf16_12x32"};
#if defined(CK_AMX)
// AMX (amx.h): 8 tile registers, configured once per thread:
// tmm0..3 the C tiles (fp32 16×16: rows 0-15 × cols 0-15, 0-15 × 16-31, 16-31 × 0-15, 16-31 × 16-31),
// tmm4..5 the A tiles (rows 0-15 / 16-31, 32 k as bf16), tmm6..7 the B tiles (16 k pairs of the
// tile's two 16-column panels). One k step of 32 is four tdpbf16ps.
constexpr int kAmxMR = 32, kAmxK = 32;
constexpr size_t kAmxTileBytes = 1024;

// A micro-panel as AMX A tiles: [k step][row half][16 rows][32 k] bf16, rounded to nearest even;
// zero past `rows` and past kc (up to the next multiple of 32).
CK_AMX_TARGET static void gemm_bf16_pack_a_amx(const float* x, size_t ldx, size_t rows, size_t kc, void* out_) {
  char* out = static_cast<char*>(out_);
  const size_t steps = (kc + kAmxK - 1) / kAmxK;
  for (size_t s = 0; s < steps; ++s) {
    const size_t k0 = s * kAmxK, kt = std::min<size_t>(kAmxK, kc - k0);
    const __mmask16 lo = kt >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << kt) - 1);
    const __mmask16 hi = kt >= 32 ? __mmask16(0xFFFF) : kt > 16 ? __mmask16((1u << (kt - 16)) - 1) : __mmask16(0);
    for (int r = 0; r < kAmxMR; ++r) {
      __m512i v = _mm512_setzero_si512();
      if (static_cast<size_t>(r) < rows) {
        const float* xr = x + r * ldx + k0;
        v = (__m512i)_mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(hi, xr + 16), _mm512_maskz_loadu_ps(lo, xr));
      }
      _mm512_store_si512(out + (s * 2 + r / 16) * kAmxTileBytes + (r % 16) * 64, v);
    }
  }
}

CK_AMX_TARGET static void gemm_bf16_ukr_amx_32x32(size_t kc, const void* a_, const void* b_, ptrdiff_t b_panel_bytes,
                                                 float* c, size_t ldc, int mv, int nv, const GemmTileEpilogue& e,
                                                 const GemmTileFetch& next) {
  amx_configure_thread();
  gemm_prefetch_c(c, ldc, mv, 32);
  const char* a = static_cast<const char*>(a_);
  const char* bp[2];
  gemm_tile_panels(b_, b_panel_bytes, nv, bp);
  const char *b0 = bp[0], *b1 = bp[1];
  // A whole tile whose epilogue is only "+ bias" (first K block) or "+ Y" (later ones) runs in the
  // tiles: they start from the bias rows (a tile load with row stride 0) or from Y, and are stored
  // straight into Y. That skips the round trip through `ct` below, which is slow: a vector load
  // cannot take its data from a pending tile store, so it waits for the store to complete.
  const bool direct = mv == kAmxMR && nv == 32 && e.alpha == 1.0f && !(e.last && e.act != Epilogue::None) &&
                      !(e.first && e.residual);
  const size_t ldc_bytes = ldc * sizeof(float);
  if (direct && !e.first) {
    _tile_loadd(0, c, ldc_bytes);
    _tile_loadd(1, c + 16, ldc_bytes);
    _tile_loadd(2, c + 16 * ldc, ldc_bytes);
    _tile_loadd(3, c + 16 * ldc + 16, ldc_bytes);
  } else if (direct && e.bias) {
    _tile_loadd(0, e.bias, 0);
    _tile_loadd(1, e.bias + 16, 0);
    _tile_loadd(2, e.bias, 0);
    _tile_loadd(3, e.bias + 16, 0);
  } else {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  }
  const size_t steps = kc / kAmxK, tail = kc % kAmxK;
  TileFetcher fetch(next, steps);
  for (size_t s = 0; s < steps; ++s) {
    fetch.step();
    _tile_loadd(4, a + (2 * s) * kAmxTileBytes, 64);
    _tile_loadd(5, a + (2 * s + 1) * kAmxTileBytes, 64);
    _tile_loadd(6, b0 + s * kAmxTileBytes, 64);
    _tile_loadd(7, b1 + s * kAmxTileBytes, 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  if (tail) {
    // The panels end at the last k pair: copy the rows that exist, so no tile row is read past them.
    alignas(64) char bt[2][kAmxTileBytes] = {};
    const size_t bytes = (tail + 1) / 2 * 64;
    std::memcpy(bt[0], b0 + steps * kAmxTileBytes, bytes);
    std::memcpy(bt[1], b1 + steps * kAmxTileBytes, bytes);
    asm volatile("" ::: "memory");  // the tile loads below are asm the compiler cannot see reading bt
    _tile_loadd(4, a + (2 * steps) * kAmxTileBytes, 64);
    _tile_loadd(5, a + (2 * steps + 1) * kAmxTileBytes, 64);
    _tile_loadd(6, bt[0], 64);
    _tile_loadd(7, bt[1], 64);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  if (direct) {
    _tile_stored(0, c, ldc_bytes);
    _tile_stored(1, c + 16, ldc_bytes);
    _tile_stored(2, c + 16 * ldc, ldc_bytes);
    _tile_stored(3, c + 16 * ldc + 16, ldc_bytes);
    return;
  }
  alignas(64) float ct[kAmxMR][32];
  _tile_stored(0, &ct[0][0], 128);
  _tile_stored(1, &ct[0][16], 128);
  _tile_stored(2, &ct[16][0], 128);
  _tile_stored(3, &ct[16][16], 128);
  asm volatile("" ::: "memory");  // nor writing ct
  V::F acc[kAmxMR][2];
#pragma GCC unroll 32
  for (int r = 0; r < kAmxMR; ++r) {
    acc[r][0] = _mm512_load_ps(&ct[r][0]);
    acc[r][1] = _mm512_load_ps(&ct[r][16]);
  }
  gemm_store_tile<kAmxMR, 2>(acc, c, ldc, mv, nv, e);
}

static const GemmKernel kGemmBf16AmxKernel = {kAmxMR,
                                              32,
                                              kAmxK,
                                              gemm_blocks::kKcAmx,
                                              kAmxMR * sizeof(uint16_t),
                                              gemm_bf16_pack_a_amx,
                                              gemm_bf16_ukr_amx_32x32,
                                              "gemm_bf16_ukr_amx_32x32"};
#endif
#endif

#endif
