// unary({ op: 'gelu'|'quick_gelu', x, y }) and add({ a, b, y }) -> Promise<void>
// add broadcasts b over a when b's length divides a's (a bias over rows).
#include "addon.h"
#include "elementwise.h"

namespace ck_binding {

static Napi::Value Unary(const Napi::CallbackInfo& info) {
  Args a(info, "unary");
  const std::string name = a.string_or("op", "");
  ck::Unary op;
  if (name == "gelu") op = ck::Unary::Gelu;
  else if (name == "quick_gelu") op = ck::Unary::QuickGelu;
  else throw_range(a.env(), "E_ARG", "unary: expected gelu or quick_gelu for op but received " + name);
  auto x = a.f32("x"), y = a.f32("y");
  a.expect_length("y", y, x.length);
  return queue_job(a, [op, x, y] { return ck::unary_f32(op, x.data, y.data, x.length); });
}
CK_EXPORT("unary", Unary);

static Napi::Value Add(const Napi::CallbackInfo& info) {
  Args a(info, "add");
  auto x = a.f32("a"), b = a.f32("b"), y = a.f32("y");
  if (b.length == 0 ? x.length != 0 : x.length % b.length != 0)
    throw_range(a.env(), "E_SHAPE", "add: the length of b (" + std::to_string(b.length) + ") must divide the length of a (" +
                                        std::to_string(x.length) + ")");
  a.expect_length("y", y, x.length);
  return queue_job(a, [x, b, y] { return ck::add_f32(x.data, b.data, b.length, y.data, x.length); });
}
CK_EXPORT("add", Add);

}  // namespace ck_binding
