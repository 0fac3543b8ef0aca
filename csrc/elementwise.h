#pragma once
#include "common.h"

namespace ck {

// Elementwise maps over n floats; y may alias x (and a/b).
enum class Unary : int { Gelu = 0, QuickGelu = 1 };
ck_status unary_f32(Unary op, const float* x, float* y, size_t n);
// The same on the calling thread alone (inside another op's parallel loop).
void unary_span_f32(Unary op, const float* x, float* y, size_t n);

// y = a + b, where b has n elements or b_period elements repeated along a (a bias over rows).
ck_status add_f32(const float* a, const float* b, size_t b_period, float* y, size_t n);

}  // namespace ck
