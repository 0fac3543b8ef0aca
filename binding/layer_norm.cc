// layerNorm({ x, residual?, gamma, beta?, y, sum?, rows, dim, eps }) -> Promise<void>
#include "addon.h"
#include "layer_norm.h"

namespace ck_binding {

static Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Args a(info, "layerNorm");
  const size_t rows = a.size("rows"), dim = a.size("dim");
  const size_t n = a.product({rows, dim});
  auto x = a.f32("x"), residual = a.f32_opt("residual"), gamma = a.f32("gamma"), beta = a.f32_opt("beta");
  auto y = a.f32("y"), sum = a.f32_opt("sum");
  a.expect_length("x", x, n);
  if (residual) a.expect_length("residual", residual, n);
  a.expect_length("gamma", gamma, dim);
  if (beta) a.expect_length("beta", beta, dim);
  a.expect_length("y", y, n);
  if (sum) a.expect_length("sum", sum, n);
  ck::LayerNormArgs args{x.data, residual.data, gamma.data, beta.data, y.data, sum.data, rows, dim,
                         static_cast<float>(a.number("eps"))};
  return queue_job(a, [args] { return ck::layer_norm_f32(args); });
}
CK_EXPORT("layerNorm", LayerNorm);

}  // namespace ck_binding
