// infonce: symmetric softmax cross-entropy over square logits, and the full CLIP loss with its
// gradients through the L2 normalisation.
//
// Loss: one pass per row (max, then Σ exp(x − max) in float lanes flushed to double every chunk) and
// one per block of 64 columns (the same down the columns, vectorised across them), giving each row's
// and column's max m and 1/Σ. The gradient is then exp(x − m)·(1/Σ) for the row and for the column
// (no logsumexp subtracted in float, so each probability keeps ~2 ulp), minus the diagonal targets.
// Threads take rows (or column blocks); the partial sums are combined in a fixed order, so results do
// not depend on the thread count.
// Full version: logits (logits.cpp) → loss and G → dÂ = scale·G·B̂ and dB̂ = scale·Gᵀ·Â (gemm_unpacked,
// Gᵀ transposed into scratch) → the normalisation's backward per row.
#ifndef CK_ISA_PASS
#include "infonce.h"

#include <new>
#include <vector>

#include "gemm.h"
#include "logits.h"

namespace ck {
namespace infonce_detail {
constexpr size_t kColBlock = 64;  // columns per task in the column pass
constexpr size_t kRowChunk = 64;  // float partial sums are flushed to double every kRowChunk terms
}  // namespace infonce_detail
}  // namespace ck

#define CK_SIMD_SELF "infonce.cpp"
#include "isa_passes.h"

