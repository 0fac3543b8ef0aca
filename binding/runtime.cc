// Runtime settings: the CPU's features and the ISA and thread count requested for new jobs.
#include "runtime.h"

#include <atomic>
#include <cmath>

#include "cpu_features.h"
#include "thread_pool.h"

namespace ck_binding {

namespace {

std::atomic<int> g_threads{0};

}  // namespace

int requested_threads() {
  int t = g_threads.load();
  return t > 0 ? t : ck::default_threads();
}

Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const ck::CpuFeatures& f = ck::cpu_features();
  Napi::Object o = Napi::Object::New(env);
  Napi::Array isas = Napi::Array::New(env);
  uint32_t i = 0;
  for (ck::Isa isa : {ck::Isa::Scalar, ck::Isa::Avx2, ck::Isa::Avx512, ck::Isa::Amx, ck::Isa::Neon})
    if (ck::isa_supported(isa)) isas.Set(i++, Napi::String::New(env, ck::isa_name(isa)));
  o.Set("isas", isas);
  o.Set("best", ck::isa_name(ck::best_isa()));
  o.Set("isa", ck::isa_name(ck::requested_isa()));
  o.Set("avx512bf16", f.avx512_bf16);
  o.Set("amx", f.amx);
  o.Set("physicalCores", f.physical_cores);
  o.Set("logicalCpus", f.logical_cpus);
  o.Set("threads", requested_threads());
  const char* env_err = ck::isa_env_error();
  o.Set("isaEnvError", env_err ? Napi::Value(Napi::String::New(env, env_err)) : env.Null());
  return o;
}

Napi::Value SetIsa(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) throw_type(env, "E_ARG", "setIsa: expected a string for isa");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  ck::Isa isa;
  if (!ck::parse_isa(name.c_str(), &isa))
    throw_range(env, "E_ISA", "setIsa: expected one of scalar, avx2, avx512, amx, neon for isa but received " + name);
  if (!ck::request_isa(isa))
    throw_range(env, "E_ISA", "setIsa: this CPU does not support " + name + " (best: " + ck::isa_name(ck::best_isa()) + ")");
  return env.Undefined();
}

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "E_ARG", "setThreads: expected a positive integer for threads");
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 1024)
    throw_range(env, "E_ARG", "setThreads: expected an integer in [0, 1024] for threads (0: physical cores)");
  g_threads.store(static_cast<int>(d));
  return env.Undefined();
}

}  // namespace ck_binding
