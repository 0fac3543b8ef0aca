// Module entry: registers every op binding (CK_EXPORT, see addon.h), the job exports (jobs.cc) and
// the runtime settings (runtime.cc: ISA, threads, CPU info).
#include "addon.h"

#include <utility>

#include "jobs.h"
#include "runtime.h"

namespace ck_binding {

// ---- registry ----

// The op bindings (other translation units) call register_export from their static initializers,
// in an order the linker picks: the list is a function-local static, built on first use.
using Callback = Napi::Value (*)(const Napi::CallbackInfo&);
static std::vector<std::pair<const char*, Callback>>& registry() {
  static std::vector<std::pair<const char*, Callback>> r;
  return r;
}
bool register_export(const char* name, Callback fn) {
  registry().emplace_back(name, fn);
  return true;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo, "cpuInfo"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa, "setIsa"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("setQuiet", Napi::Function::New(env, SetQuiet, "setQuiet"));
  exports.Set("fence", Napi::Function::New(env, Fence, "fence"));
  for (const auto& [name, fn] : registry()) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

}  // namespace ck_binding

static Napi::Object InitClipkit(Napi::Env env, Napi::Object exports) { return ck_binding::Init(env, exports); }
NODE_API_MODULE(clipkit, InitClipkit)
