// The library's runtime half: finding the driver and the GPU (and saying what is missing), streams,
// pool memory, copies, error reporting. The kernels live in the other files of kernels/.
#include <dlfcn.h>

#include <climits>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>

#include "common.cuh"

namespace {

thread_local std::string t_last_error;

std::mutex g_init_mutex;
bool g_ready = false;        // set once ckc_init succeeded; never reset
int g_device = -1, g_cc = 0, g_sm_count = 0;
// Each thread that runs an op must have the device current; set once per thread.
thread_local bool t_device_set = false;

// CUDA versions are 1000·major + 10·minor.
std::string cuda_version(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// The driver library is looked for by name first, so that a machine without one gets that
// sentence rather than the runtime's "insufficient driver".
ckc_status find_driver() {
  static void* handle = nullptr;  // kept open: the runtime uses the same library
  if (handle) return CKC_OK;
  handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    return ckc::fail(CKC_ERR_NO_DRIVER, std::string("no NVIDIA driver on this machine: libcuda.so.1 could not be loaded (") +
                                            (why ? why : "not found") + "); install the NVIDIA driver (one that supports CUDA " +
                                            cuda_version(CUDART_VERSION) + " or newer) to use device 'cuda'");
  }
  return CKC_OK;
}

ckc_status check_driver_version() {
  int driver = 0;
  cudaError_t e = cudaDriverGetVersion(&driver);
  if (e != cudaSuccess || driver == 0)
    return ckc::fail(CKC_ERR_NO_DRIVER, "the NVIDIA driver did not answer (cudaDriverGetVersion: " +
                                            std::string(cudaGetErrorString(e)) + ")");
  // Minor-version compatibility: a runtime of CUDA X.y runs on any driver of CUDA X.
  if (driver / 1000 < CUDART_VERSION / 1000)
    return ckc::fail(CKC_ERR_DRIVER_TOO_OLD, "the NVIDIA driver supports CUDA " + cuda_version(driver) +
                                                 "; this build of clipkit_cuda needs CUDA " + cuda_version(CUDART_VERSION / 1000 * 1000) +
                                                 " or newer: update the NVIDIA driver");
  return CKC_OK;
}

ckc_status pick_device(int device, cudaDeviceProp* prop) {
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorNoDevice || (e == cudaSuccess && count == 0))
    return ckc::fail(CKC_ERR_NO_DEVICE, "the NVIDIA driver is installed but sees no GPU (cudaGetDeviceCount: " +
                                            std::string(cudaGetErrorString(e)) + "); check CUDA_VISIBLE_DEVICES and nvidia-smi");
  if (e == cudaErrorInsufficientDriver)
    return ckc::fail(CKC_ERR_DRIVER_TOO_OLD, "the NVIDIA driver is older than this build of clipkit_cuda needs (CUDA " +
                                                 cuda_version(CUDART_VERSION) + "): update the NVIDIA driver");
  if (e != cudaSuccess) return ckc::check(e, "cudaGetDeviceCount");
  if (device < 0 || device >= count)
    return ckc::fail(CKC_ERR_NO_DEVICE, "GPU " + std::to_string(device) + " was asked for; the driver sees " +
                                            std::to_string(count) + (count == 1 ? " GPU (0)" : " GPUs (0 to " + std::to_string(count - 1) + ")"));
  if (ckc_status s = ckc::check(cudaGetDeviceProperties(prop, device), "cudaGetDeviceProperties")) return s;
  if (prop->major < 8)
    return ckc::fail(CKC_ERR_ARCH, std::string(prop->name) + " has compute capability " + std::to_string(prop->major) + "." +
                                       std::to_string(prop->minor) + "; clipkit's CUDA kernels need 8.0 or newer (A100, RTX 30xx and later)");
  return CKC_OK;
}

ckc_status ensure_device_current() {
  if (t_device_set) return CKC_OK;
  if (ckc_status s = ckc::check(cudaSetDevice(g_device), "cudaSetDevice")) return s;
  t_device_set = true;
  return CKC_OK;
}

}  // namespace

namespace ckc {

ckc_status fail(ckc_status s, const std::string& msg) {
  t_last_error = msg;
  return s;
}

ckc_status check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return CKC_OK;
  std::string msg = std::string(what) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e);
  if (e == cudaErrorMemoryAllocation) return fail(CKC_ERR_NOMEM, msg + " (device memory exhausted)");
  return fail(CKC_ERR_CUDA, msg);
}

