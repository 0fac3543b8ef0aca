// GEMM with a fused epilogue: Y[m,n] = X[m,k] · W[n,k]ᵀ (+ bias[n]) then optionally GELU (erf),
// QuickGELU or + R[m,n]; X may be read through GELU / QuickGELU. W is packed once (at model load)
// into panels for the micro-kernel.
#pragma once
#include <vector>

#include "common.h"

namespace ck {

enum class Epilogue : int { None = 0, Gelu = 1, QuickGelu = 2, Residual = 3 };
// What X may be read through (GemmArgs::x_act): an activation only, never a residual.
enum class Activation : int { None = 0, Gelu = 1, QuickGelu = 2 };
enum class WeightType : int { F32 = 0, BF16 = 1 };

// W packed for the micro-kernels. Owns its memory (64-byte aligned). Layout is private to gemm*.cpp.
struct PackedWeight {
  size_t n = 0, k = 0;          // logical shape of W: [n, k]
  WeightType type = WeightType::F32;
  void* data = nullptr;         // packed panels
  size_t bytes = 0;
  bool owned = true;            // false: data lies in the caller's memory (pack_weight_in_place)
  std::vector<const char*> panels;  // each 16-column panel's start, when the parts lie apart
  ~PackedWeight();
};

// Packs W [n, k] (row-major, row stride ldw >= k) — fp32 or rounded to bf16. Returns CK_ERR_NOMEM
// if the panels cannot be allocated.
ck_status pack_weight(const float* w, size_t n, size_t k, size_t ldw, WeightType type, PackedWeight* out);

// Packs fp32 W [n, k] (row-major, n a multiple of 16) over its own storage: the panels take exactly
// W's bytes, so no new memory is touched (a fresh allocation costs a page fault per 4 KiB on first
// use). `out` then points into w, which the caller keeps alive and no longer reads as W.
// CK_ERR_ARG when n is not a multiple of 16.
ck_status pack_weight_in_place(float* w, size_t n, size_t k, PackedWeight* out);

// The same for a weight whose rows come in `count` parts (e.g. q, k and v, stacked along n), each
// part [ns[i], k] packed over its own storage wherever it lies; the GEMM finds each panel by pointer.
ck_status pack_weight_parts_in_place(float* const* parts, const size_t* ns, size_t count, size_t k, PackedWeight* out);

// The columns of a packed weight's panel (output features), whatever the ISA. Row ranges of a packed
// weight (GemmArgs::w_row0) and weights packed in place start at multiples of it; the addon
// exports it (gemmPanelWidth) so that TypeScript never writes the number itself.
constexpr size_t kPanelCols = 16;

// Set by name (GemmArgs g; g.x = ...;): every field has its default.
struct GemmArgs {
  const float* x = nullptr;            // [m, k], row stride ldx
  size_t ldx = 0;
  const PackedWeight* w = nullptr;     // [n, k] packed
  const float* bias = nullptr;         // [n] or null
  Epilogue epilogue = Epilogue::None;
  const float* residual = nullptr;     // [m, n], row stride ldr (Epilogue::Residual only); may alias y
  size_t ldr = 0;
  float* y = nullptr;                  // [m, n], row stride ldy
  size_t ldy = 0;
  size_t m = 0;
  float alpha = 1.0f;                  // Y = alpha·X·Wᵀ (+ bias ...); 1 for layers
  // X is read through it, Y = act(X)·Wᵀ ... (the activation of the GEMM before, applied while X is
  // packed, where it runs over whole rows instead of at the end of each tile).
  Activation x_act = Activation::None;
  // Only rows [w_row0, w_row0 + w_rows) of W (output features; w_row0 a multiple of 16, and so is
  // w_rows unless the range ends at n): e.g. k and v of a fused q | k | v weight. Y holds w_rows columns.
  size_t w_row0 = 0;
  size_t w_rows = kAllRows;
  static constexpr size_t kAllRows = ~size_t(0);
};

// Multi-threaded on the pool. bf16 weights round X to bf16 too and accumulate in fp32.
ck_status gemm(const GemmArgs& a);

// Convenience for ops that multiply two activations (logits, attention-free uses): packs B on the fly.
// C[m,n] = alpha · A[m,k] · op(B), op(B) = Bᵀ when b_is_nk (B stored [n,k]) else B (stored [k,n]).
ck_status gemm_unpacked(const float* a, size_t lda, const float* b, size_t ldb, bool b_is_nk, float* c, size_t ldc,
                        size_t m, size_t n, size_t k, float alpha);

}  // namespace ck
