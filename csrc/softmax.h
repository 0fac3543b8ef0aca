#pragma once
#include "common.h"

namespace ck {

// y[r,:] = softmax(scale·x[r,:]) over the last axis; -inf entries get exactly 0; a row that is all
// -inf gives zeros. y may alias x. [rows, dim] row-major.
ck_status softmax_f32(const float* x, float* y, size_t rows, size_t dim, float scale);

}  // namespace ck
