// The CUDA ops' glue: opening the device, streams, device buffers, copies and the ops, each an
// asynchronous job that settles its promise once the GPU is done. Argument checks that protect
// memory (a buffer too small for its shape) happen here; the library checks the rest.
//
//   cudaInit({ device?, library? }) -> Promise<info>        cudaStream() -> stream
//   cudaAlloc({ stream, bytes }) -> buffer (freed when collected)
//   cudaUpload({ stream, buffer, data, offset? }) / cudaDownload(...) -> Promise<void>
//   cudaConvert({ stream, x, xType, y, yType, n }) -> Promise<void>
//   cudaGemm({ stream, x, w, y, m, n, k, inType, yType, ... }) -> Promise<void>, cudaLayerNorm, cudaAttention
//
// Every failure is an Error with code E_CUDA whose message says what is missing or wrong.
#include <cmath>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "addon.h"
#include "cuda_library.h"

namespace ck_binding {

namespace {

const CudaLibrary* g_lib = nullptr;  // set by a successful cudaInit
std::mutex g_lib_mutex;

struct Stream {
  ckc_stream* s = nullptr;
  std::mutex mutex;  // a stream is used by one job at a time (jobs run on libuv's pool)
  ~Stream() {
    if (s) g_lib->stream_destroy(s);
  }
};

struct Buffer {
  std::shared_ptr<Stream> stream;
  void* ptr = nullptr;
  size_t bytes = 0;
};

[[noreturn]] void throw_cuda(Napi::Env env, const std::string& msg) { throw_error(env, "E_CUDA", msg); }

const CudaLibrary* lib_or_throw(Napi::Env env, const char* op) {
  std::lock_guard<std::mutex> lock(g_lib_mutex);
  if (!g_lib) throw_cuda(env, std::string(op) + ": CUDA is not open; call cudaInit first");
  return g_lib;
}

std::string failure(const CudaLibrary* lib, ckc_status s, const char* op) {
  // The library's message names the problem; its status name only when it gave none.
  std::string detail = lib->last_error();
  return std::string(op) + ": " + (detail.empty() ? std::string(lib->status_name(s)) : detail);
}

// Runs `run` (queueing work on a stream) and waits for the stream on a libuv worker thread.
class CudaJob : public Napi::AsyncWorker {
 public:
  CudaJob(Napi::Env env, const char* op, const CudaLibrary* lib, std::shared_ptr<Stream> stream,
          std::function<ckc_status()> run, std::vector<Napi::Value> keep)
      : Napi::AsyncWorker(env, op), deferred_(Napi::Promise::Deferred::New(env)), op_(op), lib_(lib),
        stream_(std::move(stream)), run_(std::move(run)) {
    for (auto& v : keep) keep_.push_back(Napi::Persistent(v));
  }
  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override {
    std::unique_lock<std::mutex> lock;
    if (stream_) lock = std::unique_lock<std::mutex>(stream_->mutex);
    ckc_status s = run_();
    if (s == CKC_OK && stream_) s = lib_->stream_sync(stream_->s);
    if (s != CKC_OK) message_ = failure(lib_, s, op_);
  }
  void OnOK() override {
    if (!message_.empty()) {
      Napi::Error e = Napi::Error::New(Env(), message_);
      e.Set("code", Napi::String::New(Env(), "E_CUDA"));
      deferred_.Reject(e.Value());
    } else {
      deferred_.Resolve(result_ ? result_(Env()) : Env().Undefined());
    }
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }
  std::function<Napi::Value(Napi::Env)> result_;

