// gemm: Y[m,n] = alpha · X[m,k] · W[n,k]ᵀ (+ bias) then GELU / QuickGELU, or + R. fp32 in, fp32
// accumulation, BLIS-style, in four files:
//   gemm_pack.cpp     W packed once into 16-column panels [panel][k][16] (bf16: k pairs), the
//                     same layout for every ISA, so a weight packed under one ISA runs under any other;
//   gemm_plan.cpp     the tile height, the K and M blocks, how the threads share them (block
//                     sizes: gemm_blocks.h);
//   gemm_driver.cpp   the loop nest: A blocks packed into micro-panels, the micro-kernel over
//                     (K block, N tile, micro-panel), the threads' work queues;
//   this file         the entry points and the fp32 micro-kernel of each ISA pass (bf16 weights:
//                     gemm_bf16.cpp).
// Only the MR×NR micro-kernel is ISA-specific (written once against V, tile chosen per pass):
//   gemm_f32_ukr_avx512_12x32  24 zmm accumulators, 2 B loads + 12 broadcasts per k
//   gemm_f32_ukr_avx512_13x32  26, for the row counts 13 cuts into fuller micro-panels (taller)
//   gemm_f32_ukr_avx2_6x16     12 ymm accumulators, 2 B loads + 6 broadcasts per k
//   gemm_f32_ukr_scalar_4x16   reference speed
// A micro-panel with fewer rows runs a copy of the kernel with a third, two thirds or (MR >= 12)
// MR - 2 accumulator rows (52 rows = 4·12 + 4: the fifth call costs a third of a tile), and a
// single M block of few rows may be cut into micro-panels of MR - 2 rows (gemm_plan.cpp).
// Scratch: the driver packs A in ScratchSlot::kGemmPackedA (the calling thread's, or each thread's
// when the threads split the rows), X's activated rows in kGemmInputAct; gemm_unpacked packs B in
// kGemmPackedB.
#ifndef CK_ISA_PASS
#include "gemm.h"

#include <algorithm>

#include "cpu_features.h"
#include "gemm_kernel.h"
#include "gemm_plan.h"
#include "thread_pool.h"

#define CK_SIMD_SELF "gemm.cpp"
#include "isa_passes.h"

