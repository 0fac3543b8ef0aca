#pragma once
#include "common.h"

namespace ck {

// y[r,:] = x[r,:] / ‖x[r,:]‖₂ (a zero row stays zero); norms[r] = ‖x[r,:]‖₂ when given. y may alias x.
ck_status l2_normalize_f32(const float* x, float* y, float* norms, size_t rows, size_t dim);

}  // namespace ck
