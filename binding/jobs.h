// The job queue's own exports (jobs.cc); queue_job itself is declared in addon.h for every op binding.
#pragma once
#include "addon.h"

namespace ck_binding {

Napi::Value SetQuiet(const Napi::CallbackInfo& info);  // setQuiet(on)
Napi::Value Fence(const Napi::CallbackInfo& info);     // fence({})

}  // namespace ck_binding
