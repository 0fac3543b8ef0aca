// Weight packing: W [n, k] into the 16-column panels every micro-kernel reads (gemm_kernel.h),
// fp32 or rounded to bf16, into new memory or over W's own storage; and the packed bytes as one
// block (copied out of a weight, or adopted where they lie) for weights kept in files.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

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

// Points `out` at new panels (freeing the ones it owned): every way of making a packed weight ends here.
static void set_packed(PackedWeight* out, void* data, size_t bytes, size_t n, size_t k, WeightType type, bool owned,
                       std::vector<const char*> panels = {}) {
  if (out->owned) std::free(out->data);
  out->n = n;
  out->k = k;
  out->type = type;
  out->data = data;
  out->bytes = bytes;
  out->owned = owned;
  out->panels = std::move(panels);
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
  // One part is contiguous: its panels need no table.
  if (count < 2) panel_ptrs.clear();
  set_packed(out, count ? parts[0] : nullptr, total, n, k, WeightType::F32, false, std::move(panel_ptrs));
  return CK_OK;
}

ck_status pack_weight_in_place(float* w, size_t n, size_t k, PackedWeight* out) {
  return pack_weight_parts_in_place(&w, &n, 1, k, out);
}

ck_status pack_weight_into(const float* w, size_t n, size_t k, size_t ldw, WeightType type, void* dst, size_t bytes) {
  if ((!w && n && k) || ldw < k || bytes != packed_weight_bytes(n, k, type) || (!dst && bytes) ||
      reinterpret_cast<uintptr_t>(dst) % 4)
    return CK_ERR_ARG;
  if (!bytes) return CK_OK;
  if (type == WeightType::BF16) pack_panels_bf16(w, ldw, n, k, static_cast<uint16_t*>(dst));
  else pack_panels_f32(w, ldw, true, n, k, static_cast<float*>(dst));
  return CK_OK;
}

ck_status pack_weight(const float* w, size_t n, size_t k, size_t ldw, WeightType type, PackedWeight* out) {
  if (!out || (!w && n && k) || ldw < k) return CK_ERR_ARG;
  const size_t bytes = packed_weight_bytes(n, k, type);
  if (bytes == SIZE_MAX) return CK_ERR_NOMEM;
  void* data = aligned_bytes(bytes);
  if (!data) return CK_ERR_NOMEM;
  const ck_status st = pack_weight_into(w, n, k, ldw, type, data, bytes);
  if (st != CK_OK) {
    std::free(data);
    return st;
  }
  set_packed(out, data, bytes, n, k, type, true);
  return CK_OK;
}

size_t packed_weight_bytes(size_t n, size_t k, WeightType type) {
  const size_t panels = n / kPanelCols + (n % kPanelCols != 0);
  const size_t elem = type == WeightType::BF16 ? 2 : 4;
  const size_t kpad = type == WeightType::BF16 ? k + (k & 1) : k;
  size_t bytes;
  if (kpad < k || !mul_ok(panels, kPanelCols * elem, &bytes) || !mul_ok(bytes, kpad, &bytes)) return SIZE_MAX;
  return bytes;
}

namespace {

// The bytes of one panel of w, and where panel p starts.
size_t panel_bytes(const PackedWeight& w) { return packed_weight_bytes(kPanelCols, w.k, w.type); }
const char* panel_at(const PackedWeight& w, size_t p) {
  return w.panels.empty() ? static_cast<const char*>(w.data) + p * panel_bytes(w) : w.panels[p];
}

// Whether w's panels are where it says: one block of the contiguous size, or one pointer per panel.
bool panels_ok(const PackedWeight& w, size_t bytes) {
  const size_t count = w.n / kPanelCols + (w.n % kPanelCols != 0);
  if (bytes != packed_weight_bytes(w.n, w.k, w.type) || w.bytes < bytes) return false;
  return w.panels.empty() ? (w.data || !bytes) : w.panels.size() == count;
}

}  // namespace

bool packed_weight_overlaps(const PackedWeight& w, const void* p, size_t bytes) {
  const size_t count = w.n / kPanelCols + (w.n % kPanelCols != 0), pb = panel_bytes(w);
  const char* lo = static_cast<const char*>(p);
  auto hits = [&](const char* a, size_t len) { return len && bytes && a < lo + bytes && lo < a + len; };
  if (w.panels.empty()) return hits(static_cast<const char*>(w.data), count * pb);
  for (size_t i = 0; i < count; ++i)
    if (hits(w.panels[i], pb)) return true;
  return false;
}

ck_status packed_weight_copy(const PackedWeight& w, void* dst, size_t bytes) {
  if (!panels_ok(w, bytes) || (!dst && bytes) || packed_weight_overlaps(w, dst, bytes)) return CK_ERR_ARG;
  const size_t count = w.n / kPanelCols + (w.n % kPanelCols != 0), pb = panel_bytes(w);
  if (!pb) return CK_OK;
  // Tasks of about 1 MiB of whole panels: a fresh dst takes a page fault per 4 KiB on first touch,
  // and the threads take those side by side.
  const size_t per_task = std::max<size_t>(1, (size_t(1) << 20) / pb), tasks = (count + per_task - 1) / per_task;
  char* out = static_cast<char*>(dst);
  pool().parallel_for(tasks, [&](size_t t, int) {
    for (size_t p = t * per_task, end = std::min(count, p + per_task); p < end; ++p) std::memcpy(out + p * pb, panel_at(w, p), pb);
  });
  return CK_OK;
}

ck_status pack_weight_adopt(void* data, size_t bytes, size_t n, size_t k, WeightType type, PackedWeight* out) {
  if (!out || bytes != packed_weight_bytes(n, k, type) || (bytes && (!data || reinterpret_cast<uintptr_t>(data) % 64)))
    return CK_ERR_ARG;
  set_packed(out, data, bytes, n, k, type, false);
  return CK_OK;
}

// v: kPackedLayoutVersion; p: kPanelCols; f32-kp: fp32 panels [panel][k][16]; bf16-kp2: bf16
// panels [panel][k/2][16][2] rounded to nearest even; both zero past n (and at bf16's odd-k pad);
// le / be: the byte order every element is stored in.
const char* packed_layout_id() {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  constexpr const char* order = "be";
#else
  constexpr const char* order = "le";
#endif
  static const std::string id =
      "v" + std::to_string(kPackedLayoutVersion) + ".p" + std::to_string(kPanelCols) + ".f32-kp.bf16-kp2." + order;
  return id.c_str();
}

}  // namespace ck
