// Elementwise ops between the big kernels (csrc/elementwise.cpp, l2_normalize.cpp, softmax.cpp) and
// dtype conversion. All compute in fp32 and round once to the storage type (nearest even).
//   unary_kernel, convert_kernel: grid-stride over 16-byte packs, then the tail element by element.
//   add_kernel: a 2-D grid over rows of b_period elements (b stays in cache; no 64-bit modulo per
//     element), packs along the row; a short period is repeated to make a row of ~1024 elements.
//   softmax_rows_kernel, l2_normalize_rows_kernel (reduce.cuh): a warp per row.
// A pack path needs every pointer 16-byte aligned (and, for add, b_period a multiple of the pack);
// otherwise the same kernels run with packs of one element.
#include "reduce.cuh"

namespace ckc {
namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kSoftmaxWarps = 8;

// ---- GELU / QuickGELU ----
// The op is a kernel argument (uniform across the grid), not a template: one kernel per dtype.
__device__ __forceinline__ float unary_apply(ckc_unary op, float v) {
  return op == CKC_UNARY_GELU ? gelu(v) : quick_gelu(v);
}

template <class T, int P>
__global__ void __launch_bounds__(kThreads) unary_kernel(ckc_unary op, const T* x, T* y, size_t n) {
  const size_t packs = n / P;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (size_t i = tid; i < packs; i += stride) {
    float v[P];
    load_pack<T, P>(x + i * P, v);
#pragma unroll
    for (int j = 0; j < P; ++j) v[j] = unary_apply(op, v[j]);
    store_pack<T, P>(y + i * P, v);
  }
  for (size_t i = packs * P + tid; i < n; i += stride) y[i] = from_f32<T>(unary_apply(op, to_f32(x[i])));
}

// ---- add, b repeated every `period` elements ----
// Rows of row_len elements (a multiple of period: period itself, or for a short period enough of
// them to fill a block): row r is [r·row_len, min(n, (r+1)·row_len)), and element c of a row adds
// b[c % period]. Block (tx, ty) covers tx packs of ty rows. The modulo is taken only when
// row_len > period, where c < row_len < 2³² (so in 32 bits).
template <class T, int P>
__global__ void __launch_bounds__(kThreads) add_kernel(const T* a, const T* b, T* y, size_t n, size_t period, size_t row_len) {
  const size_t rows = (n + row_len - 1) / row_len;
  const size_t col_stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t col0 = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const bool wrap = row_len > period;
  for (size_t r = static_cast<size_t>(blockIdx.y) * blockDim.y + threadIdx.y; r < rows;
       r += static_cast<size_t>(gridDim.y) * blockDim.y) {
    const size_t start = r * row_len;
    const size_t len = n - start < row_len ? n - start : row_len;
    const size_t packs = len / P;
    for (size_t c = col0; c < packs; c += col_stride) {
      const size_t bc = wrap ? static_cast<unsigned>(c * P) % static_cast<unsigned>(period) : c * P;
      float va[P], vb[P];
      load_pack<T, P>(a + start + c * P, va);
      load_pack<T, P>(b + bc, vb);
#pragma unroll
      for (int j = 0; j < P; ++j) va[j] += vb[j];
      store_pack<T, P>(y + start + c * P, va);
    }
    for (size_t c = packs * P + col0; c < len; c += col_stride) {
      const size_t bc = wrap ? static_cast<unsigned>(c) % static_cast<unsigned>(period) : c;
      y[start + c] = from_f32<T>(to_f32(a[start + c]) + to_f32(b[bc]));
    }
  }
}

// ---- softmax over rows, max subtracted; a row whose max is −inf (all masked) becomes zeros ----
// Three reads of the row (max, Σexp, write); the last recomputes exp(x − max), the same fp32 value
// the sum used, as the CPU stores it and rescales. y may alias x: a lane rewrites only its own elements.
template <class T, int P>
__global__ void __launch_bounds__(32 * kSoftmaxWarps) softmax_rows_kernel(const T* x, T* y, size_t rows, size_t dim) {
  const unsigned lane = threadIdx.x & 31u;
  const size_t packs = dim / P;
  const size_t warps = static_cast<size_t>(gridDim.x) * kSoftmaxWarps;
  for (size_t r = static_cast<size_t>(blockIdx.x) * kSoftmaxWarps + threadIdx.x / 32; r < rows; r += warps) {
    const T* xr = x + r * dim;
    T* yr = y + r * dim;
    float m = -INFINITY;
    for (size_t k = lane; k < packs; k += 32) {
      float v[P];
      load_pack<T, P>(xr + k * P, v);
#pragma unroll
      for (int j = 0; j < P; ++j) m = fmaxf(m, v[j]);
    }
    m = warp_max(m);
    if (m == -INFINITY) {  // the same in every lane: the branch is uniform
      const float zero[P] = {};
      for (size_t k = lane; k < packs; k += 32) store_pack<T, P>(yr + k * P, zero);
      continue;
    }
    float sum = 0.0f;
    for (size_t k = lane; k < packs; k += 32) {
      float v[P];
      load_pack<T, P>(xr + k * P, v);
#pragma unroll
      for (int j = 0; j < P; ++j) sum += expf(v[j] - m);
    }
    const float inv = 1.0f / warp_sum(sum);
    for (size_t k = lane; k < packs; k += 32) {
      float v[P];
      load_pack<T, P>(xr + k * P, v);
#pragma unroll
      for (int j = 0; j < P; ++j) v[j] = expf(v[j] - m) * inv;
      store_pack<T, P>(yr + k * P, v);
    }
  }
}

// ---- dtype conversion: exact widening to fp32, then one rounding (nearest even) ----
constexpr int kConvertPack = 8;  // 16 bytes of bf16/f16, two 16-byte vectors of fp32

template <class TS, class TD, int P>
__global__ void __launch_bounds__(kThreads) convert_kernel(const TS* src, TD* dst, size_t n) {
  const size_t packs = n / P;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  const size_t tid = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (size_t i = tid; i < packs; i += stride) {
    float v[P];
    load_pack<TS, P>(src + i * P, v);
    store_pack<TD, P>(dst + i * P, v);
  }
  for (size_t i = packs * P + tid; i < n; i += stride) dst[i] = from_f32<TD>(to_f32(src[i]));
}

template <class TS, class TD>
void launch_convert(ckc_stream* s, const void* src, void* dst, size_t n) {
  const TS* x = static_cast<const TS*>(src);
  TD* y = static_cast<TD*>(dst);
  if (aligned16(src) && aligned16(dst))
    convert_kernel<TS, TD, kConvertPack><<<blocks_for(n / kConvertPack + 1, kThreads), kThreads, 0, s->stream>>>(x, y, n);
  else
    convert_kernel<TS, TD, 1><<<blocks_for(n, kThreads), kThreads, 0, s->stream>>>(x, y, n);
}

// Checks shared by the row ops: the dtype, the pointers and rows·dim·4 bytes fitting size_t.
ckc_status check_rows(const char* op, const void* x, const void* y, size_t rows, size_t dim, ckc_dtype dtype) {
  if (!valid_dtype(dtype)) return fail(CKC_ERR_ARG, std::string(op) + ": dtype is not a dtype (f32, bf16 or f16)");
  if (rows == 0) return CKC_OK;
  if (dim == 0) return fail(CKC_ERR_ARG, std::string(op) + ": dim must be >= 1 (received 0)");
  if (!x) return fail(CKC_ERR_ARG, std::string(op) + ": x is null");
  if (!y) return fail(CKC_ERR_ARG, std::string(op) + ": y is null");
  size_t elems, bytes;
  if (!checked_mul(rows, dim, &elems) || !checked_mul(elems, 4, &bytes))
    return fail(CKC_ERR_ARG, std::string(op) + ": rows*dim overflows (" + std::to_string(rows) + "*" + std::to_string(dim) + ")");
  return CKC_OK;
}

ckc_status check_n(const char* op, size_t n) {
  if (n > SIZE_MAX / 4) return fail(CKC_ERR_ARG, std::string(op) + ": n is too large (" + std::to_string(n) + ")");
  return CKC_OK;
}

}  // namespace
}  // namespace ckc

