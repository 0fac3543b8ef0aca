// layer_norm: s = x (+ residual), y = (s − mean) / sqrt(var + eps) · gamma + beta, sum ← s
// (csrc/layer_norm.cpp). Statistics as on the CPU: a first mean, then Σ(s − mean0) and Σ(s − mean0)²
// around it, so that a large mean with a small spread keeps its accuracy; all in fp32 over the
// unrounded fp32 s (sum, when it is bf16/f16, receives s rounded, the statistics do not see that).
//
// layer_norm_regs_kernel: a group of G threads per row (a warp, or up to 16 warps for long rows),
//   each holding up to K 16-byte packs of the row in registers: one read of x and residual, one write
//   of y and sum. Needs dim % pack == 0 and every pointer 16-byte aligned.
// layer_norm_loop_kernel: a block per row, three passes that recompute s from x and residual; any
//   dim and alignment.
#include "reduce.cuh"

namespace ckc {
namespace {

// A thread holds at most 32 fp32 values of its row (8 packs of fp32, 4 of bf16/f16), and a row at
// most kMaxGroup threads: with the raw words of x and residual in flight, that fits the 128
// registers __launch_bounds__(kMaxGroup) leaves each thread, without spills.
constexpr int kMaxValuesPerThread = 32;
constexpr unsigned kMaxGroup = 512;      // threads per row at most (one block)
constexpr unsigned kRowsBlock = 256;     // threads per block when a row needs fewer
constexpr unsigned kLoopThreads = 256;

struct LnParams {
  const void* x;
  const void* residual;  // or null
  const float* gamma;
  const float* beta;     // or null (zero)
  void* y;
  ckc_dtype y_type;
  void* sum;             // or null
  size_t rows, dim;
  float eps;
};

// Sums (a, b) over the blockDim.x threads of this row (threadIdx.y picks the row); every thread of
// the row gets the same result. The branch on blockDim.x is uniform across the block, so the
// barriers are reached by all its threads.
__device__ __forceinline__ float2 row_sum2(float a, float b, float2* red) {
  a = warp_sum(a);
  b = warp_sum(b);
  if (blockDim.x > 32) {
    const unsigned warps = blockDim.x / 32, base = threadIdx.y * warps;
    if ((threadIdx.x & 31u) == 0) red[base + threadIdx.x / 32] = make_float2(a, b);
    __syncthreads();
    float2 t = red[base];
    for (unsigned w = 1; w < warps; ++w) {
      t.x += red[base + w].x;
      t.y += red[base + w].y;
    }
    __syncthreads();  // red is reused by the next reduction
    a = t.x;
    b = t.y;
  }
  return make_float2(a, b);
}

struct RowStats {
  float mean, rstd;
};

// mean0 from Σs, then the corrected mean and the variance from Σc and Σc² around mean0, with the
// CPU's operations (division by (float)dim for mean0, multiplication by 1/dim after).
__device__ __forceinline__ float mean_of(float total, size_t dim) { return total / static_cast<float>(dim); }
__device__ __forceinline__ RowStats stats_of(float mean0, float2 cq, size_t dim, float eps) {
  const float inv_d = 1.0f / static_cast<float>(dim);
  const float dm = cq.x * inv_d;
  const float var = fmaxf(0.0f, cq.y * inv_d - dm * dm);
  return RowStats{mean0 + dm, 1.0f / sqrtf(var + eps)};
}

// Block (G, R): G threads per row, R rows per block; thread x of a row holds packs x, x + G, ...
template <class TX, int K>
__global__ void __launch_bounds__(kMaxGroup) layer_norm_regs_kernel(LnParams p) {
  constexpr int P = pack_of<TX>();
  __shared__ float2 red[32];
  const TX* x = static_cast<const TX*>(p.x);
  const TX* res = static_cast<const TX*>(p.residual);
  TX* sum = static_cast<TX*>(p.sum);
  // Offsets inside a row fit 32 bits (dim <= kMaxGroup·kMaxValuesPerThread): pack k of this thread
  // is at element (threadIdx.x + k·G)·P of the row.
  const unsigned G = blockDim.x;
  const unsigned packs = static_cast<unsigned>(p.dim / P);
  const size_t row_step = static_cast<size_t>(gridDim.x) * blockDim.y;
  // The loop bound depends on blockIdx alone: every thread of a block runs the same iterations.
  for (size_t r0 = static_cast<size_t>(blockIdx.x) * blockDim.y; r0 < p.rows; r0 += row_step) {
    const size_t r = r0 + threadIdx.y;
    const bool live = r < p.rows;
    const size_t base = r * p.dim;
    float v[K][P];
    {
      // Every load is issued before any store (sum may alias x), so they all overlap.
      RawPack<TX, P> xr[K], rr[K];
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const unsigned pk = threadIdx.x + k * G;
        if (live && pk < packs) {
          xr[k].load(x + base + pk * P);
          if (res) rr[k].load(res + base + pk * P);
        }
      }
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const unsigned pk = threadIdx.x + k * G;
        if (live && pk < packs) {
          xr[k].to_float(v[k]);
          if (res) {
            float t[P];
            rr[k].to_float(t);
#pragma unroll
            for (int j = 0; j < P; ++j) v[k][j] += t[j];
          }
        } else {
#pragma unroll
          for (int j = 0; j < P; ++j) v[k][j] = 0.0f;
        }
      }
    }
    if (sum && live) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const unsigned pk = threadIdx.x + k * G;
        if (pk < packs) store_pack<TX, P>(sum + base + pk * P, v[k]);
      }
    }
    float s1 = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k)
