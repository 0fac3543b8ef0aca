// Shared vocabulary of the CUDA kernels: the stream object behind ckc_stream, error reporting,
// dtype loads and stores, the activations. Nothing here is part of the C interface.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "clipkit_cuda.h"

struct ckc_stream {
  cudaStream_t stream = nullptr;
  // Device word a kernel sets (atomicOr) when it meets bad data it cannot report otherwise (an id
  // out of range); ckc_stream_sync reads and clears it. Bits: CKC_DEVICE_ERROR_*.
  unsigned* error_word = nullptr;
};

namespace ckc {

constexpr unsigned kDeviceErrorIndex = 1u;  // an embedding / gather index out of range

// Records msg as this thread's ckc_last_error() and returns s.
ckc_status fail(ckc_status s, const std::string& msg);
// CKC_OK for cudaSuccess; else records "<what>: <CUDA error name>: <string>" and maps the error
// (out of memory -> CKC_ERR_NOMEM, the rest -> CKC_ERR_CUDA).
ckc_status check(cudaError_t e, const char* what);
// After a launch: the launch error, if any (cudaGetLastError).
inline ckc_status check_launch(const char* what) { return check(cudaGetLastError(), what); }
// CKC_ERR_NOT_INITIALISED unless ckc_init succeeded; CKC_ERR_ARG for a null stream.
ckc_status ready(const ckc_stream* s, const char* op);
// The compute capability of the initialised device, as 10·major + minor (e.g. 90, 80, 89).
int device_cc();
int device_sm_count();

// Stream-ordered scratch from the pool: freed (stream-ordered) when the guard goes out of scope,
// so work queued before that point may use it.
class Scratch {
 public:
  explicit Scratch(ckc_stream* s) : s_(s) {}
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  // Returns null (with the error recorded and *status set) when the pool is exhausted.
  void* get(size_t bytes, ckc_status* status);

 private:
  ckc_stream* s_;
  void* p_[8] = {};
  int n_ = 0;
};

inline size_t dtype_size(ckc_dtype t) { return t == CKC_F32 ? 4 : 2; }
inline bool valid_dtype(ckc_dtype t) { return t == CKC_F32 || t == CKC_BF16 || t == CKC_F16; }
const char* dtype_name(ckc_dtype t);

// Element loads and stores in fp32 whatever the storage type (round to nearest even on store).
template <class T> __device__ __forceinline__ float to_f32(T v);
template <> __device__ __forceinline__ float to_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ float to_f32<__nv_bfloat16>(__nv_bfloat16 v) { return __bfloat162float(v); }
template <> __device__ __forceinline__ float to_f32<__half>(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }

// The activations with the CPU path's formulas (csrc/simd/vmath.h): erf GELU and QuickGELU.
// GELU as x/2 · erfc(-x/√2): no cancellation for large negative x, where 1 + erf(x/√2) loses digits.
__device__ __forceinline__ float gelu(float x) { return 0.5f * x * erfcf(-x * 0.70710678118654752f); }
__device__ __forceinline__ float quick_gelu(float x) { return x / (1.0f + expf(-1.702f * x)); }
__device__ __forceinline__ float activate(ckc_activation a, float x) {
  return a == CKC_ACT_GELU ? gelu(x) : a == CKC_ACT_QUICK_GELU ? quick_gelu(x) : x;
}

// Calls f.template operator()<T>() with T the storage type of t (float, __nv_bfloat16, __half).
template <class F>
ckc_status with_dtype(ckc_dtype t, F&& f) {
  switch (t) {
    case CKC_F32: return f(float{});
    case CKC_BF16: return f(__nv_bfloat16{});
    case CKC_F16: return f(__half{});
  }
  return fail(CKC_ERR_ARG, "unknown dtype");
}

inline unsigned blocks_for(size_t n, unsigned per_block, unsigned cap = 65535u * 32u) {
  size_t b = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : b > cap ? cap : b);
}

}  // namespace ckc