extern "C" CKC_API ckc_status ckc_unary_op(ckc_stream* s, ckc_unary op, const void* x, void* y, size_t n, ckc_dtype dtype) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_unary_op")) return st;
  if (op != CKC_UNARY_GELU && op != CKC_UNARY_QUICK_GELU)
    return fail(CKC_ERR_ARG, "ckc_unary_op: op must be CKC_UNARY_GELU or CKC_UNARY_QUICK_GELU (received " +
                                 std::to_string(static_cast<int>(op)) + ")");
  if (!valid_dtype(dtype)) return fail(CKC_ERR_ARG, "ckc_unary_op: dtype is not a dtype (f32, bf16 or f16)");
  if (ckc_status st = check_n("ckc_unary_op", n)) return st;
  if (n == 0) return CKC_OK;
  if (!x || !y) return fail(CKC_ERR_ARG, std::string("ckc_unary_op: ") + (!x ? "x" : "y") + " is null");
  return with_dtype(dtype, [&](auto tag) -> ckc_status {
    using T = decltype(tag);
    constexpr int P = pack_of<T>();
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    if (aligned16(x) && aligned16(y))
      unary_kernel<T, P><<<blocks_for(n / P + 1, kThreads), kThreads, 0, s->stream>>>(op, xt, yt, n);
    else
      unary_kernel<T, 1><<<blocks_for(n, kThreads), kThreads, 0, s->stream>>>(op, xt, yt, n);
    return check_launch("ckc_unary_op");
  });
}

