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

// The same panels written into caller memory: dst (4-byte aligned) of exactly
// packed_weight_bytes(n, k, type) bytes, not overlapping w. For weights streamed to a file, packed
// through one reused buffer. CK_ERR_ARG otherwise.
ck_status pack_weight_into(const float* w, size_t n, size_t k, size_t ldw, WeightType type, void* dst, size_t bytes);

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

// The version of the packed layout: bump it whenever packing changes a single byte of what it
// writes for a given n, k and type (panel order or width, padding, the bf16 rounding). Packed bytes
// kept in files are keyed by packed_layout_id(), which includes it, so that bytes packed by an older
// layout are never read as the new one.
constexpr int kPackedLayoutVersion = 1;

// The bytes of W [n, k] of `type` packed with its panels one after another: what pack_weight
// allocates, and what a weight packed in place or in parts holds in all. SIZE_MAX when that does not
// fit in a size_t.
size_t packed_weight_bytes(size_t n, size_t k, WeightType type);

// Copies w's panels one after another into dst (bytes == packed_weight_bytes(w.n, w.k, w.type), dst
// not overlapping them): the bytes pack_weight would have written for w's n, k and type, whether w
// was packed so, in place or in parts. Multi-threaded on the pool. CK_ERR_ARG otherwise.
ck_status packed_weight_copy(const PackedWeight& w, void* dst, size_t bytes);

// Whether [p, p + bytes) shares a byte with w's panels.
bool packed_weight_overlaps(const PackedWeight& w, const void* p, size_t bytes);

// A packed weight over panels already in memory (packed_weight_copy's bytes, e.g. mapped from a
// file): nothing is copied and `out` does not own them; the caller keeps them alive and unchanged
// while out is used. data 64-byte aligned (so every panel starts on a cache line, as packed ones do;
// any address when bytes is 0) and bytes == packed_weight_bytes(n, k, type), else CK_ERR_ARG.
ck_status pack_weight_adopt(void* data, size_t bytes, size_t n, size_t k, WeightType type, PackedWeight* out);

// A short name for everything that decides the packed bytes on this machine (the layout version,
// the panel width, the fp32 and bf16 panel layouts, the byte order): equal ids, equal bytes. The
// bytes do not depend on the ISA active when packing (every kernel reads the same panels), so the id
// does not name one.
const char* packed_layout_id();

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
