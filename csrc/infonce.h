#pragma once
#include "common.h"

namespace ck {

// Symmetric softmax-InfoNCE (CLIP's contrastive loss) over square logits x [n, n], targets on the
// diagonal (row i matches column i):
//   loss = ½ (1/n Σ_i CE(row i, i) + 1/n Σ_j CE(column j, j)),   CE(v, t) = logsumexp(v) − v[t]
//   dL/dx[i, j] = (softmax_row(x)[i, j] + softmax_col(x)[i, j] − 2·δij) / (2n)
// Log-sum-exp subtracts the row (column) max; sums of exponentials and the loss are accumulated in
// double. d_logits is optional. n >= 1.
ck_status infonce_loss_f32(const float* logits, size_t n, float* d_logits, double* loss);

// The same loss from the embeddings: logits = scale·Â·B̂ᵀ (rows of A, B [n, d] L2-normalised), and
// the gradients through the normalisation (G = dL/dlogits):
//   dÂ = scale·G·B̂,  dB̂ = scale·Gᵀ·Â,  dA[i] = (dÂ[i] − Â[i]·(Â[i]·dÂ[i])) / ‖A[i]‖  (0 for a zero row)
//   dL/dscale = Σ G∘(Â·B̂ᵀ),  dL/dlog_scale = scale·dL/dscale  (for a stored log scale, scale = e^log_scale)
struct InfonceArgs {
  const float* a;     // [n, d]
  const float* b;     // [n, d]
  size_t n, d;
  float scale;        // the multiplier of the cosine similarities (> 0)
  float* logits;      // out [n, n]
  float* d_logits;    // out [n, n]
  float* d_a;         // out [n, d]
  float* d_b;         // out [n, d]
};
struct InfonceResult {
  double loss = 0, d_scale = 0, d_log_scale = 0;
};
ck_status infonce_f32(const InfonceArgs& args, InfonceResult* out);

}  // namespace ck
