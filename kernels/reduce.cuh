// What the row kernels of layer_norm, elementwise, embedding, patch_embed, logits and infonce share:
// warp reductions, 16-byte-vector loads and stores of a pack of elements converted to and from fp32,
// the L2 normalisation of rows (l2_normalize, and the Â, B̂ of logits and infonce), and the host's
// size and aliasing checks.
#pragma once
#include <cstring>
#include <type_traits>

#include "common.cuh"

namespace ckc {

// Butterfly (xor) reductions: every lane ends with the same value, because each step adds the same
// two operands in both lanes (a + b == b + a exactly).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ double warp_sum(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// The widest word that divides a pack of kBytes (a pack is at most a few 16-byte vectors).
template <int kBytes>
using pack_word_t = std::conditional_t<
    kBytes % 16 == 0, uint4,
    std::conditional_t<kBytes % 8 == 0, uint2, std::conditional_t<kBytes % 4 == 0, unsigned, unsigned short>>>;

// P consecutive elements of T at p, as fp32. p must be aligned to the pack's word (min(16, P·sizeof(T))
// bytes): the callers take packs at multiples of P from 16-byte-aligned bases. kReadOnly loads go
// through the read-only data cache (ld.global.nc) and may be reordered around the kernel's stores:
// only for data no thread of the kernel writes (weights, tables).
template <class T, int P, bool kReadOnly = false>
__device__ __forceinline__ void load_pack(const T* p, float (&out)[P]) {
  constexpr int kBytes = P * static_cast<int>(sizeof(T));
  using W = pack_word_t<kBytes>;
  constexpr int kWords = kBytes / static_cast<int>(sizeof(W));
  W w[kWords];
#pragma unroll
  for (int i = 0; i < kWords; ++i) {
    if constexpr (kReadOnly) w[i] = __ldg(reinterpret_cast<const W*>(p) + i);
    else w[i] = reinterpret_cast<const W*>(p)[i];
  }
  T t[P];
  memcpy(t, w, kBytes);
#pragma unroll
  for (int j = 0; j < P; ++j) out[j] = to_f32(t[j]);
}
template <class T, int P>
__device__ __forceinline__ void load_pack_ro(const T* p, float (&out)[P]) { load_pack<T, P, true>(p, out); }

// The raw words of a pack, for loops that issue every load before converting any.
template <class T, int P>
struct RawPack {
  static constexpr int kBytes = P * static_cast<int>(sizeof(T));
  using W = pack_word_t<kBytes>;
  static constexpr int kWords = kBytes / static_cast<int>(sizeof(W));
  W w[kWords];
  __device__ __forceinline__ void load(const T* p) {
#pragma unroll
    for (int i = 0; i < kWords; ++i) w[i] = reinterpret_cast<const W*>(p)[i];
  }
  __device__ __forceinline__ void to_float(float (&out)[P]) const {
    T t[P];
    memcpy(t, w, kBytes);
#pragma unroll
    for (int j = 0; j < P; ++j) out[j] = to_f32(t[j]);
  }
};

// Stores P fp32 values as T (round to nearest even), alignment as for load_pack.
template <class T, int P>
__device__ __forceinline__ void store_pack(T* p, const float (&v)[P]) {
  constexpr int kBytes = P * static_cast<int>(sizeof(T));
  using W = pack_word_t<kBytes>;
  constexpr int kWords = kBytes / static_cast<int>(sizeof(W));
  T t[P];
#pragma unroll
  for (int j = 0; j < P; ++j) t[j] = from_f32<T>(v[j]);
  W w[kWords];
  memcpy(w, t, kBytes);
#pragma unroll
  for (int i = 0; i < kWords; ++i) reinterpret_cast<W*>(p)[i] = w[i];
}

// store_pack with the element type chosen at run time (uniform across the grid, so the branch costs
// nothing): elements [index, index + P) of the array base of type t.
template <int P>
__device__ __forceinline__ void store_pack_as(ckc_dtype t, void* base, size_t index, const float (&v)[P]) {
  switch (t) {
    case CKC_F32: store_pack<float, P>(static_cast<float*>(base) + index, v); break;
    case CKC_BF16: store_pack<__nv_bfloat16, P>(static_cast<__nv_bfloat16*>(base) + index, v); break;
    default: store_pack<__half, P>(static_cast<__half*>(base) + index, v); break;
  }
}

// Elements per pack: one 16-byte vector of T.
template <class T>
constexpr int pack_of() { return 16 / static_cast<int>(sizeof(T)); }

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// ---- L2 normalisation of rows, one warp per row (the CPU's l2_normalize_f32) ----
// Sum of squares in fp32 per lane, the lanes reduced in double; norm = sqrt(double); the row is
// multiplied by (float)(1 / norm), or by 0 for a zero row. norms[r] = (float)norm when given.
// y may alias x: a lane rereads and rewrites only its own elements, after the reduction.
// P > 1 needs x, y 16-byte aligned and dim % P == 0.
constexpr int kL2WarpsPerBlock = 8;

template <class T, int P>
__global__ void __launch_bounds__(32 * kL2WarpsPerBlock)
    l2_normalize_rows_kernel(const T* x, T* y, float* norms, size_t rows, size_t dim) {
  const unsigned lane = threadIdx.x & 31u;
  const size_t warps = static_cast<size_t>(gridDim.x) * kL2WarpsPerBlock;
  const size_t packs = dim / P;
  for (size_t r = static_cast<size_t>(blockIdx.x) * kL2WarpsPerBlock + threadIdx.x / 32; r < rows; r += warps) {
    const T* xr = x + r * dim;
    T* yr = y + r * dim;
    float q = 0.0f;
    for (size_t k = lane; k < packs; k += 32) {
      float v[P];
      load_pack<T, P>(xr + k * P, v);
#pragma unroll
      for (int j = 0; j < P; ++j) q = fmaf(v[j], v[j], q);
    }
    const double norm = sqrt(warp_sum(static_cast<double>(q)));
    if (norms && lane == 0) norms[r] = static_cast<float>(norm);
    const float scale = norm > 0 ? static_cast<float>(1.0 / norm) : 0.0f;
    for (size_t k = lane; k < packs; k += 32) {
      float v[P];
      load_pack<T, P>(xr + k * P, v);
#pragma unroll
      for (int j = 0; j < P; ++j) v[j] *= scale;
      store_pack<T, P>(yr + k * P, v);
    }
  }
}

// Queues the normalisation of rows [rows, dim] on s (picks the vector width); the caller has
// checked the arguments.
template <class T>
ckc_status launch_l2_normalize_rows(ckc_stream* s, const T* x, T* y, float* norms, size_t rows, size_t dim,
                                    const char* what) {
  constexpr int P = pack_of<T>();
  const unsigned blocks = blocks_for(rows, kL2WarpsPerBlock);
  if (dim % P == 0 && aligned16(x) && aligned16(y))
    l2_normalize_rows_kernel<T, P><<<blocks, 32 * kL2WarpsPerBlock, 0, s->stream>>>(x, y, norms, rows, dim);
  else
    l2_normalize_rows_kernel<T, 1><<<blocks, 32 * kL2WarpsPerBlock, 0, s->stream>>>(x, y, norms, rows, dim);
  return check_launch(what);
}

// [p, p + p_bytes) and [q, q + q_bytes) share a byte (for the aliasing an op cannot allow).
inline bool overlap(const void* p, size_t p_bytes, const void* q, size_t q_bytes) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(q);
  return a < b + q_bytes && b < a + p_bytes;
}

// Overflow-checked a·b.
inline bool checked_mul(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > SIZE_MAX / a) return false;
  *out = a * b;
  return true;
}

}  // namespace ckc
