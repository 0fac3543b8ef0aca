#pragma once
#include "common.h"

namespace ck {

// y[r,:] = (s[r,:] - mean_r) / sqrt(var_r + eps) * gamma + beta, with s = x (+ residual when given).
// When `sum` is given it receives s (the residual stream after the add). All [rows, dim] row-major.
// `y` may alias `x` or `residual`; `sum` may alias `x`.
struct LayerNormArgs {
  const float* x;
  const float* residual;  // optional
  const float* gamma;     // [dim]
  const float* beta;      // [dim], optional (zero)
  float* y;
  float* sum;             // optional
  size_t rows, dim;
  float eps;
};

ck_status layer_norm_f32(const LayerNormArgs& a);

}  // namespace ck