namespace ck {

namespace {

struct InfonceKernels {
  void (*row_stats)(const float* x, size_t n, size_t r0, size_t r1, float* max, float* inv, double* lse);
  void (*col_stats)(const float* x, size_t n, size_t c0, size_t c1, float* max, float* inv, double* lse);
  double (*grad_rows)(const float* x, size_t n, size_t r0, size_t r1, const float* rmax, const float* rinv,
                      const float* cmax, const float* cinv, float* g);
  void (*norm_backward)(const float* hat, const float* norm, float* g, size_t d, size_t r0, size_t r1);
};

#define CK_INFONCE_KERNELS(ns) \
  InfonceKernels { ns::infonce_row_stats, ns::infonce_col_stats, ns::infonce_grad_rows, ns::infonce_norm_backward }
const InfonceKernels kScalar = CK_INFONCE_KERNELS(pass_scalar);
#if defined(CK_X86)
const InfonceKernels kAvx2 = CK_INFONCE_KERNELS(pass_avx2);
const InfonceKernels kAvx512 = CK_INFONCE_KERNELS(pass_avx512);
#elif defined(CK_ARM64)
const InfonceKernels kNeon = CK_INFONCE_KERNELS(pass_neon);
#endif
#undef CK_INFONCE_KERNELS
const IsaTable<const InfonceKernels*> kInfonce = {&kScalar, CK_X86_OR_NULL(&kAvx2), CK_X86_OR_NULL(&kAvx512),
                                                  CK_NEON_OR_NULL(&kNeon)};

// Rows per task: at least ~16 K elements of work each.
size_t rows_per_task(size_t row_len) { return std::max<size_t>(1, 16384 / std::max<size_t>(row_len, 1)); }

// Loss and, when g is given, G = dL/dx and Σ G∘x (returned in *sum_gx).
ck_status loss_and_grad(const float* x, size_t n, float* g, double* loss, double* sum_gx) {
  using infonce_detail::kColBlock;
  const InfonceKernels& k = *kInfonce.pick();
  std::vector<float> rmax(n), rinv(n), cmax(n), cinv(n);
  std::vector<double> rlse(n), clse(n);
  const size_t rpt = rows_per_task(n);
  const size_t row_tasks = (n + rpt - 1) / rpt, col_tasks = (n + kColBlock - 1) / kColBlock;
  pool().parallel_for(row_tasks + col_tasks, [&](size_t t, int) {
    if (t < row_tasks) {
      const size_t r0 = t * rpt;
      k.row_stats(x, n, r0, std::min(n, r0 + rpt), rmax.data(), rinv.data(), rlse.data());
    } else {
      const size_t c0 = (t - row_tasks) * kColBlock;
      k.col_stats(x, n, c0, std::min(n, c0 + kColBlock), cmax.data(), cinv.data(), clse.data());
    }
  });
  double ce = 0;
  for (size_t i = 0; i < n; ++i) ce += (rlse[i] - x[i * n + i]) + (clse[i] - x[i * n + i]);
  *loss = ce / (2.0 * static_cast<double>(n));
  if (!g) return CK_OK;
  std::vector<double> part(row_tasks);
  pool().parallel_for(row_tasks, [&](size_t t, int) {
    const size_t r0 = t * rpt;
    part[t] = k.grad_rows(x, n, r0, std::min(n, r0 + rpt), rmax.data(), rinv.data(), cmax.data(), cinv.data(), g);
  });
  double s = 0;
  for (double p : part) s += p;
  if (sum_gx) *sum_gx = s;
  return CK_OK;
}

// dst [n, n] = srcᵀ, in 32×32 tiles.
void transpose_square(const float* src, float* dst, size_t n) {
  constexpr size_t kTile = 32;
  const size_t tiles = (n + kTile - 1) / kTile;
  pool().parallel_for(tiles, [&](size_t ti, int) {
    const size_t i0 = ti * kTile, i1 = std::min(n, i0 + kTile);
    for (size_t j0 = 0; j0 < n; j0 += kTile) {
      const size_t j1 = std::min(n, j0 + kTile);
      for (size_t i = i0; i < i1; ++i)
        for (size_t j = j0; j < j1; ++j) dst[j * n + i] = src[i * n + j];
    }
  });
}

}  // namespace

ck_status infonce_loss_f32(const float* logits, size_t n, float* d_logits, double* loss) {
  if (n == 0 || !logits || !loss) return CK_ERR_ARG;
  try {
    return loss_and_grad(logits, n, d_logits, loss, nullptr);
  } catch (const std::bad_alloc&) {
    return CK_ERR_NOMEM;
  }
}

ck_status infonce_f32(const InfonceArgs& a, InfonceResult* out) {
  if (a.n == 0 || !a.a || !a.b || !a.logits || !a.d_logits || !a.d_a || !a.d_b || !out) return CK_ERR_ARG;
  if (!(a.scale > 0) || !std::isfinite(a.scale)) return CK_ERR_ARG;
  size_t nd, nn, bytes_hat, bytes_gt;
  if (!mul_ok(a.n, a.d, &nd) || !mul_ok(nd, 2 * sizeof(float), &bytes_hat) || !mul_ok(a.n, a.n, &nn) ||
      !mul_ok(nn, sizeof(float), &bytes_gt))
    return CK_ERR_NOMEM;
  // The dispatcher (worker 0) runs the op; slots 2 and 3 of that thread belong to the GEMM.
  float* hat = static_cast<float*>(pool().scratch(0, std::max<size_t>(bytes_hat, 64), ScratchSlot::kOp));
  if (!hat) return CK_ERR_NOMEM;
  float* a_hat = hat;
  float* b_hat = hat + nd;
  try {
    std::vector<float> a_norm(a.n), b_norm(a.n);
    LogitsArgs la{a.a, a.b, a.logits, a_norm.data(), b_norm.data(), a.n, a.n, a.d, a.scale};
    ck_status s = logits_into_f32(la, a_hat, b_hat);
    if (s != CK_OK) return s;
    double sum_gl = 0;
    s = loss_and_grad(a.logits, a.n, a.d_logits, &out->loss, &sum_gl);
    if (s != CK_OK) return s;
    out->d_log_scale = sum_gl;              // Σ G∘logits = scale·Σ G∘(Â·B̂ᵀ)
    out->d_scale = sum_gl / a.scale;
    if (a.d == 0) return CK_OK;
    // dÂ = scale·G·B̂ and dB̂ = scale·Gᵀ·Â, both [n, d] with B̂, Â read as [k = n, d].
    s = gemm_unpacked(a.d_logits, a.n, b_hat, a.d, /*b_is_nk=*/false, a.d_a, a.d, a.n, a.d, a.n, a.scale);
    if (s != CK_OK) return s;
    float* g_t = static_cast<float*>(pool().scratch(0, bytes_gt, ScratchSlot::kOpSecond));
    if (!g_t) return CK_ERR_NOMEM;
    transpose_square(a.d_logits, g_t, a.n);
    s = gemm_unpacked(g_t, a.n, a_hat, a.d, /*b_is_nk=*/false, a.d_b, a.d, a.n, a.d, a.n, a.scale);
    if (s != CK_OK) return s;
    const InfonceKernels& k = *kInfonce.pick();
    const size_t rpt = rows_per_task(a.d), tasks = (a.n + rpt - 1) / rpt;
    pool().parallel_for(2 * tasks, [&](size_t t, int) {
      const bool is_b = t >= tasks;
      const size_t r0 = (is_b ? t - tasks : t) * rpt, r1 = std::min(a.n, r0 + rpt);
      if (is_b) k.norm_backward(b_hat, b_norm.data(), a.d_b, a.d, r0, r1);
      else k.norm_backward(a_hat, a_norm.data(), a.d_a, a.d, r0, r1);
    });
    return CK_OK;
  } catch (const std::bad_alloc&) {
    return CK_ERR_NOMEM;
  }
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

// Row i: max, 1/Σ exp(x − max) and logsumexp, for rows [r0, r1).
static void infonce_row_stats(const float* x, size_t n, size_t r0, size_t r1, float* max, float* inv, double* lse) {
  const size_t nv = n - n % V::W;
  const int tail = static_cast<int>(n - nv);
  for (size_t i = r0; i < r1; ++i) {
    const float* row = x + i * n;
    V::F mx = V::set1(-std::numeric_limits<float>::infinity());
    size_t j = 0;
    for (; j < nv; j += V::W) mx = V::max(mx, V::load(row + j));
    float m = V::reduce_max(mx);
    for (; j < n; ++j) m = std::max(m, row[j]);
    const V::F vm = V::set1(m);
    double sum = 0;
    for (j = 0; j < nv;) {
      V::F acc = V::zero();
      const size_t end = std::min(nv, j + infonce_detail::kRowChunk);
      for (; j < end; j += V::W) acc = V::add(acc, v_exp(V::sub(V::load(row + j), vm)));
      sum += V::reduce_add(acc);
    }
    if (tail) sum += V::reduce_add(V::first(v_exp(V::sub(V::load_tail(row + nv, tail), vm)), tail));
    max[i] = m;
    inv[i] = static_cast<float>(1.0 / sum);
    lse[i] = m + std::log(sum);
  }
}

// The same for columns [c0, c1) (at most kColBlock of them), vectorised across the columns.
static void infonce_col_stats(const float* x, size_t n, size_t c0, size_t c1, float* max, float* inv, double* lse) {
  constexpr size_t kB = infonce_detail::kColBlock;
  static_assert(kB % 16 == 0, "whole vectors for every ISA");
  alignas(64) float cm[kB], acc[kB];
  double sum[kB];
  const size_t w = c1 - c0;
  const size_t wv = (w + V::W - 1) / V::W * V::W;  // vectors covering the block; lanes past w are dropped
  const int tail = static_cast<int>(w - (wv - V::W));
  auto load_cols = [&](const float* p, size_t j) { return j + V::W <= w ? V::load(p + j) : V::load_tail(p + j, tail); };
  for (size_t j = 0; j < kB; ++j) cm[j] = -std::numeric_limits<float>::infinity(), sum[j] = 0;
  for (size_t i = 0; i < n; ++i) {
    const float* row = x + i * n + c0;
    for (size_t j = 0; j < wv; j += V::W) V::store(cm + j, V::max(V::load(cm + j), load_cols(row, j)));
  }
  for (size_t i0 = 0; i0 < n; i0 += infonce_detail::kRowChunk) {
    const size_t i1 = std::min(n, i0 + infonce_detail::kRowChunk);
    for (size_t j = 0; j < wv; j += V::W) V::store(acc + j, V::zero());
    for (size_t i = i0; i < i1; ++i) {
      const float* row = x + i * n + c0;
      for (size_t j = 0; j < wv; j += V::W)
        V::store(acc + j, V::add(V::load(acc + j), v_exp(V::sub(load_cols(row, j), V::load(cm + j)))));
    }
    for (size_t j = 0; j < w; ++j) sum[j] += acc[j];
  }
  for (size_t j = 0; j < w; ++j) {
    max[c0 + j] = cm[j];
    inv[c0 + j] = static_cast<float>(1.0 / sum[j]);
    lse[c0 + j] = cm[j] + std::log(sum[j]);
  }
}

// g[i, j] = (p_row + p_col − 2δij) / (2n) for rows [r0, r1); returns Σ g∘x over those rows.
static double infonce_grad_rows(const float* x, size_t n, size_t r0, size_t r1, const float* rmax, const float* rinv,
                                const float* cmax, const float* cinv, float* g) {
  const size_t nv = n - n % V::W;
  const int tail = static_cast<int>(n - nv);
  const float half_n = static_cast<float>(0.5 / static_cast<double>(n));
  const V::F vh = V::set1(half_n);
  double total = 0;
  for (size_t i = r0; i < r1; ++i) {
    const float* row = x + i * n;
    float* grow = g + i * n;
    const V::F rm = V::set1(rmax[i]), ri = V::set1(rinv[i]);
    V::F sgx = V::zero();
    size_t j = 0;
    for (; j < nv; j += V::W) {
      const V::F xv = V::load(row + j);
      const V::F pr = V::mul(v_exp(V::sub(xv, rm)), ri);
      const V::F pc = V::mul(v_exp(V::sub(xv, V::load(cmax + j))), V::load(cinv + j));
      const V::F gv = V::mul(V::add(pr, pc), vh);
      V::store(grow + j, gv);
      sgx = V::fmadd(gv, xv, sgx);
    }
    if (tail) {
      const V::F xv = V::load_tail(row + j, tail);
      const V::F pr = V::mul(v_exp(V::sub(xv, rm)), ri);
      const V::F pc = V::mul(v_exp(V::sub(xv, V::load_tail(cmax + j, tail))), V::load_tail(cinv + j, tail));
      const V::F gv = V::first(V::mul(V::add(pr, pc), vh), tail);
      V::store_tail(grow + j, gv, tail);
      sgx = V::fmadd(gv, xv, sgx);
    }
    // The targets: −2/(2n) on the diagonal.
    grow[i] -= 2.0f * half_n;
    total += static_cast<double>(V::reduce_add(sgx)) - static_cast<double>(row[i]) / static_cast<double>(n);
  }
  return total;
}

// Backward of y = x/‖x‖ per row, in place: g ← (g − ŷ·(ŷ·g)) / ‖x‖ (0 where ‖x‖ = 0).
static void infonce_norm_backward(const float* hat, const float* norm, float* g, size_t d, size_t r0, size_t r1) {
  const size_t dv = d - d % V::W;
  const int tail = static_cast<int>(d - dv);
  for (size_t i = r0; i < r1; ++i) {
    const float* y = hat + i * d;
    float* gi = g + i * d;
    V::F acc = V::zero();
    size_t c = 0;
    for (; c < dv; c += V::W) acc = V::fmadd(V::load(y + c), V::load(gi + c), acc);
    if (tail) acc = V::fmadd(V::load_tail(y + c, tail), V::load_tail(gi + c, tail), acc);
    const V::F dot = V::set1(V::reduce_add(acc));
    const V::F rn = V::set1(norm[i] > 0.0f ? 1.0f / norm[i] : 0.0f);
    for (c = 0; c < dv; c += V::W) V::store(gi + c, V::mul(V::fnmadd(V::load(y + c), dot, V::load(gi + c)), rn));
    if (tail)
      V::store_tail(gi + c, V::mul(V::fnmadd(V::load_tail(y + c, tail), dot, V::load_tail(gi + c, tail)), rn), tail);
  }
}

#endif
