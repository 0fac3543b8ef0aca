// Runtime settings exports (runtime.cc); requested_threads() is declared in addon.h.
#pragma once
#include "addon.h"

namespace ck_binding {

Napi::Value CpuInfo(const Napi::CallbackInfo& info);     // cpuInfo(): ISAs, cores, current settings
Napi::Value SetIsa(const Napi::CallbackInfo& info);      // setIsa(name)
Napi::Value SetThreads(const Napi::CallbackInfo& info);  // setThreads(n), 0: physical cores

}  // namespace ck_binding
