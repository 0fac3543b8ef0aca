// infonce: the symmetric softmax-InfoNCE loss of CLIP and its gradients from the embeddings
// (csrc/infonce.cpp), in this order on the stream:
//   1. Â, B̂ and the norms (l2_normalize_rows_kernel, reduce.cuh), logits = scale·Â·B̂ᵀ (ckc_gemm, FFMA);
//   2. row_stats_kernel (a warp per row) and col_stats_kernel (32 columns × 16 row lanes per block):
//      max, 1/Σexp(x − max) and logsumexp, the sums of exponentials in double;
//   3. grad_kernel (a warp per row): G = (p_row + p_col − 2δ)/(2n) as exp(x − max)·(1/Σ), and
//      per row Σ G∘logits in double;
//   4. finish_kernel (one block, a fixed reduction order): loss, dL/dscale, dL/dlog_scale → result;
//   5. dÂ = scale·G·B̂, dB̂ = scale·Gᵀ·Â with ckc_gemm (x·wᵀ, so w = B̂ᵀ, Âᵀ and x = Gᵀ are built by
//      transpose_kernel), then norm_backward_kernel: dA = (dÂ − Â(Â·dÂ))/‖A‖ in place (0 for a zero row).
// Every reduction has a fixed order, so results do not vary from run to run.
#include <cmath>

#include "reduce.cuh"

