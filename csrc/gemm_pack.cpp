// Weight packing: W [n, k] into the 16-column panels every micro-kernel reads (gemm_kernel.h),
// fp32 or rounded to bf16, into new memory or over W's own storage.
#include <cstdlib>
#include <cstring>

#include "gemm_kernel.h"
#include "gemm_plan.h"
#include "thread_pool.h"

namespace ck {

namespace {

void* aligned_bytes(size_t bytes) { return std::aligned_alloc(64, round_up(bytes ? bytes : 1, 64)); }

// bf16 panels [panel][k/2][16][2], zero past n and at the odd-k pad. In blocks of 16 k: each
// column's 16 values are rounded with vectors (bf16_round), then the block's 8 k pairs — one 32-bit
// word per column and pair — are transposed into place (a scalar rounding per element would be a
// large share of loading a bf16 model).
void pack_panels_bf16(const float* w, size_t ldw, size_t n, size_t k, uint16_t* out) {
  constexpr size_t kBlock = 16;
  const size_t panels = (n + kPanelCols - 1) / kPanelCols, kp = (k + 1) / 2;
  pool().parallel_for(panels, [&](size_t p, int) {
    uint16_t* dst = out + p * kp * kPanelCols * 2;
    const size_t c0 = p * kPanelCols, cols = std::min(kPanelCols, n - c0);
    alignas(64) uint16_t block[kPanelCols][kBlock];
    for (size_t k0 = 0; k0 < k; k0 += kBlock) {
      const size_t kb = std::min(kBlock, k - k0);
      std::memset(block, 0, sizeof(block));
      for (size_t c = 0; c < cols; ++c) bf16_round(w + (c0 + c) * ldw + k0, kb, block[c]);
      uint32_t* pairs = reinterpret_cast<uint32_t*>(dst) + (k0 / 2) * kPanelCols;
      for (size_t q = 0; q < (kb + 1) / 2; ++q)
        for (size_t c = 0; c < kPanelCols; ++c) std::memcpy(pairs + q * kPanelCols + c, &block[c][2 * q], 4);
    }
  });
}

}  // namespace

void pack_panels_f32(const float* b, size_t ldb, bool b_is_nk, size_t n, size_t k, float* out) {
  const size_t panels = (n + kPanelCols - 1) / kPanelCols;
  pool().parallel_for(panels, [&](size_t p, int) {
    float* dst = out + p * k * kPanelCols;
    const size_t c0 = p * kPanelCols, cols = std::min(kPanelCols, n - c0);
    if (cols < kPanelCols) std::memset(dst, 0, k * kPanelCols * sizeof(float));
    if (b_is_nk) {
      // 16×16 blocks, so the block of the panel being written stays in L1 while its 16 rows are read.
      for (size_t k0 = 0; k0 < k; k0 += kPanelCols) {
        const size_t k1 = std::min(k, k0 + kPanelCols);
        for (size_t c = 0; c < cols; ++c) {
          const float* src = b + (c0 + c) * ldb;
          for (size_t kk = k0; kk < k1; ++kk) dst[kk * kPanelCols + c] = src[kk];
        }
      }
    } else {
      for (size_t kk = 0; kk < k; ++kk) std::memcpy(dst + kk * kPanelCols, b + kk * ldb + c0, cols * sizeof(float));
    }
  });
}

PackedWeight::~PackedWeight() {
  if (owned) std::free(data);
}

ck_status pack_weight_parts_in_place(float* const* parts, const size_t* ns, size_t count, size_t k, PackedWeight* out) {
  if (!out || (count && (!parts || !ns))) return CK_ERR_ARG;
  size_t n = 0, total = 0;
  for (size_t i = 0; i < count; ++i) {
    if ((!parts[i] && ns[i] && k) || ns[i] % kPanelCols != 0) return CK_ERR_ARG;
    n += ns[i];
  }
  std::vector<const char*> panel_ptrs;
  for (size_t i = 0; i < count; ++i) {
    size_t bytes;
    if (!mul_ok(ns[i], k, &bytes) || !mul_ok(bytes, sizeof(float), &bytes)) return CK_ERR_NOMEM;
    if (bytes) {
      // Panels into scratch (reused from call to call, so its pages are touched once), then back over W.
      float* panels = static_cast<float*>(pool().scratch(ThreadPool::current_thread(), bytes, ScratchSlot::kGemmPackedB));
      if (!panels) return CK_ERR_NOMEM;
      pack_panels_f32(parts[i], k, true, ns[i], k, panels);
      std::memcpy(parts[i], panels, bytes);
    }
    for (size_t p = 0; p < ns[i] / kPanelCols; ++p)
      panel_ptrs.push_back(reinterpret_cast<const char*>(parts[i]) + p * k * kPanelCols * sizeof(float));
    total += bytes;
  }
  if (out->owned) std::free(out->data);
  out->n = n;
  out->k = k;
  out->type = WeightType::F32;
  out->data = count ? parts[0] : nullptr;
  out->bytes = total;
  out->owned = false;
  // One part is contiguous: its panels need no table.
  if (count > 1) out->panels = std::move(panel_ptrs);
  else out->panels.clear();
  return CK_OK;
}

ck_status pack_weight_in_place(float* w, size_t n, size_t k, PackedWeight* out) {
  return pack_weight_parts_in_place(&w, &n, 1, k, out);
}

ck_status pack_weight(const float* w, size_t n, size_t k, size_t ldw, WeightType type, PackedWeight* out) {
  if (!out || (!w && n && k) || ldw < k) return CK_ERR_ARG;
  const size_t panels = (n + kPanelCols - 1) / kPanelCols;
  const size_t elem = type == WeightType::BF16 ? 2 : 4;
  const size_t kpad = type == WeightType::BF16 ? round_up(k, 2) : k;
  size_t bytes;
  if (!mul_ok(panels * kPanelCols, kpad, &bytes) || !mul_ok(bytes, elem, &bytes)) return CK_ERR_NOMEM;
  void* data = aligned_bytes(bytes);
  if (!data) return CK_ERR_NOMEM;
  if (type == WeightType::BF16) pack_panels_bf16(w, ldw, n, k, static_cast<uint16_t*>(data));
  else pack_panels_f32(w, ldw, true, n, k, static_cast<float*>(data));
  if (out->owned) std::free(out->data);
  out->n = n;
  out->k = k;
  out->type = type;
  out->data = data;
  out->bytes = bytes;
  out->owned = true;
  out->panels.clear();
  return CK_OK;
}

}  // namespace ck
