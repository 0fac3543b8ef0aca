// Internal to gemm*.cpp: what an ISA pass hands the portable GEMM driver (BLIS split). The driver
// (gemm_driver.cpp, planned by gemm_plan.cpp) does the cache blocking, the packing schedule and the
// threading; a pass supplies the MR×NR register tile: a routine that packs up to MR rows of X for
// one K block, and the micro-kernel.
#pragma once
#include <cstddef>
#include <cstring>

#include "gemm.h"
#include "gemm_blocks.h"

namespace ck {

// Packed weights are panels of kPanelCols columns whatever the ISA (gemm.h): [panel][k][16] fp32,
// or [panel][k/2][16][2] bf16 (k pairs adjacent, odd k padded with zero), each zero-padded past n.

// The accumulator rows an MR-row micro-kernel runs for a micro-panel of mv rows (mv <= MR): a third
// or two thirds of MR, or MR - 2 when MR >= 12, whichever first holds mv, else MR. The kernels are
// instantiated for those row counts (gemm_by_rows); the driver's cost model counts with them.
constexpr int gemm_rows_for(int mv, int MR) {
  const int r1 = MR / 3 > 0 ? MR / 3 : 1, r2 = 2 * MR / 3 > r1 ? 2 * MR / 3 : r1, r3 = MR >= 12 ? MR - 2 : MR;
  return mv <= r1 ? r1 : mv <= r2 ? r2 : mv <= r3 ? r3 : MR;
}

// What the micro-kernel does when it stores its tile. The tile's partial sums over K blocks live in Y:
//   first K block:  Y  = alpha·acc + bias + R      (R read before Y is written, so R may alias Y)
//   later blocks:   Y += alpha·acc
//   last K block:   Y  = act(Y) for GELU / QuickGELU
struct GemmTileEpilogue {
  const float* bias;      // at the tile's first column, or null
  const float* residual;  // at the tile's first element, or null
  size_t ldr;
  float alpha;
  Epilogue act;
  bool first, last;
};

// The share of the next B tile (the one the driver runs after this call's) that a micro-kernel call
// fetches into L1 while it runs: `lines` cache lines from each of the tile's panels, starting at
// panel[0] and, for a two-panel tile, panel[1]. The driver gives each call on a tile an equal slice,
// so the next tile arrives over the whole run of this one and its first call does not wait on memory
// (what matters when the weights come from memory, as at batch 1).
struct GemmTileFetch {
  const char* panel[2] = {nullptr, nullptr};
  size_t lines = 0;

  // Slice i of `parts` equal slices (a whole tile's GemmTileFetch, cut for one call).
  GemmTileFetch slice(size_t i, size_t parts) const {
    GemmTileFetch f;
    const size_t l0 = lines * i / parts, l1 = lines * (i + 1) / parts;
    for (int q = 0; q < 2; ++q) f.panel[q] = panel[q] ? panel[q] + l0 * 64 : nullptr;
    f.lines = l1 - l0;
    return f;
  }
};

// Spreads a call's fetches evenly over its k steps: step() once per step.
class TileFetcher {
 public:
  TileFetcher(const GemmTileFetch& f, size_t steps)
      : p0_(f.panel[0]), p1_(f.panel[1]), lines_(f.panel[0] ? f.lines : 0), steps_(steps ? steps : 1) {}
  void step() {
    for (due_ += lines_; due_ >= steps_; due_ -= steps_) {
      __builtin_prefetch(p0_, 0, 3);
      p0_ += 64;
      if (p1_) {
        __builtin_prefetch(p1_, 0, 3);
        p1_ += 64;
      }
    }
  }

