// infonceLoss({ logits, dLogits?, n }) -> Promise<{ loss }>
// infonce({ a, b, logits, dLogits, dA, dB, n, dim, scale }) -> Promise<{ loss, dScale, dLogScale }>
// logits, dLogits: [n, n]; a, b, dA, dB: [n, dim]. scale multiplies the cosine similarities.
#include <memory>

#include "addon.h"
#include "infonce.h"

namespace ck_binding {

static Napi::Value InfonceLoss(const Napi::CallbackInfo& info) {
  Args a(info, "infonceLoss");
  const size_t n = a.size("n");
  auto logits = a.f32("logits"), d_logits = a.f32_opt("dLogits");
  a.expect_length("logits", logits, a.product({n, n}));
  if (d_logits) a.expect_length("dLogits", d_logits, a.product({n, n}));
  auto loss = std::make_shared<double>(0.0);
  const float* x = logits.data;
  float* g = d_logits.data;
  return queue_job(
      a, [x, g, n, loss] { return ck::infonce_loss_f32(x, n, g, loss.get()); },
      [loss](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("loss", *loss);
        return Napi::Value(o);
      });
}
CK_EXPORT("infonceLoss", InfonceLoss);

static Napi::Value Infonce(const Napi::CallbackInfo& info) {
  Args a(info, "infonce");
  const size_t n = a.size("n"), dim = a.size("dim");
  const size_t nd = a.product({n, dim}), nn = a.product({n, n});
  auto x = a.f32("a"), y = a.f32("b"), logits = a.f32("logits"), d_logits = a.f32("dLogits");
  auto d_a = a.f32("dA"), d_b = a.f32("dB");
  a.expect_length("a", x, nd);
  a.expect_length("b", y, nd);
  a.expect_length("logits", logits, nn);
  a.expect_length("dLogits", d_logits, nn);
  a.expect_length("dA", d_a, nd);
  a.expect_length("dB", d_b, nd);
  ck::InfonceArgs args{x.data, y.data, n, dim, static_cast<float>(a.number("scale")),
                       logits.data, d_logits.data, d_a.data, d_b.data};
  auto result = std::make_shared<ck::InfonceResult>();
  return queue_job(
      a, [args, result] { return ck::infonce_f32(args, result.get()); },
      [result](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("loss", result->loss);
        o.Set("dScale", result->d_scale);
        o.Set("dLogScale", result->d_log_scale);
        return Napi::Value(o);
      });
}
CK_EXPORT("infonce", Infonce);

}  // namespace ck_binding
