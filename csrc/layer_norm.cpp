// layer_norm: normalise each row over the last dimension, optionally after a fused residual add.
// Two passes over the row in float vector accumulators: a first mean, then sums of c = x - mean and
// c² around it; sum(c) corrects the first mean's rounding, so a large mean with a small spread
// (residual streams) keeps full accuracy.
// Threads take contiguous blocks of rows.
#ifndef CK_ISA_PASS
#include "layer_norm.h"

#define CK_SIMD_SELF "layer_norm.cpp"
#include "isa_passes.h"

namespace ck {

using LayerNormFn = void (*)(const LayerNormArgs&, size_t, size_t);
static const IsaTable<LayerNormFn> kLayerNorm = {pass_scalar::layer_norm_rows, CK_X86_OR_NULL(pass_avx2::layer_norm_rows),
                                                 CK_X86_OR_NULL(pass_avx512::layer_norm_rows),
                                                 CK_NEON_OR_NULL(pass_neon::layer_norm_rows)};

ck_status layer_norm_f32(const LayerNormArgs& a) {
  if (!a.x || !a.gamma || !a.y || a.dim == 0) return a.rows == 0 ? CK_OK : CK_ERR_ARG;
  LayerNormFn fn = kLayerNorm.pick();
  // Rows per task sized so each task moves at least ~64 KiB.
  const size_t rows_per_task = std::max<size_t>(1, (16384 + a.dim - 1) / a.dim);
  const size_t tasks = (a.rows + rows_per_task - 1) / rows_per_task;
  pool().parallel_for(tasks, [&](size_t t, int) {
    size_t r0 = t * rows_per_task, r1 = std::min(a.rows, r0 + rows_per_task);
    fn(a, r0, r1);
  });
  return CK_OK;
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

static void layer_norm_rows(const LayerNormArgs& a, size_t r0, size_t r1) {
  const size_t d = a.dim;
  const size_t dv = d - d % V::W;
  const int tail = static_cast<int>(d - dv);
  for (size_t r = r0; r < r1; ++r) {
    const float* x = a.x + r * d;
    const float* res = a.residual ? a.residual + r * d : nullptr;
    float* s = a.sum ? a.sum + r * d : (res ? a.y + r * d : nullptr);  // where s lives if not x itself
    float* y = a.y + r * d;

    // Pass 1: s = x (+ residual), and its sum (four independent accumulators hide the add latency).
    V::F acc[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    size_t i = 0;
    if (res) {
      for (; i < dv; i += V::W) {
        V::F v = V::add(V::load(x + i), V::load(res + i));
        V::store(s + i, v);
        acc[(i / V::W) & 3] = V::add(acc[(i / V::W) & 3], v);
      }
      if (tail) {
        V::F v = V::add(V::load_tail(x + i, tail), V::load_tail(res + i, tail));
        V::store_tail(s + i, v, tail);
        acc[0] = V::add(acc[0], v);
      }
    } else {
      if (s) std::memmove(s, x, d * sizeof(float));
      for (; i + 4 * V::W <= dv; i += 4 * V::W) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; ++u) acc[u] = V::add(acc[u], V::load(x + i + u * V::W));
      }
      for (; i < dv; i += V::W) acc[0] = V::add(acc[0], V::load(x + i));
      if (tail) acc[1] = V::add(acc[1], V::load_tail(x + i, tail));
    }
    const float* src = res ? s : x;
    const float mean0 = V::reduce_add(V::add(V::add(acc[0], acc[1]), V::add(acc[2], acc[3]))) / static_cast<float>(d);

    // Pass 2: centred sums around the first estimate. sum(c) corrects the float rounding of mean0
    // (large mean, small spread), sum(c²) gives the variance.
    const V::F vm0 = V::set1(mean0);
    // Four chains of each sum: one chain would be bound by the add/FMA latency, not by the loads.
    V::F c[4] = {V::zero(), V::zero(), V::zero(), V::zero()}, q[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
    for (i = 0; i + 4 * V::W <= dv; i += 4 * V::W) {
#pragma GCC unroll 4
      for (int u = 0; u < 4; ++u) {
        V::F t = V::sub(V::load(src + i + u * V::W), vm0);
        c[u] = V::add(c[u], t);
        q[u] = V::fmadd(t, t, q[u]);
      }
    }
    for (; i < dv; i += V::W) {
      V::F t = V::sub(V::load(src + i), vm0);
      c[0] = V::add(c[0], t);
      q[0] = V::fmadd(t, t, q[0]);
    }
    if (tail) {
      V::F t = V::first(V::sub(V::load_tail(src + i, tail), vm0), tail);  // lanes past the row stay 0
      c[1] = V::add(c[1], t);
      q[1] = V::fmadd(t, t, q[1]);
    }
    const float inv_d = 1.0f / static_cast<float>(d);
    const float dm = V::reduce_add(V::add(V::add(c[0], c[1]), V::add(c[2], c[3]))) * inv_d;
    const float mean = mean0 + dm;
    const float var = std::max(0.0f, V::reduce_add(V::add(V::add(q[0], q[1]), V::add(q[2], q[3]))) * inv_d - dm * dm);
    const float rstd = 1.0f / std::sqrt(var + a.eps);
    const V::F vmean = V::set1(mean);

    // Pass 3: y = (s - mean) * rstd * gamma + beta.
    const V::F vr = V::set1(rstd);
    for (i = 0; i < dv; i += V::W) {
      V::F c = V::mul(V::sub(V::load(src + i), vmean), vr);
      V::F b = a.beta ? V::load(a.beta + i) : V::zero();
      V::store(y + i, V::fmadd(c, V::load(a.gamma + i), b));
    }
    if (tail) {
      V::F c = V::mul(V::sub(V::load_tail(src + i, tail), vmean), vr);
      V::F b = a.beta ? V::load_tail(a.beta + i, tail) : V::zero();
      V::store_tail(y + i, V::fmadd(c, V::load_tail(a.gamma + i, tail), b), tail);
    }
  }
}

#endif