namespace ck {

namespace {

const IsaTable<const GemmKernel*> kGemmF32 = {&pass_scalar::kGemmF32Kernel, CK_X86_OR_NULL(&pass_avx2::kGemmF32Kernel),
                                              CK_X86_OR_NULL(&pass_avx512::kGemmF32Kernel),
                                              CK_NEON_OR_NULL(&pass_neon::kGemmF32Kernel)};

}  // namespace

ck_status gemm(const GemmArgs& a) {
  if (!a.w) return CK_ERR_ARG;
  const PackedWeight& pw = *a.w;
  const bool bf16 = pw.type == WeightType::BF16;
  const size_t panels = (pw.n + kPanelCols - 1) / kPanelCols;
  const size_t elem = bf16 ? 2 : 4;
  const size_t kpad = bf16 ? round_up(pw.k, 2) : pw.k;
  const size_t row0 = a.w_row0, rows = a.w_rows == GemmArgs::kAllRows ? pw.n - std::min(row0, pw.n) : a.w_rows;
  if (row0 % kPanelCols || row0 > pw.n || rows > pw.n - row0 || (rows % kPanelCols && row0 + rows != pw.n)) return CK_ERR_ARG;
  GemmWeightView view{rows, pw.k, pw.data, kpad * kPanelCols * elem, kPanelCols * elem};
  if (panels * view.panel_bytes > pw.bytes) return CK_ERR_ARG;
  if (!pw.panels.empty()) {
    if (pw.panels.size() != panels) return CK_ERR_ARG;
    view.panel_ptrs = pw.panels.data() + row0 / kPanelCols;
  } else {
    view.data = static_cast<const char*>(pw.data) + row0 / kPanelCols * view.panel_bytes;
  }
  const GemmKernel& kern = bf16 ? gemm_bf16_kernel(current_isa()) : *kGemmF32.pick();
  return gemm_driver(kern, view, a);
}

ck_status gemm_unpacked(const float* a, size_t lda, const float* b, size_t ldb, bool b_is_nk, float* c, size_t ldc,
                        size_t m, size_t n, size_t k, float alpha) {
  if (m == 0 || n == 0) return CK_OK;
  if (!a || !c || (!b && k) || ldb < (b_is_nk ? k : n)) return CK_ERR_ARG;
  const size_t panels = (n + kPanelCols - 1) / kPanelCols;
  size_t bytes;
  if (!mul_ok(panels * kPanelCols * sizeof(float), k, &bytes)) return CK_ERR_NOMEM;
  float* packed = static_cast<float*>(pool().scratch(ThreadPool::current_thread(), std::max<size_t>(64, bytes), ScratchSlot::kGemmPackedB));
  if (!packed) return CK_ERR_NOMEM;
  if (k) pack_panels_f32(b, ldb, b_is_nk, n, k, packed);
  GemmWeightView view{n, k, packed, k * kPanelCols * sizeof(float), kPanelCols * sizeof(float)};
  GemmArgs args;
  args.x = a;
  args.ldx = lda;
  args.y = c;
  args.ldy = ldc;
  args.m = m;
  args.alpha = alpha;
  return gemm_driver(*kGemmF32.pick(), view, args);
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

#include "gemm_epilogue.h"

#include "gemm_tile.h"

// The fp32 A micro-panel holds the MR rows of X one after another, at a fixed stride of a whole
// K block plus one cache line (kGemmAS floats): the micro-kernel broadcasts a[r·kGemmAS + k], one
// base register and an immediate per row, and the rows' lines fall in different L1 sets (AVX-512:
// 3136 bytes apart). Packing is a copy of each row instead of a 16×16 transpose per 16 k; the
// micro-kernel runs as fast on either layout.
constexpr size_t kGemmAS = kGemmKC + 64 / sizeof(float);

// A micro-panel of an MR-row tile: out[r·kGemmAS + k] = x[r, k] for k < kc (kc <= kGemmKC), rows past `rows` zero.
template <int MR>
static void gemm_f32_pack_a(const float* x, size_t ldx, size_t rows, size_t kc, void* out_) {
  float* out = static_cast<float*>(out_);
  for (size_t r = 0; r < static_cast<size_t>(MR); ++r) {
    if (r < rows) std::memcpy(out + r * kGemmAS, x + r * ldx, kc * sizeof(float));
    else std::memset(out + r * kGemmAS, 0, kc * sizeof(float));
  }
}

// RA rows of the A micro-panel (rows kGemmAS apart): the full tile, or fewer for a last micro-panel
// that holds only a few rows (gemm_f32_ukr below picks).
template <int MR, int RA, int NV>
static void gemm_f32_ukr_rows(size_t kc, const void* a_, const void* b_, ptrdiff_t b_panel_bytes, float* c, size_t ldc,
                              int mv, int nv, const GemmTileEpilogue& e, const GemmTileFetch& next) {
  constexpr int NR = NV * V::W;
  constexpr int NP = NR / 16;  // 16-column panels per tile
  static_assert(NR % 16 == 0, "the tile spans whole panels");
  const float* a = static_cast<const float*>(a_);
  const float* b[NP];
  gemm_tile_panels(b_, b_panel_bytes, nv, b);
  gemm_prefetch_c(c, ldc, mv, NR);
  V::F acc[RA][NV];
#pragma GCC unroll 32
  for (int r = 0; r < RA; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();

  TileFetcher fetch(next, kc);
#pragma GCC unroll 4
  for (size_t k = 0; k < kc; ++k) {
    fetch.step();
    V::F bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b[v * V::W / 16] + k * 16 + v * V::W % 16);
#pragma GCC unroll 32
    for (int r = 0; r < RA; ++r) {
      const V::F ar = V::set1(a[r * kGemmAS + k]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(ar, bv[v], acc[r][v]);
    }
  }
  gemm_store_tile_outlined<RA, NV>(acc, c, ldc, mv, nv, e);
}

// A micro-panel's rows past mv are zeros: a micro-panel of a third, two thirds or MR - 2 of the tile's
// rows runs a kernel with that many accumulator rows, not the whole tile (gemm_by_rows).
template <int MR, int NV>
static void gemm_f32_ukr(size_t kc, const void* a, const void* b, ptrdiff_t b_panel_bytes, float* c, size_t ldc, int mv,
                         int nv, const GemmTileEpilogue& e, const GemmTileFetch& next) {
  gemm_by_rows<MR>(mv, [&](auto ra) { gemm_f32_ukr_rows<MR, decltype(ra)::value, NV>(kc, a, b, b_panel_bytes, c, ldc, mv, nv, e, next); });
}

template <int MR>
constexpr GemmKernel gemm_f32_kernel(const char* name, const GemmKernel* taller) {
  return {MR, kGemmNV * V::W, 1, kGemmKC, MR * sizeof(float), gemm_f32_pack_a<MR>, gemm_f32_ukr<MR, kGemmNV>, name,
          MR * kGemmAS * sizeof(float), taller};
}
#ifdef CK_GEMM_TILE_TALL
static const GemmKernel kGemmF32KernelTall = gemm_f32_kernel<kGemmMRTall>("gemm_f32_ukr_" CK_GEMM_TILE_TALL, nullptr);
static const GemmKernel kGemmF32Kernel = gemm_f32_kernel<kGemmMR>("gemm_f32_ukr_" CK_GEMM_TILE, &kGemmF32KernelTall);
#undef CK_GEMM_TILE_TALL
#else
static const GemmKernel kGemmF32Kernel = gemm_f32_kernel<kGemmMR>("gemm_f32_ukr_" CK_GEMM_TILE, nullptr);
#endif
#undef CK_GEMM_TILE

#endif