namespace ckc {
namespace {

constexpr unsigned kWarps = 8;           // warps per block of the warp-per-row kernels
constexpr unsigned kColBlock = 32;       // columns per block of col_stats_kernel
constexpr unsigned kColLanes = 16;       // row lanes per column in col_stats_kernel
constexpr unsigned kFinishThreads = 256;

__device__ __forceinline__ size_t warp_row0() { return static_cast<size_t>(blockIdx.x) * kWarps + threadIdx.x / 32; }
__device__ __forceinline__ size_t warp_rows() { return static_cast<size_t>(gridDim.x) * kWarps; }

// Row i of x [n, n]: max m, inv = (float)(1/Σ exp(x − m)), lse = m + log Σ (double).
__global__ void __launch_bounds__(32 * kWarps) row_stats_kernel(const float* x, size_t n, float* max, float* inv, double* lse) {
  const unsigned lane = threadIdx.x & 31u;
  for (size_t i = warp_row0(); i < n; i += warp_rows()) {
    const float* row = x + i * n;
    float m = -INFINITY;
    for (size_t j = lane; j < n; j += 32) m = fmaxf(m, row[j]);
    m = warp_max(m);
    double sum = 0;
    for (size_t j = lane; j < n; j += 32) sum += static_cast<double>(expf(row[j] - m));
    sum = warp_sum(sum);
    if (lane == 0) {
      max[i] = m;
      inv[i] = static_cast<float>(1.0 / sum);
      lse[i] = static_cast<double>(m) + log(sum);
    }
  }
}

// The same down the columns: block (kColBlock, kColLanes), thread (c, l) takes rows l, l + kColLanes, ...
// of column c (a warp reads 32 adjacent columns of one row: coalesced). Partial sums are combined
// in lane order.
__global__ void __launch_bounds__(kColBlock* kColLanes) col_stats_kernel(const float* x, size_t n, float* max, float* inv, double* lse) {
  __shared__ float smax[kColLanes][kColBlock];
  __shared__ double ssum[kColLanes][kColBlock];
  const unsigned tx = threadIdx.x, ty = threadIdx.y;
  for (size_t c0 = static_cast<size_t>(blockIdx.x) * kColBlock; c0 < n; c0 += static_cast<size_t>(gridDim.x) * kColBlock) {
    const size_t col = c0 + tx;
    const bool live = col < n;
    float m = -INFINITY;
    if (live)
      for (size_t i = ty; i < n; i += kColLanes) m = fmaxf(m, x[i * n + col]);
    smax[ty][tx] = m;
    __syncthreads();
    if (ty == 0) {
      for (unsigned l = 1; l < kColLanes; ++l) m = fmaxf(m, smax[l][tx]);
      smax[0][tx] = m;
    }
    __syncthreads();
    m = smax[0][tx];
    double sum = 0;
    if (live)
      for (size_t i = ty; i < n; i += kColLanes) sum += static_cast<double>(expf(x[i * n + col] - m));
    ssum[ty][tx] = sum;
    __syncthreads();
    if (ty == 0 && live) {
      double total = ssum[0][tx];
      for (unsigned l = 1; l < kColLanes; ++l) total += ssum[l][tx];
      max[col] = m;
      inv[col] = static_cast<float>(1.0 / total);
      lse[col] = static_cast<double>(m) + log(total);
    }
    __syncthreads();  // smax, ssum are rewritten by the next column block
  }
}

// g[i, j] = (exp(x − rmax_i)·rinv_i + exp(x − cmax_j)·cinv_j)·h − 2h·δij with h = (float)(1/(2n)), as
// the CPU rounds it (products kept apart from the sum: __fmul_rn stops their contraction into an
// FMA). part[i] = Σ_j g'[i, j]·x[i, j] − x[i, i]/n in double, g' before the diagonal target, which
// is Σ_j g[i, j]·x[i, j]. g may be null (only part is wanted).
__global__ void __launch_bounds__(32 * kWarps) grad_kernel(const float* x, size_t n, const float* rmax, const float* rinv,
                                                           const float* cmax, const float* cinv, float* g, double* part) {
  const unsigned lane = threadIdx.x & 31u;
  const float h = static_cast<float>(0.5 / static_cast<double>(n));
  for (size_t i = warp_row0(); i < n; i += warp_rows()) {
    const float* row = x + i * n;
    const float rm = rmax[i], ri = rinv[i];
    double sgx = 0;
    for (size_t j = lane; j < n; j += 32) {
      const float v = row[j];
      const float pr = __fmul_rn(expf(v - rm), ri);
      const float pc = __fmul_rn(expf(v - cmax[j]), cinv[j]);
      const float gv = (pr + pc) * h;
      sgx += static_cast<double>(gv) * static_cast<double>(v);
      if (g) g[i * n + j] = j == i ? gv - 2.0f * h : gv;
    }
    sgx = warp_sum(sgx);
    if (lane == 0) part[i] = sgx - static_cast<double>(row[i]) / static_cast<double>(n);
  }
}

// One block: ce = Σ_i (rlse_i − x_ii) + (clse_i − x_ii), loss = ce/(2n); s = Σ part = Σ G∘logits;
// result = {loss, s/scale, s} (logits carry the scale: Σ G∘logits = scale·Σ G∘(Â·B̂ᵀ)).
__global__ void __launch_bounds__(kFinishThreads) finish_kernel(const float* x, size_t n, const double* rlse, const double* clse,
                                                                const double* part, float scale, double* result) {
  __shared__ double sce[kFinishThreads], sgl[kFinishThreads];
  double ce = 0, gl = 0;
  for (size_t i = threadIdx.x; i < n; i += kFinishThreads) {
    const double xii = x[i * n + i];
    ce += (rlse[i] - xii) + (clse[i] - xii);
    gl += part[i];
  }
  sce[threadIdx.x] = ce;
  sgl[threadIdx.x] = gl;
  __syncthreads();
  for (unsigned w = kFinishThreads / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) {
      sce[threadIdx.x] += sce[threadIdx.x + w];
      sgl[threadIdx.x] += sgl[threadIdx.x + w];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    result[0] = sce[0] / (2.0 * static_cast<double>(n));
    result[1] = sgl[0] / static_cast<double>(scale);
    result[2] = sgl[0];
  }
}

// dst [cols, rows] = srcᵀ for src [rows, cols], through 32×32 tiles in shared memory (padded a
// column against bank conflicts). Block (32, 8).
__global__ void __launch_bounds__(256) transpose_kernel(const float* src, size_t rows, size_t cols, float* dst) {
  __shared__ float tile[32][33];
  for (size_t r0 = static_cast<size_t>(blockIdx.y) * 32; r0 < rows; r0 += static_cast<size_t>(gridDim.y) * 32)
    for (size_t c0 = static_cast<size_t>(blockIdx.x) * 32; c0 < cols; c0 += static_cast<size_t>(gridDim.x) * 32) {
      for (unsigned k = threadIdx.y; k < 32; k += 8) {
        const size_t r = r0 + k, c = c0 + threadIdx.x;
        if (r < rows && c < cols) tile[k][threadIdx.x] = src[r * cols + c];
      }
      __syncthreads();
      for (unsigned k = threadIdx.y; k < 32; k += 8) {
        const size_t c = c0 + k, r = r0 + threadIdx.x;
        if (r < rows && c < cols) dst[c * rows + r] = tile[threadIdx.x][k];
      }
      __syncthreads();
    }
}

// g[i] ← (g[i] − ŷ[i]·(ŷ[i]·g[i])) · (1/‖x_i‖), 0 where ‖x_i‖ = 0; a warp per row of [n, d]. The dot
// from fp32 lane partials reduced in double, then used in fp32 as on the CPU. A lane rereads and
// rewrites only its own elements.
__global__ void __launch_bounds__(32 * kWarps) norm_backward_kernel(const float* hat, const float* norm, float* g, size_t n, size_t d) {
  const unsigned lane = threadIdx.x & 31u;
  for (size_t i = warp_row0(); i < n; i += warp_rows()) {
    const float* y = hat + i * d;
    float* gi = g + i * d;
    float acc = 0.0f;
    for (size_t c = lane; c < d; c += 32) acc = fmaf(y[c], gi[c], acc);
    const float dot = static_cast<float>(warp_sum(static_cast<double>(acc)));
    const float rn = norm[i] > 0.0f ? 1.0f / norm[i] : 0.0f;
    for (size_t c = lane; c < d; c += 32) gi[c] = fmaf(-y[c], dot, gi[c]) * rn;
  }
}

ckc_status launch_transpose(ckc_stream* s, const float* src, size_t rows, size_t cols, float* dst) {
  const dim3 grid(blocks_for(cols, 32), blocks_for(rows, 32, 65535u));
  transpose_kernel<<<grid, dim3(32, 8), 0, s->stream>>>(src, rows, cols, dst);
  return check_launch("ckc_infonce: transpose");
}

// y [m, n_out] = alpha · x [m, k] · w[n_out, k]ᵀ, fp32 with FFMA products.
ckc_status gemm_exact(ckc_stream* s, const float* x, const float* w, float* y, size_t m, size_t n_out, size_t k, float alpha) {
  ckc_gemm_args g{};
  g.x = x;
  g.ldx = k;
  g.w = w;
  g.ldw = k;
  g.in_type = CKC_F32;
  g.bias = nullptr;
  g.epilogue = CKC_EPILOGUE_NONE;
  g.residual = nullptr;
  g.ldr = n_out;
  g.y = y;
  g.ldy = n_out;
  g.y_type = CKC_F32;
  g.m = m;
  g.n = n_out;
  g.k = k;
  g.alpha = alpha;
  g.x_act = CKC_ACT_NONE;
  g.precision = CKC_PRECISION_EXACT_F32;
  return ckc_gemm(s, &g);
}

// Pieces of one scratch allocation, each on a 256-byte boundary.
struct Layout {
  size_t bytes = 0;
  bool ok = true;
  size_t take(size_t count, size_t elem) {
    size_t b;
    if (!checked_mul(count, elem, &b) || b > SIZE_MAX - 255 || bytes > SIZE_MAX - (b + 255) / 256 * 256) {
      ok = false;
      return 0;
    }
    const size_t at = bytes;
    bytes += (b + 255) / 256 * 256;
    return at;
  }
};

}  // namespace
}  // namespace ckc

