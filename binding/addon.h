// N-API glue shared by every op binding: argument readers that name the argument in their errors,
// and queue_job, which runs a kernel on the native pool and settles a promise on the JS thread.
// The binding does no math; it checks only what could corrupt memory (lengths against shapes).
#pragma once
#include <napi.h>

#include <functional>
#include <string>
#include <vector>

#include "common.h"

namespace ck_binding {

// Throws a JS error of the given kind with a stable `code` property.
[[noreturn]] void throw_type(Napi::Env env, const std::string& code, const std::string& msg);
[[noreturn]] void throw_range(Napi::Env env, const std::string& code, const std::string& msg);
[[noreturn]] void throw_error(Napi::Env env, const std::string& code, const std::string& msg);

template <class T>
struct View {
  T* data = nullptr;
  size_t length = 0;  // elements
  explicit operator bool() const { return data != nullptr; }
};

// Reads the single options object an op receives: native.op({ x, w, rows, ... }).
// Every typed array read is also kept alive until the op's promise settles.
class Args {
 public:
  explicit Args(const Napi::CallbackInfo& info, const char* op);

  Napi::Env env() const { return env_; }
  const char* op() const { return op_; }

  View<float> f32(const char* name);            // required Float32Array
  View<float> f32_opt(const char* name);        // Float32Array, or absent/undefined/null
  View<int32_t> i32(const char* name);
  View<int32_t> i32_opt(const char* name);
  View<uint8_t> u8_opt(const char* name);
  View<uint16_t> u16(const char* name);
  size_t size(const char* name);                // non-negative safe integer
  size_t size_or(const char* name, size_t dflt);
  double number(const char* name);              // finite number
  double number_or(const char* name, double dflt);
  bool flag(const char* name, bool dflt);
  std::string string_or(const char* name, const std::string& dflt);
  Napi::Value value(const char* name);

  // Checks a buffer holds exactly `want` elements (want computed with overflow checks by the caller).
  template <class T>
  void expect_length(const char* name, const View<T>& v, size_t want) {
    if (v.length != want)
      throw_range(env_, "E_SHAPE", std::string(op_) + ": expected " + name + " of length " + std::to_string(want) +
                                       " but received length " + std::to_string(v.length));
  }
  // want = a*b*c..., throwing a RangeError if the product overflows.
  size_t product(std::initializer_list<size_t> dims);

  void keep(Napi::Value v) { keep_.push_back(v); }
  std::vector<Napi::Value>& kept() { return keep_; }

 private:
  Napi::Value get(const char* name);
  template <class T, napi_typedarray_type kType>
  View<T> typed(const char* name, bool required, const char* type_name);

  Napi::Env env_;
  Napi::Object obj_;
  const char* op_;
  std::vector<Napi::Value> keep_;
};

// Queues `run` on the native dispatcher with the ISA and thread count requested now. Returns a
// promise that resolves (with result(env) or undefined) or rejects with the kernel's status. While
// this thread has setQuiet(true) in effect, the job may be handed back with a later job of the same
// thread instead of on its own (see jobs.cc).
Napi::Value queue_job(Args& args, std::function<ck::ck_status()> run,
                      std::function<Napi::Value(Napi::Env)> result = nullptr);

// Op bindings register themselves: CK_EXPORT("layerNorm", LayerNorm);
bool register_export(const char* name, Napi::Value (*fn)(const Napi::CallbackInfo&));
#define CK_EXPORT(name, fn) static const bool ck_export_##fn = ::ck_binding::register_export(name, fn)

// Threads requested for new jobs.
int requested_threads();

}  // namespace ck_binding
