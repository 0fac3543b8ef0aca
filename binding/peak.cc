// probePeak({ kind: 'fma'|'bf16'|'bandwidth', iters?, bytes?, reps? })
//   -> Promise<{ rate, seconds, available }>   (rate: GFLOP/s, or GB/s for bandwidth)
#include <memory>

#include "addon.h"
#include "peak.h"

namespace ck_binding {

static Napi::Value ProbePeak(const Napi::CallbackInfo& info) {
  Args a(info, "probePeak");
  const std::string kind = a.string_or("kind", "fma");
  if (kind != "fma" && kind != "bf16" && kind != "bandwidth")
    throw_range(a.env(), "E_ARG", "probePeak: expected fma, bf16 or bandwidth for kind but received " + kind);
  const size_t iters = a.size_or("iters", 20000000), bytes = a.size_or("bytes", 64u << 20), reps = a.size_or("reps", 5);
  if (iters == 0 || iters > (size_t(1) << 34)) throw_range(a.env(), "E_ARG", "probePeak: iters must be in [1, 2^34]");
  if (bytes > (size_t(1) << 33)) throw_range(a.env(), "E_ARG", "probePeak: bytes must be at most 8 GiB");
  auto result = std::make_shared<ck::PeakResult>();
  return queue_job(
      a,
      [=] {
        if (kind == "fma") return ck::probe_fma(iters, result.get());
        if (kind == "bf16") return ck::probe_bf16(iters, result.get());
        return ck::probe_bandwidth(bytes, reps, result.get());
      },
      [result](Napi::Env env) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("rate", result->gflops_or_gbps);
        o.Set("seconds", result->seconds);
        o.Set("available", result->available);
        return o;
      });
}
CK_EXPORT("probePeak", ProbePeak);

}  // namespace ck_binding
