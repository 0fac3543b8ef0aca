// l2Normalize({ x, y, norms?, rows, dim }) -> Promise<void>
#include "addon.h"
#include "l2_normalize.h"

namespace ck_binding {

static Napi::Value L2Normalize(const Napi::CallbackInfo& info) {
  Args a(info, "l2Normalize");
  const size_t rows = a.size("rows"), dim = a.size("dim"), n = a.product({rows, dim});
  auto x = a.f32("x"), y = a.f32("y"), norms = a.f32_opt("norms");
  a.expect_length("x", x, n);
  a.expect_length("y", y, n);
  if (norms) a.expect_length("norms", norms, rows);
  return queue_job(a, [=] { return ck::l2_normalize_f32(x.data, y.data, norms.data, rows, dim); });
}
CK_EXPORT("l2Normalize", L2Normalize);

}  // namespace ck_binding
