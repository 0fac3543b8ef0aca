// matmul({ a, b, m, n, k, bIsNk, c, alpha? }) -> Promise<void>
// C[m,n] = alpha · A[m,k] · op(B): B stored [n,k] (bIsNk) or [k,n]; B is packed on the fly.
#include "addon.h"
#include "gemm.h"

namespace ck_binding {

static Napi::Value Matmul(const Napi::CallbackInfo& info) {
  Args a(info, "matmul");
  const size_t m = a.size("m"), n = a.size("n"), k = a.size("k");
  const bool b_is_nk = a.flag("bIsNk", false);
  auto A = a.f32("a"), B = a.f32("b"), C = a.f32("c");
  a.expect_length("a", A, a.product({m, k}));
  a.expect_length("b", B, a.product({n, k}));
  a.expect_length("c", C, a.product({m, n}));
  const float alpha = static_cast<float>(a.number_or("alpha", 1.0));
  const float *ad = A.data, *bd = B.data;
  float* cd = C.data;
  return queue_job(a, [=] {
    return ck::gemm_unpacked(ad, k, bd, b_is_nk ? k : n, b_is_nk, cd, n, m, n, k, alpha);
  });
}
CK_EXPORT("matmul", Matmul);

}  // namespace ck_binding