extern "C" CKC_API ckc_status ckc_add(ckc_stream* s, const void* a, const void* b, size_t b_period, void* y, size_t n,
                                      ckc_dtype dtype) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_add")) return st;
  if (!valid_dtype(dtype)) return fail(CKC_ERR_ARG, "ckc_add: dtype is not a dtype (f32, bf16 or f16)");
  if (ckc_status st = check_n("ckc_add", n)) return st;
  if (n == 0) return CKC_OK;
  if (!a || !b || !y) return fail(CKC_ERR_ARG, std::string("ckc_add: ") + (!a ? "a" : !b ? "b" : "y") + " is null");
  if (b_period == 0) return fail(CKC_ERR_ARG, "ckc_add: b_period must be >= 1 (n, or more, for a b of n elements)");
  const size_t period = b_period < n ? b_period : n;
  const size_t es = dtype_size(dtype);
  // A repeated b is read by every row: y must not write over it.
  if (period < n && overlap(y, n * es, b, period * es))
    return fail(CKC_ERR_ARG, "ckc_add: y overlaps b, which repeats every " + std::to_string(period) + " elements (only a may alias y)");
  return with_dtype(dtype, [&](auto tag) -> ckc_status {
    using T = decltype(tag);
    constexpr int P = pack_of<T>();
    const T* at = static_cast<const T*>(a);
    const T* bt = static_cast<const T*>(b);
    T* yt = static_cast<T*>(y);
    const bool vec = aligned16(a) && aligned16(b) && aligned16(y) && (period == n || period % P == 0);
    // A short period is repeated within a row so that a row fills a block's threads.
    constexpr size_t kShort = 1024;
    const size_t row_len = period >= kShort ? period : period * (kShort / period);
    const size_t rows = (n + row_len - 1) / row_len;
    const size_t row_packs = vec ? row_len / P : row_len;
    const size_t want = row_packs > 0 ? row_packs : 1;  // a row shorter than a pack is all tail
    // Threads along a row: whole warps covering it, at most kThreads; the rest of the block takes rows.
    const unsigned tx = static_cast<unsigned>(want >= kThreads ? kThreads : (want + 31) / 32 * 32);
    const unsigned ty = kThreads / tx;
    const dim3 block(tx, ty);
    const dim3 grid(blocks_for(want, tx), blocks_for(rows, ty, 65535u));
    if (vec) add_kernel<T, P><<<grid, block, 0, s->stream>>>(at, bt, yt, n, period, row_len);
    else add_kernel<T, 1><<<grid, block, 0, s->stream>>>(at, bt, yt, n, period, row_len);
    return check_launch("ckc_add");
  });
}

