// logits({ a, b, out, aNorm?, bNorm?, n, m, dim, scale }) -> Promise<void>
// a: [n, dim], b: [m, dim], out: [n, m] = scale · normalise(a) · normalise(b)ᵀ; aNorm [n], bNorm [m].
#include "addon.h"
#include "logits.h"

namespace ck_binding {

static Napi::Value Logits(const Napi::CallbackInfo& info) {
  Args a(info, "logits");
  const size_t n = a.size("n"), m = a.size("m"), dim = a.size("dim");
  auto x = a.f32("a"), y = a.f32("b"), out = a.f32("out"), a_norm = a.f32_opt("aNorm"), b_norm = a.f32_opt("bNorm");
  a.expect_length("a", x, a.product({n, dim}));
  a.expect_length("b", y, a.product({m, dim}));
  a.expect_length("out", out, a.product({n, m}));
  if (a_norm) a.expect_length("aNorm", a_norm, n);
  if (b_norm) a.expect_length("bNorm", b_norm, m);
  ck::LogitsArgs args{x.data, y.data, out.data, a_norm.data, b_norm.data, n, m, dim, static_cast<float>(a.number("scale"))};
  return queue_job(a, [args] { return ck::logits_f32(args); });
}
CK_EXPORT("logits", Logits);

}  // namespace ck_binding
