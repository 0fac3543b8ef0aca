#pragma once
#include "common.h"

namespace ck {

// Normalised matmul logits (CLIP): logits[i, j] = scale · Â[i]·B̂[j] with Â, B̂ the rows of
// A [n, d] and B [m, d] divided by their L2 norms (a zero row normalises to zeros, never NaN).
// All row-major and contiguous. The normalised rows live in the calling thread's ScratchSlot::kOp
// (the GEMM's slots are its own); the norms are written out when a_norm / b_norm are given.
struct LogitsArgs {
  const float* a;   // [n, d]
  const float* b;   // [m, d]
  float* logits;    // [n, m]
  float* a_norm;    // [n], optional: ‖A[i]‖
  float* b_norm;    // [m], optional: ‖B[j]‖
  size_t n, m, d;
  float scale;
};

ck_status logits_f32(const LogitsArgs& args);

// The pieces, for ops that need the normalised rows afterwards (InfoNCE's backward): writes
// Â into a_hat [n, d] and B̂ into b_hat [m, d], then logits = scale·Â·B̂ᵀ.
ck_status logits_into_f32(const LogitsArgs& args, float* a_hat, float* b_hat);

}  // namespace ck
