// patch_embed: the ViT stem (csrc/patch_embed.cpp) as im2col + ckc_gemm + a finalize pass.
//   1. im2col_kernel: pixels (fp32 NCHW) → cols [batch·patches, kp] in w_type, patch q's
//      [channels, patch, patch] block flattened in that order (the conv weight's order);
//   2. ckc_gemm: g = cols · wᵀ into fp32 scratch [batch·patches, dim] (FFMA for an fp32 weight,
//      tensor cores for bf16/f16);
//   3. finalize_kernel: y[b, 0] = class_emb + pos_emb[0], y[b, 1+q] = (g + bias) + pos_emb[1+q],
//      the CPU GEMM epilogue's order of fp32 additions, rounded once to y_type.
// The tensor-core GEMM needs k a multiple of 8 and a 16-byte-aligned weight; for patch 14 k is
// 3·14² = 588, so for bf16/f16 the weight is copied once per call into scratch with its rows padded
// with zeros to kp = 592 (and the im2col columns likewise), which leaves every dot product unchanged.
#include <initializer_list>

#include "reduce.cuh"

namespace ckc {
namespace {

constexpr unsigned kThreads = 256;

// cols[row, j] for j < k the pixel of patch row's block at j = (c·patch + dy)·patch + dx; 0 for
// k <= j < kp. A block per row (grid-stride), threads along it. k < 2³¹ (checked on the host).
template <class TW>
__global__ void __launch_bounds__(kThreads) im2col_kernel(const float* pixels, size_t channels, size_t height, size_t width,
                                                          unsigned patch, size_t patches, size_t grid_w, size_t rows,
                                                          unsigned k, unsigned kp, TW* cols) {
  const unsigned pp = patch * patch;
  for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const size_t b = row / patches, q = row % patches;
    const size_t py = q / grid_w, px = q % grid_w;
    const float* img = pixels + b * channels * height * width + (py * patch) * width + px * patch;
    TW* dst = cols + row * kp;
    for (unsigned j = threadIdx.x; j < kp; j += blockDim.x) {
      float v = 0.0f;
      if (j < k) {
        const unsigned c = j / pp, rem = j - c * pp;
        const unsigned dy = rem / patch, dx = rem - dy * patch;
        v = img[(static_cast<size_t>(c) * height + dy) * width + dx];
      }
      dst[j] = from_f32<TW>(v);
    }
  }
}

// wp[o, j] = w[o, j] for j < k, 0 for k <= j < kp (2-byte elements: bf16 / f16 weights only).
__global__ void __launch_bounds__(kThreads) pad_weight_kernel(const unsigned short* w, size_t dim, unsigned k, unsigned kp,
                                                              unsigned short* wp) {
  for (size_t o = blockIdx.x; o < dim; o += gridDim.x)
    for (unsigned j = threadIdx.x; j < kp; j += blockDim.x) wp[o * kp + j] = j < k ? w[o * k + j] : static_cast<unsigned short>(0);
}

// A block per row of y [batch, 1 + patches, dim].
template <class TY>
__global__ void __launch_bounds__(kThreads) finalize_kernel(const float* g, const float* bias, const float* class_emb,
                                                            const float* pos_emb, size_t batch, size_t patches, size_t dim,
                                                            TY* y) {
  const size_t tokens = patches + 1, rows = batch * tokens;
  for (size_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const size_t b = row / tokens, t = row % tokens;
    TY* yr = y + row * dim;
    const float* pos = pos_emb + t * dim;
    if (t == 0) {
      for (size_t c = threadIdx.x; c < dim; c += blockDim.x) yr[c] = from_f32<TY>(class_emb[c] + pos[c]);
    } else {
      const float* gr = g + (b * patches + t - 1) * dim;
      for (size_t c = threadIdx.x; c < dim; c += blockDim.x) {
        float v = gr[c];
        if (bias) v += bias[c];
        v += pos[c];
        yr[c] = from_f32<TY>(v);
      }
    }
  }
}

ckc_status arg(const std::string& msg) { return fail(CKC_ERR_ARG, "ckc_patch_embed: " + msg); }

}  // namespace
}  // namespace ckc

