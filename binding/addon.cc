// Module entry: registers every op binding, and the runtime settings (ISA, threads, CPU info).
#include "addon.h"

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cmath>
#include <exception>
#include <memory>
#include <new>
#include <utility>

#include "cpu_features.h"
#include "thread_pool.h"

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

// ---- jobs ----

namespace {

struct Job;
void settle(Napi::Env env, Napi::Function, std::nullptr_t*, Job* job);
using Tsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, Job, settle>;

enum class JobState { Queued, Running, Done };

// A job's life with respect to its environment's teardown (process exit, worker.terminate()): the
// environment's typed arrays are about to be freed and its thread-safe functions closed. Each job
// registers a cleanup hook after creating its thread-safe function, so the hook runs first (hooks run
// in reverse order): it marks the job abandoned and waits while its kernel runs. An abandoned job is
// not run if still queued and never calls back into the closed environment.
std::mutex g_jobs_mu;
std::condition_variable g_jobs_cv;

struct Job {
  JobState state = JobState::Queued;  // guarded by g_jobs_mu
  bool abandoned = false;             // guarded by g_jobs_mu
  Napi::Env env;
  Napi::Promise::Deferred deferred;
  std::vector<Napi::Reference<Napi::Value>> keep;
  std::function<ck::ck_status()> run;
  std::function<Napi::Value(Napi::Env)> result;
  ck::ck_status status = ck::CK_OK;
  std::string op;
  Tsfn tsfn;
  explicit Job(Napi::Env e) : env(e), deferred(Napi::Promise::Deferred::New(e)) {}
};

void abandon_job(void* arg) {
  Job* job = static_cast<Job*>(arg);
  std::unique_lock<std::mutex> lock(g_jobs_mu);
  job->abandoned = true;
  g_jobs_cv.wait(lock, [&] { return job->state != JobState::Running; });
}

void settle_now(Napi::Env env, Job* job) {
  Napi::HandleScope scope(env);
  if (job->status == ck::CK_OK) {
    Napi::Value v = env.Undefined();
    if (job->result) {
      try {
        v = job->result(env);
      } catch (const Napi::Error& e) {
        job->deferred.Reject(e.Value());
        return;
      }
    }
    job->deferred.Resolve(v);
  } else {
    Napi::Error e = Napi::Error::New(env, job->op + ": " + ck::status_message(job->status));
    e.Set("code", Napi::String::New(env, job->status == ck::CK_ERR_NOMEM ? "E_NOMEM" : "E_NATIVE"));
    job->deferred.Reject(e.Value());
  }
}

// Runs on the JS thread. Nothing may throw out of here (it is called from C): while a worker is being
// terminated, settling the promise fails with a pending termination exception, which is dropped.
void settle(Napi::Env env, Napi::Function, std::nullptr_t*, Job* job) {
  std::unique_ptr<Job> owned(job);
  if (env == nullptr) {
    // The environment is being torn down: nothing can be settled; drop references without touching JS.
    for (auto& r : owned->keep) r.SuppressDestruct();
    return;
  }
  // The job's thread may still be between its call and its release of the thread-safe function,
  // under g_jobs_mu. Wait for it before removing the hook: once the hook is gone, nothing else stops
  // a teardown from freeing the thread-safe function under that thread.
  { std::lock_guard<std::mutex> lock(g_jobs_mu); }
  napi_remove_env_cleanup_hook(env, abandon_job, job);
  try {
    settle_now(env, owned.get());
  } catch (...) {
    // The environment is terminating (worker.terminate()): there is no one left to tell.
  }
}

std::atomic<int> g_threads{0};

}  // namespace

int requested_threads() {
  int t = g_threads.load();
  return t > 0 ? t : ck::default_threads();
}

Napi::Value queue_job(Args& args, std::function<ck::ck_status()> run, std::function<Napi::Value(Napi::Env)> result) {
  Napi::Env env = args.env();
  auto job = std::make_unique<Job>(env);
  for (Napi::Value& v : args.kept()) job->keep.push_back(Napi::Persistent(v));
  // `repeat` (benchmarks only) runs the kernel that many times in one job, so a timing of a small op
  // is not dominated by the hand-off to the pool and back.
  const size_t repeat = args.size_or("repeat", 1);
  if (repeat < 1 || repeat > 1000000) throw_range(env, "E_ARG", std::string(args.op()) + ": repeat must be in [1, 1e6]");
  if (repeat == 1) {
    job->run = std::move(run);
  } else {
    job->run = [run = std::move(run), repeat] {
      ck::ck_status s = ck::CK_OK;
      for (size_t i = 0; i < repeat && s == ck::CK_OK; ++i) s = run();
      return s;
    };
  }
  job->result = std::move(result);
  job->op = args.op();
  job->tsfn = Tsfn::New(env, std::string("clipkit.") + args.op(), 0, 1);
  Napi::Promise promise = job->deferred.Promise();
  Job* raw = job.release();
  napi_add_env_cleanup_hook(env, abandon_job, raw);
  ck::submit(ck::requested_isa(), requested_threads(), [raw] {
    {
      std::lock_guard<std::mutex> lock(g_jobs_mu);
      if (!raw->abandoned) raw->state = JobState::Running;
    }
    if (raw->state == JobState::Running) {
      try {
        raw->status = raw->run();
      } catch (const std::bad_alloc&) {
        raw->status = ck::CK_ERR_NOMEM;
      } catch (...) {
        raw->status = ck::CK_ERR_ARG;
      }
    }
    // Hand the job back under the lock, so a teardown hook cannot close the thread-safe function
    // between the check and the call (the queue is unbounded: the call never waits for JS).
    std::unique_lock<std::mutex> lock(g_jobs_mu);
    raw->state = JobState::Done;
    if (raw->abandoned) {
      // The environment is gone: drop the job without touching its handles.
      for (auto& r : raw->keep) r.SuppressDestruct();
      lock.unlock();
      g_jobs_cv.notify_all();
      delete raw;
      return;
    }
    Tsfn tsfn = raw->tsfn;
    tsfn.BlockingCall(raw);
    tsfn.Release();
    lock.unlock();
    g_jobs_cv.notify_all();
  });
  return promise;
}

// ---- registry and runtime settings ----

using Callback = Napi::Value (*)(const Napi::CallbackInfo&);
static std::vector<std::pair<const char*, Callback>>& registry() {
  static std::vector<std::pair<const char*, Callback>> r;
  return r;
}
bool register_export(const char* name, Callback fn) {
  registry().emplace_back(name, fn);
  return true;
}

static Napi::Value CpuInfo(const Napi::CallbackInfo& info) {
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

static Napi::Value SetIsa(const Napi::CallbackInfo& info) {
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

static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) throw_type(env, "E_ARG", "setThreads: expected a positive integer for threads");
  double d = info[0].As<Napi::Number>().DoubleValue();
  if (!(d >= 0) || d != std::floor(d) || d > 1024)
    throw_range(env, "E_ARG", "setThreads: expected an integer in [0, 1024] for threads (0: physical cores)");
  g_threads.store(static_cast<int>(d));
  return env.Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("cpuInfo", Napi::Function::New(env, CpuInfo, "cpuInfo"));
  exports.Set("setIsa", Napi::Function::New(env, SetIsa, "setIsa"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  for (const auto& [name, fn] : registry()) exports.Set(name, Napi::Function::New(env, fn, name));
  return exports;
}

}  // namespace ck_binding

static Napi::Object InitClipkit(Napi::Env env, Napi::Object exports) { return ck_binding::Init(env, exports); }
NODE_API_MODULE(clipkit, InitClipkit)