extern "C" CKC_API ckc_status ckc_infonce(ckc_stream* s, const ckc_infonce_args* a) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_infonce")) return st;
  if (!a) return fail(CKC_ERR_ARG, "ckc_infonce: no arguments");
  if (a->n == 0) return fail(CKC_ERR_ARG, "ckc_infonce: n must be >= 1 (received 0)");
  if (a->d == 0) return fail(CKC_ERR_ARG, "ckc_infonce: d must be >= 1 (received 0)");
  if (!a->a || !a->b) return fail(CKC_ERR_ARG, std::string("ckc_infonce: ") + (!a->a ? "a" : "b") + " is null");
  if (!a->logits) return fail(CKC_ERR_ARG, "ckc_infonce: logits is null");
  if (!a->result) return fail(CKC_ERR_ARG, "ckc_infonce: result is null");
  if (!(a->scale > 0.0f) || !std::isfinite(a->scale))
    return fail(CKC_ERR_ARG, "ckc_infonce: scale must be finite and > 0 (received " + std::to_string(a->scale) + ")");
  const size_t n = a->n, d = a->d;
  size_t nn, nd;
  if (!checked_mul(n, n, &nn) || !checked_mul(n, d, &nd) || nn > SIZE_MAX / 8 || nd > SIZE_MAX / 8)
    return fail(CKC_ERR_ARG, "ckc_infonce: n*n or n*d overflows (n " + std::to_string(n) + ", d " + std::to_string(d) + ")");

  const bool want_g = a->d_logits || a->d_a || a->d_b;
  Layout lay;
  const size_t o_ahat = lay.take(nd, 4), o_bhat = lay.take(nd, 4);
  const size_t o_anorm = lay.take(n, 4), o_bnorm = lay.take(n, 4);
  const size_t o_rmax = lay.take(n, 4), o_rinv = lay.take(n, 4), o_cmax = lay.take(n, 4), o_cinv = lay.take(n, 4);
  const size_t o_rlse = lay.take(n, 8), o_clse = lay.take(n, 8), o_part = lay.take(n, 8);
  const size_t o_g = want_g && !a->d_logits ? lay.take(nn, 4) : 0;
  const size_t o_gt = a->d_b ? lay.take(nn, 4) : 0;
  const size_t o_aht = a->d_b ? lay.take(nd, 4) : 0;
  const size_t o_bht = a->d_a ? lay.take(nd, 4) : 0;
  if (!lay.ok) return fail(CKC_ERR_ARG, "ckc_infonce: the scratch size overflows (n " + std::to_string(n) + ", d " + std::to_string(d) + ")");

  Scratch scratch(s);
  ckc_status st = CKC_OK;
  char* base = static_cast<char*>(scratch.get(lay.bytes, &st));
  if (!base) return st;
  auto f32 = [&](size_t off) { return reinterpret_cast<float*>(base + off); };
  auto f64 = [&](size_t off) { return reinterpret_cast<double*>(base + off); };
  float *a_hat = f32(o_ahat), *b_hat = f32(o_bhat), *a_norm = f32(o_anorm), *b_norm = f32(o_bnorm);
  float *rmax = f32(o_rmax), *rinv = f32(o_rinv), *cmax = f32(o_cmax), *cinv = f32(o_cinv);
  double *rlse = f64(o_rlse), *clse = f64(o_clse), *part = f64(o_part);
  float* g = a->d_logits ? a->d_logits : want_g ? f32(o_g) : nullptr;

  // 1. Normalised rows and logits.
  if ((st = launch_l2_normalize_rows<float>(s, a->a, a_hat, a_norm, n, d, "ckc_infonce: normalise a"))) return st;
  if ((st = launch_l2_normalize_rows<float>(s, a->b, b_hat, b_norm, n, d, "ckc_infonce: normalise b"))) return st;
  if ((st = gemm_exact(s, a_hat, b_hat, a->logits, n, n, d, a->scale))) return st;

  // 2–4. Statistics, G and the scalars.
  const unsigned row_blocks = blocks_for(n, kWarps);
  row_stats_kernel<<<row_blocks, 32 * kWarps, 0, s->stream>>>(a->logits, n, rmax, rinv, rlse);
  if ((st = check_launch("ckc_infonce: row statistics"))) return st;
  col_stats_kernel<<<blocks_for(n, kColBlock), dim3(kColBlock, kColLanes), 0, s->stream>>>(a->logits, n, cmax, cinv, clse);
  if ((st = check_launch("ckc_infonce: column statistics"))) return st;
  grad_kernel<<<row_blocks, 32 * kWarps, 0, s->stream>>>(a->logits, n, rmax, rinv, cmax, cinv, g, part);
  if ((st = check_launch("ckc_infonce: gradient of the logits"))) return st;
  finish_kernel<<<1, kFinishThreads, 0, s->stream>>>(a->logits, n, rlse, clse, part, a->scale, a->result);
  if ((st = check_launch("ckc_infonce: loss"))) return st;

  // 5. Through the GEMM and the normalisation.
  const unsigned nb_blocks = blocks_for(n, kWarps);
  if (a->d_a) {
    float* b_hat_t = f32(o_bht);
    if ((st = launch_transpose(s, b_hat, n, d, b_hat_t))) return st;
    if ((st = gemm_exact(s, g, b_hat_t, a->d_a, n, d, n, a->scale))) return st;
    norm_backward_kernel<<<nb_blocks, 32 * kWarps, 0, s->stream>>>(a_hat, a_norm, a->d_a, n, d);
    if ((st = check_launch("ckc_infonce: normalisation backward (a)"))) return st;
  }
  if (a->d_b) {
    float *g_t = f32(o_gt), *a_hat_t = f32(o_aht);
    if ((st = launch_transpose(s, g, n, n, g_t))) return st;
    if ((st = launch_transpose(s, a_hat, n, d, a_hat_t))) return st;
    if ((st = gemm_exact(s, g_t, a_hat_t, a->d_b, n, d, n, a->scale))) return st;
    norm_backward_kernel<<<nb_blocks, 32 * kWarps, 0, s->stream>>>(b_hat, b_norm, a->d_b, n, d);
    if ((st = check_launch("ckc_infonce: normalisation backward (b)"))) return st;
  }
  return CKC_OK;
}