#pragma unroll
      for (int j = 0; j < P; ++j) s1 += v[k][j];  // packs past the row hold 0
    const float mean0 = mean_of(row_sum2(s1, 0.0f, red).x, p.dim);
    float c = 0.0f, q = 0.0f;
#pragma unroll
    for (int k = 0; k < K; ++k) {
      const unsigned pk = threadIdx.x + k * G;
      if (pk < packs) {
#pragma unroll
        for (int j = 0; j < P; ++j) {
          const float t = v[k][j] - mean0;
          c += t;
          q = fmaf(t, t, q);
        }
      }
    }
    const RowStats st = stats_of(mean0, row_sum2(c, q, red), p.dim, p.eps);
    if (live) {
#pragma unroll
      for (int k = 0; k < K; ++k) {
        const unsigned pk = threadIdx.x + k * G;
        if (pk < packs) {
          float g[P], b[P], out[P];
          load_pack_ro<float, P>(p.gamma + pk * P, g);
          if (p.beta) load_pack_ro<float, P>(p.beta + pk * P, b);
#pragma unroll
          for (int j = 0; j < P; ++j) out[j] = fmaf((v[k][j] - st.mean) * st.rstd, g[j], p.beta ? b[j] : 0.0f);
          store_pack_as<P>(p.y_type, p.y, base + pk * P, out);
        }
      }
    }
  }
}

// A block per row, s recomputed in each pass. The last pass reads x[i] and residual[i] and writes
// sum[i] and y[i] in the same thread, after the statistics' barriers, so the aliasing the interface
// allows is safe.
template <class TX>
__global__ void __launch_bounds__(kLoopThreads) layer_norm_loop_kernel(LnParams p) {
  __shared__ float2 red[32];
  const TX* x = static_cast<const TX*>(p.x);
  const TX* res = static_cast<const TX*>(p.residual);
  TX* sum = static_cast<TX*>(p.sum);
  for (size_t r = blockIdx.x; r < p.rows; r += gridDim.x) {
    const size_t base = r * p.dim;
    auto s_at = [&](size_t i) {
      float v = to_f32(x[base + i]);
      if (res) v += to_f32(res[base + i]);
      return v;
    };
    float s1 = 0.0f;
    for (size_t i = threadIdx.x; i < p.dim; i += blockDim.x) s1 += s_at(i);
    const float mean0 = mean_of(row_sum2(s1, 0.0f, red).x, p.dim);
    float c = 0.0f, q = 0.0f;
    for (size_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
      const float t = s_at(i) - mean0;
      c += t;
      q = fmaf(t, t, q);
    }
    const RowStats st = stats_of(mean0, row_sum2(c, q, red), p.dim, p.eps);
    for (size_t i = threadIdx.x; i < p.dim; i += blockDim.x) {
      const float v = s_at(i);
      if (sum) sum[base + i] = from_f32<TX>(v);
      const float out[1] = {fmaf((v - st.mean) * st.rstd, __ldg(p.gamma + i), p.beta ? __ldg(p.beta + i) : 0.0f)};
      store_pack_as<1>(p.y_type, p.y, base + i, out);
    }
  }
}

}  // namespace
}  // namespace ckc