ckc_status ready(const ckc_stream* s, const char* op) {
  if (!g_ready) return fail(CKC_ERR_NOT_INITIALISED, std::string(op) + ": ckc_init has not succeeded");
  if (!s || !s->stream) return fail(CKC_ERR_ARG, std::string(op) + ": no stream");
  return ensure_device_current();
}

int device_cc() { return g_cc; }
int device_sm_count() { return g_sm_count; }

const char* dtype_name(ckc_dtype t) {
  switch (t) {
    case CKC_F32: return "f32";
    case CKC_BF16: return "bf16";
    case CKC_F16: return "f16";
  }
  return "unknown";
}

void* Scratch::get(size_t bytes, ckc_status* status) {
  if (n_ == static_cast<int>(sizeof(p_) / sizeof(p_[0]))) {
    *status = fail(CKC_ERR_ARG, "internal: too many scratch buffers in one op");
    return nullptr;
  }
  void* p = nullptr;
  *status = check(cudaMallocAsync(&p, bytes ? bytes : 1, s_->stream), "scratch allocation");
  if (*status != CKC_OK) return nullptr;
  p_[n_++] = p;
  return p;
}

Scratch::~Scratch() {
  for (int i = 0; i < n_; i++) cudaFreeAsync(p_[i], s_->stream);
}

}  // namespace ckc

extern "C" {

CKC_API int ckc_abi_version(void) { return CKC_ABI_VERSION; }

CKC_API const char* ckc_last_error(void) { return t_last_error.c_str(); }

CKC_API const char* ckc_status_name(ckc_status s) {
  switch (s) {
    case CKC_OK: return "ok";
    case CKC_ERR_ARG: return "bad argument";
    case CKC_ERR_NOMEM: return "out of device memory";
    case CKC_ERR_NO_DRIVER: return "no NVIDIA driver";
    case CKC_ERR_DRIVER_TOO_OLD: return "NVIDIA driver too old";
    case CKC_ERR_NO_DEVICE: return "no GPU";
    case CKC_ERR_ARCH: return "GPU too old";
    case CKC_ERR_UNSUPPORTED: return "unsupported";
    case CKC_ERR_NOT_INITIALISED: return "not initialised";
    case CKC_ERR_DEVICE: return "bad data on the device";
    case CKC_ERR_CUDA: return "CUDA error";
  }
  return "unknown status";
}

CKC_API ckc_status ckc_init(int device, ckc_device_info* info) {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (g_ready && device != g_device)
    return ckc::fail(CKC_ERR_ARG, "clipkit_cuda is already using GPU " + std::to_string(g_device) + "; one GPU per process");
  cudaDeviceProp prop{};
  if (!g_ready) {
    if (ckc_status s = find_driver()) return s;
    if (ckc_status s = check_driver_version()) return s;
    if (ckc_status s = pick_device(device, &prop)) return s;
    if (ckc_status s = ckc::check(cudaSetDevice(device), "cudaSetDevice")) return s;
    // Freed blocks stay in the pool instead of going back to the driver at every synchronisation:
    // the model's activations are freed and reallocated at each pass.
    cudaMemPool_t pool;
    if (ckc_status s = ckc::check(cudaDeviceGetDefaultMemPool(&pool, device), "cudaDeviceGetDefaultMemPool")) return s;
    uint64_t keep = UINT64_MAX;
    if (ckc_status s = ckc::check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep), "cudaMemPoolSetAttribute"))
      return s;
    g_device = device;
    g_cc = prop.major * 10 + prop.minor;
    g_sm_count = prop.multiProcessorCount;
    g_ready = true;
    t_device_set = true;
  } else {
    if (ckc_status s = ensure_device_current()) return s;
    if (info && ckc::check(cudaGetDeviceProperties(&prop, g_device), "cudaGetDeviceProperties")) return CKC_ERR_CUDA;
  }
  if (info) {
    std::memset(info, 0, sizeof(*info));
    info->device = g_device;
    std::snprintf(info->name, sizeof(info->name), "%s", prop.name);
    info->cc_major = prop.major;
    info->cc_minor = prop.minor;
    info->sm_count = prop.multiProcessorCount;
    cudaMemGetInfo(&info->free_memory, &info->total_memory);
    cudaDriverGetVersion(&info->driver_version);
    info->runtime_version = CUDART_VERSION;
    info->gemm_path = g_cc == 90 ? 90 : 80;
  }
  return CKC_OK;
}

