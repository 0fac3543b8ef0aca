// Argument readers for the op bindings (the Args class of addon.h), and the JS errors they throw.
#include "addon.h"

#include <cmath>

namespace ck_binding {

static void set_code(Napi::Error& e, const std::string& code) { e.Set("code", Napi::String::New(e.Env(), code)); }

void throw_type(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::TypeError::New(env, msg);
  set_code(e, code);
  throw e;
}
void throw_range(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::RangeError::New(env, msg);
  set_code(e, code);
  throw e;
}
void throw_error(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error e = Napi::Error::New(env, msg);
  set_code(e, code);
  throw e;
}

Args::Args(const Napi::CallbackInfo& info, const char* op) : env_(info.Env()), op_(op) {
  if (info.Length() < 1 || !info[0].IsObject())
    throw_type(env_, "E_ARG", std::string(op) + ": expected one options object");
  obj_ = info[0].As<Napi::Object>();
}

Napi::Value Args::get(const char* name) { return obj_.Get(name); }
Napi::Value Args::value(const char* name) { return get(name); }

template <class T, napi_typedarray_type kType>
View<T> Args::typed(const char* name, bool required, const char* type_name) {
  Napi::Value v = get(name);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) throw_type(env_, "E_DTYPE", std::string(op_) + ": expected " + type_name + " for " + name + " but received nothing");
    return {};
  }
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != kType)
    throw_type(env_, "E_DTYPE", std::string(op_) + ": expected " + type_name + " for " + name);
  Napi::TypedArray ta = v.As<Napi::TypedArray>();
  View<T> out;
  out.length = ta.ElementLength();
  Napi::ArrayBuffer ab = ta.ArrayBuffer();
  out.data = reinterpret_cast<T*>(static_cast<uint8_t*>(ab.Data()) + ta.ByteOffset());
  if (out.data == nullptr && out.length == 0) {
    // Empty (or detached) arrays have no storage; a kernel given a length-0 view never reads it.
    static T dummy[1];
    out.data = dummy;
  }
  keep_.push_back(v);
  return out;
}

View<float> Args::f32(const char* name) { return typed<float, napi_float32_array>(name, true, "Float32Array"); }
View<float> Args::f32_opt(const char* name) { return typed<float, napi_float32_array>(name, false, "Float32Array"); }
View<int32_t> Args::i32(const char* name) { return typed<int32_t, napi_int32_array>(name, true, "Int32Array"); }
View<int32_t> Args::i32_opt(const char* name) { return typed<int32_t, napi_int32_array>(name, false, "Int32Array"); }
View<uint8_t> Args::u8_opt(const char* name) { return typed<uint8_t, napi_uint8_array>(name, false, "Uint8Array"); }
View<uint16_t> Args::u16(const char* name) { return typed<uint16_t, napi_uint16_array>(name, true, "Uint16Array"); }

size_t Args::size(const char* name) {
  Napi::Value v = get(name);
  if (!v.IsNumber()) throw_type(env_, "E_ARG", std::string(op_) + ": expected a non-negative integer for " + name);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 9007199254740991.0)
    throw_range(env_, "E_ARG", std::string(op_) + ": expected a non-negative integer for " + name + " but received " +
                                   v.ToString().Utf8Value());
  return static_cast<size_t>(d);
}

size_t Args::size_or(const char* name, size_t dflt) {
  Napi::Value v = get(name);
  return v.IsUndefined() ? dflt : size(name);
}

double Args::number(const char* name) {
  Napi::Value v = get(name);
  if (!v.IsNumber()) throw_type(env_, "E_ARG", std::string(op_) + ": expected a finite number for " + name);
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d))
    throw_range(env_, "E_ARG", std::string(op_) + ": expected a finite number for " + name + " but received " +
                                   v.ToString().Utf8Value());
  return d;
}

double Args::number_or(const char* name, double dflt) {
  Napi::Value v = get(name);
  return v.IsUndefined() ? dflt : number(name);
}

bool Args::flag(const char* name, bool dflt) {
  Napi::Value v = get(name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) throw_type(env_, "E_ARG", std::string(op_) + ": expected a boolean for " + name);
  return v.As<Napi::Boolean>().Value();
}

std::string Args::string_or(const char* name, const std::string& dflt) {
  Napi::Value v = get(name);
  if (v.IsUndefined()) return dflt;
  if (!v.IsString()) throw_type(env_, "E_ARG", std::string(op_) + ": expected a string for " + name);
  return v.As<Napi::String>().Utf8Value();
}

size_t Args::product(std::initializer_list<size_t> dims) {
  size_t p = 1;
  for (size_t d : dims)
    if (!ck::mul_ok(p, d, &p)) throw_range(env_, "E_SHAPE", std::string(op_) + ": shape is too large");
  return p;
}

}  // namespace ck_binding