 private:
  Napi::Promise::Deferred deferred_;
  const char* op_;
  const CudaLibrary* lib_;  // not g_lib: cudaInit's job runs before g_lib is set
  std::shared_ptr<Stream> stream_;
  std::function<ckc_status()> run_;
  std::vector<Napi::Reference<Napi::Value>> keep_;
  std::string message_;
};

std::shared_ptr<Stream> stream_of(Args& a, const char* name = "stream") {
  Napi::Value v = a.value(name);
  if (!v.IsExternal()) throw_type(a.env(), "E_ARG", std::string(a.op()) + ": expected a CUDA stream (cudaStream()) for " + name);
  auto* holder = v.As<Napi::External<std::shared_ptr<Stream>>>().Data();
  if (!holder || !*holder) throw_type(a.env(), "E_ARG", std::string(a.op()) + ": " + name + " is not a CUDA stream");
  a.keep(v);
  return *holder;
}

// A device buffer argument that must hold at least `need` bytes (null when optional and absent).
void* device(Args& a, const char* name, size_t need, bool required = true) {
  Napi::Value v = a.value(name);
  if (v.IsUndefined() || v.IsNull()) {
    if (required) throw_type(a.env(), "E_ARG", std::string(a.op()) + ": expected a CUDA buffer for " + name);
    return nullptr;
  }
  if (!v.IsExternal()) throw_type(a.env(), "E_ARG", std::string(a.op()) + ": expected a CUDA buffer (cudaAlloc) for " + name);
  Buffer* b = v.As<Napi::External<Buffer>>().Data();
  if (!b || !b->ptr) throw_type(a.env(), "E_ARG", std::string(a.op()) + ": " + name + " is not a CUDA buffer");
  if (b->bytes < need)
    throw_range(a.env(), "E_SHAPE", std::string(a.op()) + ": " + name + " holds " + std::to_string(b->bytes) +
                                        " bytes; its shape needs " + std::to_string(need));
  a.keep(v);
  return b->ptr;
}

ckc_dtype dtype_of(Args& a, const char* name, const char* dflt) {
  std::string t = a.string_or(name, dflt);
  if (t == "fp32" || t == "f32") return CKC_F32;
  if (t == "bf16") return CKC_BF16;
  if (t == "fp16" || t == "f16") return CKC_F16;
  throw_type(a.env(), "E_DTYPE", std::string(a.op()) + ": " + name + " must be 'fp32', 'bf16' or 'fp16', not '" + t + "'");
}
size_t dsize(ckc_dtype t) { return t == CKC_F32 ? 4 : 2; }

// Bytes a [rows, cols] matrix with row stride ld occupies.
size_t matrix_bytes(Args& a, size_t rows, size_t cols, size_t ld, ckc_dtype t) {
  if (rows == 0 || cols == 0) return 0;
  if (ld < cols) throw_range(a.env(), "E_SHAPE", std::string(a.op()) + ": a row stride is smaller than its row");
  return a.product({rows - 1, ld}) * dsize(t) + cols * dsize(t);
}

Napi::Value queue(Args& a, std::shared_ptr<Stream> stream, std::function<ckc_status()> run) {
  auto* job = new CudaJob(a.env(), a.op(), g_lib, std::move(stream), std::move(run), a.kept());
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

Napi::Value CudaInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int device = 0;
  std::string library;
  if (info.Length() > 0 && info[0].IsObject()) {
    Args a(info, "cudaInit");
    device = static_cast<int>(a.size_or("device", 0));
    library = a.string_or("library", "");
  }
  std::string error;
  const CudaLibrary* lib = load_cuda_library(library, &error);
  if (!lib) {
    auto d = Napi::Promise::Deferred::New(env);
    Napi::Error e = Napi::Error::New(env, "cudaInit: " + error);
    e.Set("code", Napi::String::New(env, "E_CUDA"));
    d.Reject(e.Value());
    return d.Promise();
  }
  auto out = std::make_shared<ckc_device_info>();
  auto* job = new CudaJob(env, "cudaInit", lib, nullptr, [lib, device, out] { return lib->init(device, out.get()); }, {});
  job->result_ = [lib, out](Napi::Env env) {
    {
      std::lock_guard<std::mutex> lock(g_lib_mutex);
      g_lib = lib;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", out->device);
    o.Set("name", std::string(out->name));
    o.Set("computeCapability", std::to_string(out->cc_major) + "." + std::to_string(out->cc_minor));
    o.Set("smCount", out->sm_count);
    o.Set("totalMemory", static_cast<double>(out->total_memory));
    o.Set("freeMemory", static_cast<double>(out->free_memory));
    o.Set("driverVersion", out->driver_version);
    o.Set("runtimeVersion", out->runtime_version);
    o.Set("gemmPath", out->gemm_path == 90 ? "sm_90a wgmma" : "sm_80 mma.sync");
    o.Set("library", lib->path);
    return o;
  };
  Napi::Promise p = job->promise();
  job->Queue();
  return p;
}

Napi::Value CudaStream(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CudaLibrary* lib = lib_or_throw(env, "cudaStream");
  auto st = std::make_shared<Stream>();
  if (ckc_status s = lib->stream_create(&st->s)) throw_cuda(env, failure(lib, s, "cudaStream"));
  return Napi::External<std::shared_ptr<Stream>>::New(env, new std::shared_ptr<Stream>(st),
                                                      [](Napi::Env, std::shared_ptr<Stream>* p) { delete p; });
}

Napi::Value CudaAlloc(const Napi::CallbackInfo& info) {
  Args a(info, "cudaAlloc");
  const CudaLibrary* lib = lib_or_throw(a.env(), "cudaAlloc");
  auto stream = stream_of(a);
  const size_t bytes = a.size("bytes");
  auto* b = new Buffer{stream, nullptr, bytes};
  ckc_status s;
  {
    std::lock_guard<std::mutex> lock(stream->mutex);
    s = lib->alloc(stream->s, bytes, &b->ptr);
  }
  if (s) {
    delete b;
    throw_cuda(a.env(), failure(lib, s, "cudaAlloc"));
  }
  // Freed on its stream, after the work queued there that may still read it.
  return Napi::External<Buffer>::New(a.env(), b, [](Napi::Env, Buffer* b) {
    {
      std::lock_guard<std::mutex> lock(b->stream->mutex);
      g_lib->free(b->stream->s, b->ptr);
    }
    delete b;
  });
}

// cudaUpload / cudaDownload: data is any typed array; its bytes go to / come from buffer + offset.
Napi::Value Copy(const Napi::CallbackInfo& info, bool to_device) {
  Args a(info, to_device ? "cudaUpload" : "cudaDownload");
  const CudaLibrary* lib = lib_or_throw(a.env(), a.op());
  auto stream = stream_of(a);
  Napi::Value dv = a.value("data");
  if (!dv.IsTypedArray()) throw_type(a.env(), "E_ARG", std::string(a.op()) + ": expected a typed array for data");
  Napi::TypedArray ta = dv.As<Napi::TypedArray>();
  a.keep(dv);
  uint8_t* host = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  const size_t bytes = ta.ByteLength(), offset = a.size_or("offset", 0);
  uint8_t* dev = static_cast<uint8_t*>(device(a, "buffer", a.product({1, offset}) + bytes));
  return queue(a, stream, [=] {
    return to_device ? lib->copy_to_device(stream->s, dev + offset, host, bytes) : lib->copy_to_host(stream->s, host, dev + offset, bytes);
  });
}
Napi::Value CudaUpload(const Napi::CallbackInfo& info) { return Copy(info, true); }
Napi::Value CudaDownload(const Napi::CallbackInfo& info) { return Copy(info, false); }

Napi::Value CudaConvert(const Napi::CallbackInfo& info) {
  Args a(info, "cudaConvert");
  const CudaLibrary* lib = lib_or_throw(a.env(), "cudaConvert");
  auto stream = stream_of(a);
  const size_t n = a.size("n");
  const ckc_dtype xt = dtype_of(a, "xType", "fp32"), yt = dtype_of(a, "yType", "fp32");
  const void* x = device(a, "x", a.product({n, dsize(xt)}));
  void* y = device(a, "y", a.product({n, dsize(yt)}));
  return queue(a, stream, [=] { return lib->convert(stream->s, x, xt, y, yt, n); });
}

ckc_epilogue epilogue_of(Args& a) {
  std::string e = a.string_or("epilogue", "none");
  if (e == "none") return CKC_EPILOGUE_NONE;
  if (e == "gelu") return CKC_EPILOGUE_GELU;
  if (e == "quick_gelu") return CKC_EPILOGUE_QUICK_GELU;
  if (e == "residual") return CKC_EPILOGUE_RESIDUAL;
  throw_type(a.env(), "E_ARG", "cudaGemm: epilogue must be none, gelu, quick_gelu or residual, not '" + e + "'");
}
ckc_activation activation_of(Args& a) {
  std::string e = a.string_or("xAct", "none");
  if (e == "none") return CKC_ACT_NONE;
  if (e == "gelu") return CKC_ACT_GELU;
  if (e == "quick_gelu") return CKC_ACT_QUICK_GELU;
  throw_type(a.env(), "E_ARG", "cudaGemm: xAct must be none, gelu or quick_gelu, not '" + e + "'");
}
ckc_precision precision_of(Args& a) {
  std::string p = a.string_or("precision", "default");
  if (p == "default") return CKC_PRECISION_DEFAULT;
  if (p == "exact") return CKC_PRECISION_EXACT_F32;
  throw_type(a.env(), "E_ARG", std::string(a.op()) + ": precision must be 'default' or 'exact', not '" + p + "'");
}

Napi::Value CudaGemm(const Napi::CallbackInfo& info) {
  Args a(info, "cudaGemm");
  const CudaLibrary* lib = lib_or_throw(a.env(), "cudaGemm");
  auto stream = stream_of(a);
  ckc_gemm_args g{};
  g.m = a.size("m"), g.n = a.size("n"), g.k = a.size("k");
  g.in_type = dtype_of(a, "inType", "fp32");
  g.y_type = dtype_of(a, "yType", "fp32");
  g.ldx = a.size_or("ldx", g.k), g.ldw = a.size_or("ldw", g.k), g.ldy = a.size_or("ldy", g.n), g.ldr = a.size_or("ldr", g.n);
  g.epilogue = epilogue_of(a);
  g.x_act = activation_of(a);
  g.precision = precision_of(a);
  g.alpha = static_cast<float>(a.number_or("alpha", 1.0));
  g.x = device(a, "x", matrix_bytes(a, g.m, g.k, g.ldx, g.in_type));
  g.w = device(a, "w", matrix_bytes(a, g.n, g.k, g.ldw, g.in_type));
  g.y = device(a, "y", matrix_bytes(a, g.m, g.n, g.ldy, g.y_type));
  g.bias = static_cast<const float*>(device(a, "bias", a.product({g.n, 4}), false));
  g.residual = device(a, "residual", matrix_bytes(a, g.m, g.n, g.ldr, g.y_type), g.epilogue == CKC_EPILOGUE_RESIDUAL);
  return queue(a, stream, [lib, stream, g] { return lib->gemm(stream->s, &g); });
}

Napi::Value CudaLayerNorm(const Napi::CallbackInfo& info) {
  Args a(info, "cudaLayerNorm");
  const CudaLibrary* lib = lib_or_throw(a.env(), "cudaLayerNorm");
  auto stream = stream_of(a);
  ckc_layer_norm_args l{};
  l.rows = a.size("rows"), l.dim = a.size("dim");
  l.x_type = dtype_of(a, "xType", "fp32");
  l.y_type = dtype_of(a, "yType", "fp32");
  l.eps = static_cast<float>(a.number("eps"));
  const size_t n = a.product({l.rows, l.dim});
  l.x = device(a, "x", n * dsize(l.x_type));
  l.residual = device(a, "residual", n * dsize(l.x_type), false);
  l.sum = device(a, "sum", n * dsize(l.x_type), false);
  l.y = device(a, "y", n * dsize(l.y_type));
  l.gamma = static_cast<const float*>(device(a, "gamma", l.dim * 4));
  l.beta = static_cast<const float*>(device(a, "beta", l.dim * 4, false));
  return queue(a, stream, [lib, stream, l] { return lib->layer_norm(stream->s, &l); });
}

Napi::Value CudaAttention(const Napi::CallbackInfo& info) {
  Args a(info, "cudaAttention");
  const CudaLibrary* lib = lib_or_throw(a.env(), "cudaAttention");
  auto stream = stream_of(a);
  ckc_attention_args t{};
  t.batch = a.size("batch"), t.seq = a.size("seq"), t.heads = a.size("heads"), t.head_dim = a.size("headDim");
  t.q_rows = a.size_or("qRows", t.seq);
  t.dtype = dtype_of(a, "dtype", "fp32");
  t.causal = a.flag("causal", false);
  t.precision = precision_of(a);
  const size_t width = a.product({t.heads, t.head_dim});
  // Dense layouts only from JavaScript: q, k, v, out each [batch, seq, heads·D] (or packed QKV with qkvStride).
  const size_t row = a.size_or("rowStride", width);
  if (row < width) throw_range(a.env(), "E_SHAPE", "cudaAttention: rowStride is smaller than heads·headDim");
  t.scale = static_cast<float>(a.number_or("scale", 1.0 / std::sqrt(static_cast<double>(t.head_dim))));
  t.q_row_stride = t.k_row_stride = t.v_row_stride = row;
  t.q_batch_stride = t.k_batch_stride = t.v_batch_stride = a.product({t.seq, row});
  t.out_row_stride = width;
  t.out_batch_stride = a.product({t.q_rows, width});
  const size_t need = matrix_bytes(a, a.product({t.batch, t.seq}), width, row, t.dtype);
  const size_t qkv_offset = a.size_or("qkvOffset", 0);  // packed QKV: k and v start this many elements after q
  if (qkv_offset) {
    char* base = static_cast<char*>(device(a, "qkv", need + 2 * a.product({qkv_offset, dsize(t.dtype)})));
    t.q = base, t.k = base + qkv_offset * dsize(t.dtype), t.v = base + 2 * qkv_offset * dsize(t.dtype);
  } else {
    t.q = device(a, "q", need), t.k = device(a, "k", need), t.v = device(a, "v", need);
  }
  t.key_mask = static_cast<const int32_t*>(device(a, "keyMask", a.product({t.batch, t.seq, 4}), false));
  t.out = device(a, "out", a.product({t.batch, t.q_rows, width}) * dsize(t.dtype));
  return queue(a, stream, [lib, stream, t] { return lib->attention(stream->s, &t); });
}

}  // namespace

CK_EXPORT("cudaInit", CudaInit);
CK_EXPORT("cudaStream", CudaStream);
CK_EXPORT("cudaAlloc", CudaAlloc);
CK_EXPORT("cudaUpload", CudaUpload);
CK_EXPORT("cudaDownload", CudaDownload);
CK_EXPORT("cudaConvert", CudaConvert);
CK_EXPORT("cudaGemm", CudaGemm);
CK_EXPORT("cudaLayerNorm", CudaLayerNorm);
CK_EXPORT("cudaAttention", CudaAttention);

}  // namespace ck_binding
