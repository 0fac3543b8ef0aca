// Elementwise ops a forward pass needs between the big kernels: GELU (erf form), QuickGELU, add
// (same shape, or a row vector broadcast over rows). Memory-bound: one streaming pass, split into
// contiguous chunks across threads.
#ifndef CK_ISA_PASS
#include "elementwise.h"

#define CK_SIMD_SELF "elementwise.cpp"
#include "isa_passes.h"

namespace ck {

using UnaryFn = void (*)(Unary, const float*, float*, size_t);
using AddFn = void (*)(const float*, const float*, size_t, float*, size_t, size_t);
static const IsaTable<UnaryFn> kUnary = {pass_scalar::unary_span, CK_X86_OR_NULL(pass_avx2::unary_span),
                                         CK_X86_OR_NULL(pass_avx512::unary_span), CK_NEON_OR_NULL(pass_neon::unary_span)};
static const IsaTable<AddFn> kAdd = {pass_scalar::add_span, CK_X86_OR_NULL(pass_avx2::add_span),
                                     CK_X86_OR_NULL(pass_avx512::add_span), CK_NEON_OR_NULL(pass_neon::add_span)};

// Chunks of 16 Ki floats (64 KiB): enough work per task to hide the hand-off, small enough to balance.
constexpr size_t kChunk = 16384;

ck_status unary_f32(Unary op, const float* x, float* y, size_t n) {
  if (n && (!x || !y)) return CK_ERR_ARG;
  UnaryFn fn = kUnary.pick();
  pool().parallel_for((n + kChunk - 1) / kChunk, [&](size_t t, int) {
    size_t b = t * kChunk, e = std::min(n, b + kChunk);
    fn(op, x + b, y + b, e - b);
  });
  return CK_OK;
}

void unary_span_f32(Unary op, const float* x, float* y, size_t n) { kUnary.pick()(op, x, y, n); }

ck_status add_f32(const float* a, const float* b, size_t b_period, float* y, size_t n) {
  if (n && (!a || !b || !y || b_period == 0)) return CK_ERR_ARG;
  AddFn fn = kAdd.pick();
  // Chunks hold whole periods when b repeats, so each task starts at phase 0.
  const size_t chunk = b_period >= n ? kChunk : std::max<size_t>(1, kChunk / b_period) * b_period;
  pool().parallel_for((n + chunk - 1) / chunk, [&](size_t t, int) {
    size_t s = t * chunk, e = std::min(n, s + chunk);
    fn(a + s, b_period >= n ? b + s : b, b_period >= n ? e - s : b_period, y + s, e - s, 0);
  });
  return CK_OK;
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

// Eight vectors at a time: the activations are long dependency chains (see vmath.h), and GELU's,
// the longest, keeps the FMA pipes busy only with eight interleaved; QuickGELU loses nothing by it.
template <int N>
static inline void apply_n(Unary op, V::F (&v)[N]) {
  if (op == Unary::Gelu) v_gelu_n<N>(v);
  else v_quick_gelu_n<N>(v);
}

static void unary_span(Unary op, const float* x, float* y, size_t n) {
  constexpr int kN = 8;
  size_t i = 0;
  for (; i + kN * V::W <= n; i += kN * V::W) {
    V::F v[kN];
    for (int j = 0; j < kN; ++j) v[j] = V::load(x + i + j * V::W);
    apply_n<kN>(op, v);
    for (int j = 0; j < kN; ++j) V::store(y + i + j * V::W, v[j]);
  }
  for (; i < n; i += V::W) {
    const int t = static_cast<int>(std::min<size_t>(V::W, n - i));
    V::F v[1] = {V::load_tail(x + i, t)};
    apply_n<1>(op, v);
    V::store_tail(y + i, v[0], t);
  }
}

// y[i] = a[i] + b[i % period] over [0, n); n is a multiple of period unless b is full length.
static void add_span(const float* a, const float* b, size_t period, float* y, size_t n, size_t) {
  for (size_t s = 0; s < n; s += period) {
    const size_t len = std::min(period, n - s);
    size_t i = 0;
    for (; i + V::W <= len; i += V::W) V::store(y + s + i, V::add(V::load(a + s + i), V::load(b + i)));
    if (i < len) {
      const int t = static_cast<int>(len - i);
      V::store_tail(y + s + i, V::add(V::load_tail(a + s + i, t), V::load_tail(b + i, t)), t);
    }
  }
}

#endif
