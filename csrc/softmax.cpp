// softmax over the last axis: max, then exp(x - max) with its sum, then a scale by 1/sum.
// Three reads of a row that stays in L1; rows split across threads in blocks.
#ifndef CK_ISA_PASS
#include "softmax.h"

#define CK_SIMD_SELF "softmax.cpp"
#include "isa_passes.h"

namespace ck {

using SoftmaxFn = void (*)(const float*, float*, size_t, size_t, size_t, float);
static const IsaTable<SoftmaxFn> kSoftmax = {pass_scalar::softmax_rows, CK_X86_OR_NULL(pass_avx2::softmax_rows),
                                             CK_X86_OR_NULL(pass_avx512::softmax_rows),
                                             CK_NEON_OR_NULL(pass_neon::softmax_rows)};

ck_status softmax_f32(const float* x, float* y, size_t rows, size_t dim, float scale) {
  if (rows && dim && (!x || !y)) return CK_ERR_ARG;
  if (!dim) return CK_OK;
  SoftmaxFn fn = kSoftmax.pick();
  const size_t per_task = std::max<size_t>(1, 16384 / dim);
  pool().parallel_for((rows + per_task - 1) / per_task, [&](size_t t, int) {
    size_t r0 = t * per_task, r1 = std::min(rows, r0 + per_task);
    fn(x, y, dim, r0, r1, scale);
  });
  return CK_OK;
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

static void softmax_rows(const float* xs, float* ys, size_t d, size_t r0, size_t r1, float scale) {
  const size_t dv = d - d % V::W;
  const int tail = static_cast<int>(d - dv);
  const V::F vs = V::set1(scale);
  const V::F ninf = V::set1(-std::numeric_limits<float>::infinity());
  for (size_t r = r0; r < r1; ++r) {
    const float* x = xs + r * d;
    float* y = ys + r * d;
    V::F vmax = ninf;
    size_t i = 0;
    for (; i < dv; i += V::W) vmax = V::max(vmax, V::mul(V::load(x + i), vs));
    float m = V::reduce_max(vmax);
    for (; i < d; ++i) m = std::max(m, x[i] * scale);
    if (m == -std::numeric_limits<float>::infinity()) {  // every entry masked
      std::memset(y, 0, d * sizeof(float));
      continue;
    }
    const V::F vm = V::set1(m);
    V::F vsum = V::zero();
    const V::F neg_m = V::sub(V::zero(), vm);
    for (i = 0; i + 4 * V::W <= dv; i += 4 * V::W) {  // four exp chains at once (see vmath.h)
      V::F e[4];
      for (int j = 0; j < 4; ++j) e[j] = V::fmadd(V::load(x + i + j * V::W), vs, neg_m);
      v_exp_n<4>(e);
      for (int j = 0; j < 4; ++j) {
        V::store(y + i + j * V::W, e[j]);
        vsum = V::add(vsum, e[j]);
      }
    }
    for (; i < dv; i += V::W) {
      V::F e = v_exp(V::fmadd(V::load(x + i), vs, neg_m));
      V::store(y + i, e);
      vsum = V::add(vsum, e);
    }
    if (tail) {
      V::F e = V::first(v_exp(V::fmadd(V::load_tail(x + i, tail), vs, V::sub(V::zero(), vm))), tail);
      V::store_tail(y + i, e, tail);
      vsum = V::add(vsum, e);
    }
    const V::F inv = V::set1(1.0f / V::reduce_add(vsum));
    for (i = 0; i < dv; i += V::W) V::store(y + i, V::mul(V::load(y + i), inv));
    if (tail) V::store_tail(y + i, V::mul(V::load_tail(y + i, tail), inv), tail);
  }
}

#endif
