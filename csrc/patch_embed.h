#pragma once
#include "gemm.h"

namespace ck {

// ViT patch embedding: a conv with kernel = stride = patch over NCHW pixels, the class token prepended
// and position embeddings added:
//   y[b, 0, :]   = class_emb + pos_emb[0, :]
//   y[b, 1+q, :] = W · patch_q(pixels[b]) + bias + pos_emb[1+q, :],  q = py·(width/patch) + px
// patch_q is the [channels, patch, patch] block flattened in that order, so W is the conv weight
// [dim, channels, patch, patch] packed as a GEMM weight [dim, channels·patch·patch] (fp32 or bf16).
// height and width are multiples of patch. Uses the calling thread's ScratchSlot::kOpSecond (and the GEMM's slots).
struct PatchEmbedArgs {
  const float* pixels;       // [batch, channels, height, width]
  size_t batch, channels, height, width, patch;
  const PackedWeight* w;     // n = dim, k = channels·patch·patch
  const float* bias;         // [dim] or null
  const float* class_emb;    // [dim]
  const float* pos_emb;      // [1 + patches, dim]
  float* y;                  // [batch, 1 + patches, dim]
};

ck_status patch_embed_f32(const PatchEmbedArgs& a);

}  // namespace ck
