// L2-normalise rows: sum of squares in float vector lanes (reduced in double), then one scale.
#ifndef CK_ISA_PASS
#include "l2_normalize.h"

#define CK_SIMD_SELF "l2_normalize.cpp"
#include "isa_passes.h"

namespace ck {

using L2Fn = void (*)(const float*, float*, float*, size_t, size_t, size_t);
static const IsaTable<L2Fn> kL2 = {pass_scalar::l2_rows, CK_X86_OR_NULL(pass_avx2::l2_rows),
                                   CK_X86_OR_NULL(pass_avx512::l2_rows), CK_NEON_OR_NULL(pass_neon::l2_rows)};

ck_status l2_normalize_f32(const float* x, float* y, float* norms, size_t rows, size_t dim) {
  if (rows && dim && (!x || !y)) return CK_ERR_ARG;
  L2Fn fn = kL2.pick();
  const size_t per_task = std::max<size_t>(1, 16384 / std::max<size_t>(dim, 1));
  pool().parallel_for((rows + per_task - 1) / per_task, [&](size_t t, int) {
    size_t r0 = t * per_task, r1 = std::min(rows, r0 + per_task);
    fn(x, y, norms, dim, r0, r1);
  });
  return CK_OK;
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

static void l2_rows(const float* xs, float* ys, float* norms, size_t d, size_t r0, size_t r1) {
  const size_t dv = d - d % V::W;
  const int tail = static_cast<int>(d - dv);
  for (size_t r = r0; r < r1; ++r) {
    const float* x = xs + r * d;
    float* y = ys + r * d;
    V::F q0 = V::zero(), q1 = V::zero();
    size_t i = 0;
    for (; i + 2 * V::W <= dv; i += 2 * V::W) {
      V::F a = V::load(x + i), b = V::load(x + i + V::W);
      q0 = V::fmadd(a, a, q0);
      q1 = V::fmadd(b, b, q1);
    }
    for (; i < dv; i += V::W) {
      V::F a = V::load(x + i);
      q0 = V::fmadd(a, a, q0);
    }
    if (tail) {
      V::F a = V::load_tail(x + i, tail);
      q1 = V::fmadd(a, a, q1);
    }
    const double norm = std::sqrt(static_cast<double>(V::reduce_add(q0)) + static_cast<double>(V::reduce_add(q1)));
    if (norms) norms[r] = static_cast<float>(norm);
    const V::F s = V::set1(norm > 0 ? static_cast<float>(1.0 / norm) : 0.0f);
    for (i = 0; i < dv; i += V::W) V::store(y + i, V::mul(V::load(x + i), s));
    if (tail) V::store_tail(y + i, V::mul(V::load_tail(x + i, tail), s), tail);
  }
}

#endif
