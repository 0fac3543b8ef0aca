// packWeight({ w, n, k, dtype }) -> Promise<handle>
// gemm({ x, m, k, w: handle, bias?, epilogue, residual?, y, alpha?, repeat? }) -> Promise<void>
#include <memory>

#include "packed_weight.h"

namespace ck_binding {

static const napi_type_tag kPackedWeightTag = {0x636c69706b697447ull, 0x656d6d5061636b31ull};

const ck::PackedWeight* packed_weight_arg(Args& a, const char* name) {
  Napi::Value v = a.value(name);
  if (!v.IsExternal() || !v.As<Napi::External<ck::PackedWeight>>().CheckTypeTag(&kPackedWeightTag))
    throw_type(a.env(), "E_ARG", std::string(a.op()) + ": expected a packed weight (from packWeight) for " + name);
  a.keep(v);
  return v.As<Napi::External<ck::PackedWeight>>().Data();
}

static Napi::Value PackWeight(const Napi::CallbackInfo& info) {
  Args a(info, "packWeight");
  const size_t n = a.size("n"), k = a.size("k");
  auto w = a.f32("w");
  a.expect_length("w", w, a.product({n, k}));
  const std::string dtype = a.string_or("dtype", "float32");
  if (dtype != "float32" && dtype != "bfloat16")
    throw_range(a.env(), "E_DTYPE", "packWeight: expected float32 or bfloat16 for dtype but received " + dtype);
  const ck::WeightType type = dtype == "bfloat16" ? ck::WeightType::BF16 : ck::WeightType::F32;
  auto packed = std::make_shared<std::unique_ptr<ck::PackedWeight>>(new ck::PackedWeight());
  const float* wd = w.data;
  return queue_job(
      a, [packed, wd, n, k, type] { return ck::pack_weight(wd, n, k, k, type, packed->get()); },
      [packed](Napi::Env env) -> Napi::Value {
        ck::PackedWeight* pw = packed->release();
        const int64_t bytes = static_cast<int64_t>(pw->bytes);
        auto ext = Napi::External<ck::PackedWeight>::New(env, pw, [bytes](Napi::Env e, ck::PackedWeight* p) {
          // A finalizer must not throw (it may run while the environment is torn down): raw call, status ignored.
          int64_t total;
          napi_adjust_external_memory(e, -bytes, &total);
          delete p;
        });
        ext.TypeTag(&kPackedWeightTag);
        Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
        return ext;
      });
}
CK_EXPORT("packWeight", PackWeight);

static Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Args a(info, "gemm");
  const ck::PackedWeight* w = packed_weight_arg(a, "w");
  const size_t m = a.size("m"), k = a.size("k"), n = w->n;
  if (k != w->k)
    throw_range(a.env(), "E_SHAPE", "gemm: expected k " + std::to_string(w->k) + " (the packed weight's) but received " +
                                        std::to_string(k));
  auto x = a.f32("x"), y = a.f32("y"), bias = a.f32_opt("bias");
  a.expect_length("x", x, a.product({m, k}));
  a.expect_length("y", y, a.product({m, n}));
  if (bias) a.expect_length("bias", bias, n);
  const std::string epi = a.string_or("epilogue", "none");
  ck::Epilogue e;
  if (epi == "none") e = ck::Epilogue::None;
  else if (epi == "gelu") e = ck::Epilogue::Gelu;
  else if (epi == "quick_gelu") e = ck::Epilogue::QuickGelu;
  else if (epi == "residual") e = ck::Epilogue::Residual;
  else throw_range(a.env(), "E_ARG", "gemm: expected none, gelu, quick_gelu or residual for epilogue but received " + epi);
  View<float> residual;
  if (e == ck::Epilogue::Residual) {
    residual = a.f32("residual");
    a.expect_length("residual", residual, a.product({m, n}));
  } else if (a.f32_opt("residual")) {
    throw_range(a.env(), "E_ARG", "gemm: residual is only read with epilogue 'residual' but epilogue is " + epi);
  }
  const float alpha = static_cast<float>(a.number_or("alpha", 1.0));
  ck::GemmArgs args{x.data, k, w, bias.data, e, residual.data, n, y.data, n, m, alpha};
  return queue_job(a, [args] { return ck::gemm(args); });
}
CK_EXPORT("gemm", Gemm);

}  // namespace ck_binding
