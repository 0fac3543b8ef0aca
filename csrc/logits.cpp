// logits: L2-normalise the rows of A and B (l2_normalize_f32: sums of squares reduced in double),
// then one GEMM, logits = scale·Â·B̂ᵀ (gemm_unpacked with B̂ stored [m, d], fp32 accumulation).
#include "logits.h"

#include "gemm.h"
#include "l2_normalize.h"
#include "thread_pool.h"

namespace ck {

ck_status logits_into_f32(const LogitsArgs& a, float* a_hat, float* b_hat) {
  if ((a.n && a.d && (!a.a || !a_hat)) || (a.m && a.d && (!a.b || !b_hat)) || (a.n && a.m && !a.logits)) return CK_ERR_ARG;
  ck_status s = l2_normalize_f32(a.a, a_hat, a.a_norm, a.n, a.d);
  if (s == CK_OK) s = l2_normalize_f32(a.b, b_hat, a.b_norm, a.m, a.d);
  if (s == CK_OK) s = gemm_unpacked(a_hat, a.d, b_hat, a.d, /*b_is_nk=*/true, a.logits, a.m, a.n, a.m, a.d, a.scale);
  return s;
}

ck_status logits_f32(const LogitsArgs& a) {
  size_t elems, bytes;
  if (a.n + a.m < a.n || !mul_ok(a.n + a.m, a.d, &elems) || !mul_ok(elems, sizeof(float), &bytes)) return CK_ERR_NOMEM;
  // The dispatcher (worker 0) runs the op; the GEMM uses slots 2 and 3 of that thread.
  float* hat = static_cast<float*>(pool().scratch(0, bytes ? bytes : 64, ScratchSlot::kOp));
  if (!hat) return CK_ERR_NOMEM;
  return logits_into_f32(a, hat, hat + a.n * a.d);
}

}  // namespace ck