CKC_API ckc_status ckc_stream_create(ckc_stream** out) {
  if (!out) return ckc::fail(CKC_ERR_ARG, "ckc_stream_create: no output pointer");
  *out = nullptr;
  if (!g_ready) return ckc::fail(CKC_ERR_NOT_INITIALISED, "ckc_stream_create: ckc_init has not succeeded");
  if (ckc_status s = ensure_device_current()) return s;
  auto* st = new (std::nothrow) ckc_stream;
  if (!st) return ckc::fail(CKC_ERR_NOMEM, "ckc_stream_create: out of host memory");
  ckc_status s = ckc::check(cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking), "cudaStreamCreate");
  if (!s) s = ckc::check(cudaMalloc(&st->error_word, sizeof(unsigned)), "ckc_stream_create: error word");
  if (!s) s = ckc::check(cudaMemsetAsync(st->error_word, 0, sizeof(unsigned), st->stream), "ckc_stream_create: error word");
  if (!s) s = ckc::check(cudaStreamSynchronize(st->stream), "ckc_stream_create");
  if (s) {
    if (st->error_word) cudaFree(st->error_word);
    if (st->stream) cudaStreamDestroy(st->stream);
    delete st;
    return s;
  }
  *out = st;
  return CKC_OK;
}

CKC_API ckc_status ckc_stream_destroy(ckc_stream* st) {
  if (!st) return CKC_OK;
  ckc_status s = ckc::check(cudaStreamSynchronize(st->stream), "ckc_stream_destroy");
  cudaFree(st->error_word);
  cudaStreamDestroy(st->stream);
  delete st;
  return s;
}

CKC_API ckc_status ckc_stream_sync(ckc_stream* st) {
  if (ckc_status s = ckc::ready(st, "ckc_stream_sync")) return s;
  unsigned word = 0;
  if (ckc_status s = ckc::check(cudaMemcpyAsync(&word, st->error_word, sizeof(word), cudaMemcpyDeviceToHost, st->stream),
                                "ckc_stream_sync"))
    return s;
  if (ckc_status s = ckc::check(cudaStreamSynchronize(st->stream), "ckc_stream_sync")) return s;
  if (word) {
    cudaMemsetAsync(st->error_word, 0, sizeof(unsigned), st->stream);
    cudaStreamSynchronize(st->stream);
    if (word & ckc::kDeviceErrorIndex)
      return ckc::fail(CKC_ERR_DEVICE, "an index was out of range in an embedding or gather on this stream (its rows were written as zeros)");
    return ckc::fail(CKC_ERR_DEVICE, "a kernel on this stream reported bad data (code " + std::to_string(word) + ")");
  }
  return CKC_OK;
}

CKC_API ckc_status ckc_alloc(ckc_stream* st, size_t bytes, void** out) {
  if (!out) return ckc::fail(CKC_ERR_ARG, "ckc_alloc: no output pointer");
  *out = nullptr;
  if (ckc_status s = ckc::ready(st, "ckc_alloc")) return s;
  ckc_status s = ckc::check(cudaMallocAsync(out, bytes ? bytes : 1, st->stream), "ckc_alloc");
  if (s == CKC_ERR_NOMEM)
    return ckc::fail(s, "ckc_alloc: " + std::to_string(bytes) + " bytes of device memory could not be allocated (device memory exhausted)");
  return s;
}

CKC_API ckc_status ckc_free(ckc_stream* st, void* p) {
  if (!p) return CKC_OK;
  if (ckc_status s = ckc::ready(st, "ckc_free")) return s;
  return ckc::check(cudaFreeAsync(p, st->stream), "ckc_free");
}

static ckc_status copy(ckc_stream* st, void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, const char* what) {
  if (ckc_status s = ckc::ready(st, what)) return s;
  if (bytes == 0) return CKC_OK;
  if (!dst || !src) return ckc::fail(CKC_ERR_ARG, std::string(what) + ": null pointer");
  return ckc::check(cudaMemcpyAsync(dst, src, bytes, kind, st->stream), what);
}

CKC_API ckc_status ckc_copy_to_device(ckc_stream* st, void* dst, const void* src, size_t bytes) {
  return copy(st, dst, src, bytes, cudaMemcpyHostToDevice, "ckc_copy_to_device");
}
CKC_API ckc_status ckc_copy_to_host(ckc_stream* st, void* dst, const void* src, size_t bytes) {
  return copy(st, dst, src, bytes, cudaMemcpyDeviceToHost, "ckc_copy_to_host");
}
CKC_API ckc_status ckc_copy_device(ckc_stream* st, void* dst, const void* src, size_t bytes) {
  return copy(st, dst, src, bytes, cudaMemcpyDeviceToDevice, "ckc_copy_device");
}

}  // extern "C"