 private:
  const char* p0_;
  const char* p1_;
  size_t lines_, steps_, due_ = 0;
};

// A micro-kernel's B panels: panel i of its tile at b + i·b_panel_bytes, or the first panel again
// for one past the N edge (nv <= 16·i: its columns are never stored).
template <typename T, int NP>
inline void gemm_tile_panels(const void* b, ptrdiff_t b_panel_bytes, int nv, const T* (&out)[NP]) {
  for (int i = 0; i < NP; ++i)
    out[i] = static_cast<const T*>(static_cast<const void*>(static_cast<const char*>(b) + (nv > 16 * i ? i * b_panel_bytes : 0)));
}

// The epilogue reads the C tile (partial sums, residual): a micro-kernel starts fetching its mv rows
// of nr floats as it begins.
inline void gemm_prefetch_c(const float* c, size_t ldc, int mv, int nr) {
  for (int r = 0; r < mv; ++r) {
    __builtin_prefetch(c + r * ldc);
    __builtin_prefetch(c + r * ldc + nr - 1);
  }
}

// Packs rows [0, rows) (rows <= mr) × [0, kc) of x (already offset to the block) into one A
// micro-panel, zero-filling rows past `rows` and the k padding. Layout is the kernel's own
// (fp32: rows at a fixed stride; bf16: [k][MR] or k pairs).
using GemmPackA = void (*)(const float* x, size_t ldx, size_t rows, size_t kc, void* out);

// C[0:mv, 0:nv] (tile at c, row stride ldc) ⊕= A-panel · B-tile over kc. b points at the tile's
// first panel at the K block's first k; the next panel is b + b_panel_bytes (read only if nv > 16;
// negative when the weight's parts lie in that order in memory). Meanwhile it fetches `next`.
using GemmUkr = void (*)(size_t kc, const void* a, const void* b, ptrdiff_t b_panel_bytes, float* c, size_t ldc, int mv,
                         int nv, const GemmTileEpilogue& e, const GemmTileFetch& next);

struct GemmKernel {
  int mr, nr;             // register tile; nr is a multiple of kPanelCols
  int k_align;            // K blocks start at multiples of this (2 for bf16 pairs)
  size_t kc;              // the K block to aim for (K is split into equal blocks of at most this)
  size_t a_bytes_per_k;   // bytes of one k row of an A micro-panel (mr · element size)
  GemmPackA pack_a;
  GemmUkr ukr;
  const char* name;       // e.g. gemm_f32_ukr_avx2_6x16
  size_t a_panel_fixed = 0;  // when set, every A micro-panel takes this many bytes whatever the K
                             // block (rows at a fixed stride); else kc · a_bytes_per_k
  const GemmKernel* taller = nullptr;  // the same kernel with a taller tile, for the row counts it fits better
};

// out[i] = f32_to_bf16_bits(x[i]), with the current ISA's vectors (gemm_bf16.cpp).
void bf16_round(const float* x, size_t n, uint16_t* out);

// Per pass, the kernel for bf16 weights (gemm_bf16.cpp); by ISA.
const GemmKernel& gemm_bf16_kernel(Isa isa);

// The driver over an already packed B (a PackedWeight or gemm_unpacked's scratch panels).
struct GemmWeightView {
  size_t n, k;
  const void* data;
  size_t panel_bytes;     // bytes between consecutive 16-column panels
  size_t k_row_bytes;     // bytes of one k step inside a panel (16 · element size)
  const char* const* panel_ptrs = nullptr;  // each panel's start when they are not contiguous

  const char* panel(size_t p) const {
    return panel_ptrs ? panel_ptrs[p] : static_cast<const char*>(data) + p * panel_bytes;
  }
};
ck_status gemm_driver(const GemmKernel& kern, const GemmWeightView& w, const GemmArgs& a);

// Copies W [n,k] (b_is_nk) or B [k,n] into fp32 panels [panel][k][16], zero past n (gemm_pack.cpp).
void pack_panels_f32(const float* b, size_t ldb, bool b_is_nk, size_t n, size_t k, float* out);

// Rounds to the nearest bfloat16 (ties to even; NaN stays a quiet NaN) and returns its bits.
inline uint16_t f32_to_bf16_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFFu)) return static_cast<uint16_t>((b | 0x00400000u) >> 16);
  b += 0x7FFFu + ((b >> 16) & 1u);
  return static_cast<uint16_t>(b >> 16);
}

}  // namespace ck
