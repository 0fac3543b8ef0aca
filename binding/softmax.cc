// softmax({ x, y, rows, dim, scale? }) -> Promise<void>
#include "addon.h"
#include "softmax.h"

namespace ck_binding {

static Napi::Value Softmax(const Napi::CallbackInfo& info) {
  Args a(info, "softmax");
  const size_t rows = a.size("rows"), dim = a.size("dim"), n = a.product({rows, dim});
  auto x = a.f32("x"), y = a.f32("y");
  a.expect_length("x", x, n);
  a.expect_length("y", y, n);
  const float scale = static_cast<float>(a.number_or("scale", 1.0));
  return queue_job(a, [=] { return ck::softmax_f32(x.data, y.data, rows, dim, scale); });
}
CK_EXPORT("softmax", Softmax);

}  // namespace ck_binding
