// patch_embed: im2col of one image's patches into scratch ([patches, channels·patch·patch], threads
// split the patches), then one GEMM per image whose residual epilogue adds the position embeddings
// (rows 1.. of pos_emb line up with the patch rows of y), then the class-token row.
#include "patch_embed.h"

#include <algorithm>
#include <cstring>

#include "thread_pool.h"

namespace ck {

ck_status patch_embed_f32(const PatchEmbedArgs& a) {
  const size_t p = a.patch, C = a.channels, H = a.height, W = a.width;
  if (!a.w || p == 0 || H % p || W % p) return CK_ERR_ARG;
  const size_t gh = H / p, gw = W / p, patches = gh * gw, dim = a.w->n, kdim = C * p * p;
  if (a.w->k != kdim) return CK_ERR_ARG;
  if (a.batch == 0 || dim == 0) return CK_OK;
  if (!a.pixels || !a.class_emb || !a.pos_emb || !a.y) return CK_ERR_ARG;
  size_t bytes;
  if (!mul_ok(patches, kdim * sizeof(float), &bytes)) return CK_ERR_NOMEM;
  float* cols = static_cast<float*>(pool().scratch(ThreadPool::current_thread(), std::max<size_t>(bytes, 64), ScratchSlot::kOpSecond));
  if (!cols) return CK_ERR_NOMEM;

  for (size_t b = 0; b < a.batch; ++b) {
    const float* img = a.pixels + b * C * H * W;
    pool().parallel_ranges(patches, [&](size_t q0, size_t q1, int) {
      for (size_t q = q0; q < q1; ++q) {
        const size_t py = q / gw, px = q % gw;
        float* dst = cols + q * kdim;
        for (size_t c = 0; c < C; ++c)
          for (size_t dy = 0; dy < p; ++dy)
            std::memcpy(dst + (c * p + dy) * p, img + (c * H + py * p + dy) * W + px * p, p * sizeof(float));
      }
    });
    float* yb = a.y + b * (1 + patches) * dim;
    // Y = cols·Wᵀ + bias + pos_emb rows 1.., written after the class row.
    GemmArgs g;
    g.x = cols;
    g.ldx = kdim;
    g.w = a.w;
    g.bias = a.bias;
    g.epilogue = Epilogue::Residual;
    g.residual = a.pos_emb + dim;
    g.ldr = dim;
    g.y = yb + dim;
    g.ldy = dim;
    g.m = patches;
    if (ck_status s = gemm(g); s != CK_OK) return s;
    for (size_t i = 0; i < dim; ++i) yb[i] = a.class_emb[i] + a.pos_emb[i];
  }
  return CK_OK;
}

}  // namespace ck