extern "C" CKC_API ckc_status ckc_patch_embed(ckc_stream* s, const ckc_patch_embed_args* a) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_patch_embed")) return st;
  if (!a) return arg("no arguments");
  if (!valid_dtype(a->w_type)) return arg("w_type is not a dtype (f32, bf16 or f16)");
  if (!valid_dtype(a->y_type)) return arg("y_type is not a dtype (f32, bf16 or f16)");
  if (a->precision != CKC_PRECISION_DEFAULT && a->precision != CKC_PRECISION_EXACT_F32)
    return arg("precision must be CKC_PRECISION_DEFAULT or CKC_PRECISION_EXACT_F32");
  if (a->precision == CKC_PRECISION_EXACT_F32 && a->w_type != CKC_F32)
    return arg(std::string("precision EXACT_F32 needs an f32 weight (w_type is ") + dtype_name(a->w_type) + ")");
  const size_t p = a->patch, C = a->channels, H = a->height, W = a->width;
  if (p == 0) return arg("patch must be >= 1 (received 0)");
  if (C == 0) return arg("channels must be >= 1 (received 0)");
  if (a->dim == 0) return arg("dim must be >= 1 (received 0)");
  if (H == 0 || W == 0 || H % p || W % p)
    return arg("height and width must be positive multiples of patch (received " + std::to_string(H) + "x" + std::to_string(W) +
               ", patch " + std::to_string(p) + ")");
  if (a->batch == 0) return CKC_OK;
  if (!a->pixels) return arg("pixels is null");
  if (!a->w) return arg("w is null");
  if (!a->class_emb) return arg("class_emb is null");
  if (!a->pos_emb) return arg("pos_emb is null");
  if (!a->y) return arg("y is null");

  const size_t patches = (H / p) * (W / p);
  size_t pp, k, t;
  if (!checked_mul(p, p, &pp) || !checked_mul(C, pp, &k) || k >= (size_t{1} << 31))
    return arg("channels*patch² is too large (channels " + std::to_string(C) + ", patch " + std::to_string(p) + ")");
  const bool half = a->w_type != CKC_F32;
  const size_t kp = half ? (k + 7) / 8 * 8 : k;
  const bool pad = half && (kp != k || !aligned16(a->w));
  const size_t es = dtype_size(a->w_type);
  // Every size below in bytes, overflow-checked: the pixels, cols, the padded weight, g and y.
  size_t m = 0, cols_bytes = 0, w_bytes = 0, g_bytes = 0;
  auto product = [](std::initializer_list<size_t> f, size_t* out) {
    size_t v = 1;
    for (size_t x : f)
      if (!checked_mul(v, x, &v)) return false;
    *out = v;
    return true;
  };
  if (!product({a->batch, patches}, &m) || !product({a->batch, C, H, W, 4}, &t) || !product({m, kp, es}, &cols_bytes) ||
      !product({a->dim, kp, es}, &w_bytes) || !product({m, a->dim, 4}, &g_bytes) || !product({a->batch, patches + 1, a->dim, 4}, &t))
    return arg("the sizes overflow (batch " + std::to_string(a->batch) + ", " + std::to_string(patches) + " patches, dim " +
               std::to_string(a->dim) + ")");

  Scratch scratch(s);
  ckc_status st = CKC_OK;
  void* cols = scratch.get(cols_bytes, &st);
  if (!cols) return st;
  float* g = static_cast<float*>(scratch.get(g_bytes, &st));
  if (!g) return st;
  const void* w = a->w;
  if (pad) {
    void* wp = scratch.get(w_bytes, &st);
    if (!wp) return st;
    pad_weight_kernel<<<blocks_for(a->dim, 1), kThreads, 0, s->stream>>>(static_cast<const unsigned short*>(a->w), a->dim,
                                                                        static_cast<unsigned>(k), static_cast<unsigned>(kp),
                                                                        static_cast<unsigned short*>(wp));
    if ((st = check_launch("ckc_patch_embed: weight padding"))) return st;
    w = wp;
  }

  st = with_dtype(a->w_type, [&](auto tag) -> ckc_status {
    using TW = decltype(tag);
    im2col_kernel<TW><<<blocks_for(m, 1), kThreads, 0, s->stream>>>(a->pixels, C, H, W, static_cast<unsigned>(p), patches, W / p, m,
                                                                     static_cast<unsigned>(k), static_cast<unsigned>(kp),
                                                                     static_cast<TW*>(cols));
    return check_launch("ckc_patch_embed: im2col");
  });
  if (st) return st;

  ckc_gemm_args ga{};
  ga.x = cols;
  ga.ldx = kp;
  ga.w = w;
  ga.ldw = kp;
  ga.in_type = a->w_type;
  ga.bias = nullptr;  // added by finalize_kernel, in the epilogue's order
  ga.epilogue = CKC_EPILOGUE_NONE;
  ga.residual = nullptr;
  ga.ldr = a->dim;
  ga.y = g;
  ga.ldy = a->dim;
  ga.y_type = CKC_F32;
  ga.m = m;
  ga.n = a->dim;
  ga.k = kp;
  ga.alpha = 1.0f;
  ga.x_act = CKC_ACT_NONE;
  ga.precision = a->precision;
  if ((st = ckc_gemm(s, &ga))) return st;

  return with_dtype(a->y_type, [&](auto tag) -> ckc_status {
    using TY = decltype(tag);
    finalize_kernel<TY><<<blocks_for(a->batch * (patches + 1), 1), kThreads, 0, s->stream>>>(
        g, a->bias, a->class_emb, a->pos_emb, a->batch, patches, a->dim, static_cast<TY*>(a->y));
    return check_launch("ckc_patch_embed: finalize");
  });
}