extern "C" CKC_API ckc_status ckc_layer_norm(ckc_stream* s, const ckc_layer_norm_args* a) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_layer_norm")) return st;
  if (!a) return fail(CKC_ERR_ARG, "ckc_layer_norm: no arguments");
  if (!valid_dtype(a->x_type)) return fail(CKC_ERR_ARG, "ckc_layer_norm: x_type is not a dtype (f32, bf16 or f16)");
  if (!valid_dtype(a->y_type)) return fail(CKC_ERR_ARG, "ckc_layer_norm: y_type is not a dtype (f32, bf16 or f16)");
  if (a->rows == 0) return CKC_OK;
  if (a->dim == 0) return fail(CKC_ERR_ARG, "ckc_layer_norm: dim must be >= 1 (received 0)");
  if (!a->x) return fail(CKC_ERR_ARG, "ckc_layer_norm: x is null");
  if (!a->gamma) return fail(CKC_ERR_ARG, "ckc_layer_norm: gamma is null");
  if (!a->y) return fail(CKC_ERR_ARG, "ckc_layer_norm: y is null");
  if (!(a->eps >= 0.0f)) return fail(CKC_ERR_ARG, "ckc_layer_norm: eps must be >= 0 (received " + std::to_string(a->eps) + ")");
  size_t elems, bytes;
  if (!checked_mul(a->rows, a->dim, &elems) || !checked_mul(elems, 4, &bytes))
    return fail(CKC_ERR_ARG, "ckc_layer_norm: rows*dim overflows (" + std::to_string(a->rows) + "*" + std::to_string(a->dim) + ")");

  if (a->x_type != a->y_type) {
    // With elements of another size, y's row r would lie over other rows of x (or residual), which
    // other threads are still reading.
    const size_t x_bytes = elems * dtype_size(a->x_type), y_bytes = elems * dtype_size(a->y_type);
    if (overlap(a->y, y_bytes, a->x, x_bytes) || (a->residual && overlap(a->y, y_bytes, a->residual, x_bytes)))
      return fail(CKC_ERR_ARG, std::string("ckc_layer_norm: y overlaps x or residual, which is allowed only when y_type equals x_type (") +
                                   dtype_name(a->y_type) + " vs " + dtype_name(a->x_type) + ")");
  }
  const LnParams p{a->x, a->residual, a->gamma, a->beta, a->y, a->y_type, a->sum, a->rows, a->dim, a->eps};
  return with_dtype(a->x_type, [&](auto tag) -> ckc_status {
    using TX = decltype(tag);
    constexpr size_t P = pack_of<TX>();
    const bool vec = a->dim % P == 0 && aligned16(a->x) && aligned16(a->y) && aligned16(a->gamma) &&
                     (!a->residual || aligned16(a->residual)) && (!a->sum || aligned16(a->sum)) &&
                     (!a->beta || aligned16(a->beta));
    constexpr int kMaxK = kMaxValuesPerThread / static_cast<int>(P);  // packs a thread holds at most
    const size_t packs = a->dim / P;
    // The smallest group (a warp, doubling) that holds the row in kMaxK packs a thread.
    unsigned group = 32;
    while (packs > static_cast<size_t>(group) * kMaxK && group < kMaxGroup) group *= 2;
    if (vec && packs <= static_cast<size_t>(group) * kMaxK) {
      const size_t per = (packs + group - 1) / group;
      const unsigned rows_per_block = group >= kRowsBlock ? 1 : kRowsBlock / group;
      const dim3 block(group, rows_per_block);
      const unsigned grid = blocks_for(a->rows, rows_per_block);
      if (per <= kMaxK / 4) layer_norm_regs_kernel<TX, kMaxK / 4><<<grid, block, 0, s->stream>>>(p);
      else if (per <= kMaxK / 2) layer_norm_regs_kernel<TX, kMaxK / 2><<<grid, block, 0, s->stream>>>(p);
      else layer_norm_regs_kernel<TX, kMaxK><<<grid, block, 0, s->stream>>>(p);
    } else {
      layer_norm_loop_kernel<TX><<<blocks_for(a->rows, 1), kLoopThreads, 0, s->stream>>>(p);
    }
    return check_launch("ckc_layer_norm");
  });
}