extern "C" CKC_API ckc_status ckc_l2_normalize(ckc_stream* s, const void* x, void* y, size_t rows, size_t dim, ckc_dtype dtype) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_l2_normalize")) return st;
  if (ckc_status st = check_rows("ckc_l2_normalize", x, y, rows, dim, dtype)) return st;
  if (rows == 0) return CKC_OK;
  return with_dtype(dtype, [&](auto tag) -> ckc_status {
    using T = decltype(tag);
    return launch_l2_normalize_rows<T>(s, static_cast<const T*>(x), static_cast<T*>(y), nullptr, rows, dim, "ckc_l2_normalize");
  });
}

extern "C" CKC_API ckc_status ckc_softmax(ckc_stream* s, const void* x, void* y, size_t rows, size_t dim, ckc_dtype dtype) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_softmax")) return st;
  if (ckc_status st = check_rows("ckc_softmax", x, y, rows, dim, dtype)) return st;
  if (rows == 0) return CKC_OK;
  return with_dtype(dtype, [&](auto tag) -> ckc_status {
    using T = decltype(tag);
    constexpr int P = pack_of<T>();
    const T* xt = static_cast<const T*>(x);
    T* yt = static_cast<T*>(y);
    const unsigned blocks = blocks_for(rows, kSoftmaxWarps);
    if (dim % P == 0 && aligned16(x) && aligned16(y))
      softmax_rows_kernel<T, P><<<blocks, 32 * kSoftmaxWarps, 0, s->stream>>>(xt, yt, rows, dim);
    else
      softmax_rows_kernel<T, 1><<<blocks, 32 * kSoftmaxWarps, 0, s->stream>>>(xt, yt, rows, dim);
    return check_launch("ckc_softmax");
  });
}

extern "C" CKC_API ckc_status ckc_convert(ckc_stream* s, const void* src, ckc_dtype src_type, void* dst, ckc_dtype dst_type,
                                          size_t n) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_convert")) return st;
  if (!valid_dtype(src_type)) return fail(CKC_ERR_ARG, "ckc_convert: src_type is not a dtype (f32, bf16 or f16)");
  if (!valid_dtype(dst_type)) return fail(CKC_ERR_ARG, "ckc_convert: dst_type is not a dtype (f32, bf16 or f16)");
  if (ckc_status st = check_n("ckc_convert", n)) return st;
  if (n == 0) return CKC_OK;
  if (!src || !dst) return fail(CKC_ERR_ARG, std::string("ckc_convert: ") + (!src ? "src" : "dst") + " is null");
  if (src_type == dst_type) {
    if (src == dst) return CKC_OK;
    return check(cudaMemcpyAsync(dst, src, n * dtype_size(src_type), cudaMemcpyDeviceToDevice, s->stream), "ckc_convert");
  }
  // Threads convert different elements in place of each other's: the buffers must be apart.
  if (overlap(src, n * dtype_size(src_type), dst, n * dtype_size(dst_type)))
    return fail(CKC_ERR_ARG, "ckc_convert: src and dst overlap (a conversion between dtypes is not done in place)");
  return with_dtype(src_type, [&](auto src_tag) -> ckc_status {
    using TS = decltype(src_tag);
    return with_dtype(dst_type, [&](auto dst_tag) -> ckc_status {
      using TD = decltype(dst_tag);
      if constexpr (!std::is_same_v<TS, TD>) launch_convert<TS, TD>(s, src, dst, n);
      return check_launch("ckc_convert");
    });
  });
}
