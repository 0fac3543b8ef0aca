// Transcendental functions written once against V; included in every ISA pass after its vec_*.h.
// Accuracy (checked by the op tests against float64): exp within 2 ulp on [-87.3, 88.7] and exactly 0
// below (so masked scores give weight exactly 0); gelu within ~1e-6 relative everywhere, the far
// negative tail included.
//
// Each function works on N independent vectors at once (v_exp_n<N> etc.), every step a short loop
// over the N: one vector's chain is ~40 dependent operations long, so a loop over single vectors is
// bound by latency; N = 4 to 8 interleaved chains keep the FMA pipes busy. v_exp(x) etc. are N = 1.

#define CK_EACH(j) _Pragma("GCC unroll 8") for (int j = 0; j < N; ++j)

// e^x, in place. Range reduction x = n·ln2 + r with ln2 split in two (Cody–Waite), then a degree-6
// polynomial for e^r on |r| <= ln2/2 (Cephes expf coefficients) and a scale by 2^n.
template <int N>
static inline void v_exp_n(V::F (&x)[N]) {
  const V::F hi = V::set1(88.72283172607421875f), lo = V::set1(-87.33654022216796875f);
  V::F n[N], r[N], p[N];
  CK_EACH(j) {
    V::F xc = V::min(V::max(x[j], lo), hi);
    n[j] = V::round(V::mul(xc, V::set1(1.44269504088896341f)));
    r[j] = V::fnmadd(n[j], V::set1(0.693359375f), xc);
  }
  CK_EACH(j) r[j] = V::fnmadd(n[j], V::set1(-2.12194440e-4f), r[j]);
  CK_EACH(j) p[j] = V::fmadd(V::set1(1.9875691500e-4f), r[j], V::set1(1.3981999507e-3f));
  CK_EACH(j) p[j] = V::fmadd(p[j], r[j], V::set1(8.3334519073e-3f));
  CK_EACH(j) p[j] = V::fmadd(p[j], r[j], V::set1(4.1665795894e-2f));
  CK_EACH(j) p[j] = V::fmadd(p[j], r[j], V::set1(1.6666665459e-1f));
  CK_EACH(j) p[j] = V::fmadd(p[j], r[j], V::set1(5.0000001201e-1f));
  CK_EACH(j) {
    V::F y = V::add(V::fmadd(p[j], V::mul(r[j], r[j]), r[j]), V::set1(1.0f));
    y = V::scalef(y, n[j]);  // n reaches 128 at the top of the range (V::scalef never overflows on the way)
    x[j] = V::select(V::lt(x[j], lo), V::zero(), y);  // underflow (and -inf) to exactly 0
  }
}

// 1/(1 + e^-x), in place.
template <int N>
static inline void v_sigmoid_n(V::F (&x)[N]) {
  const V::F one = V::set1(1.0f);
  CK_EACH(j) x[j] = V::sub(V::zero(), x[j]);
  v_exp_n<N>(x);
  CK_EACH(j) x[j] = V::div(one, V::add(one, x[j]));
}

// erfc(x/√2) for all x, in place, from erfc(z) = u·exp(-z² + P(u)), z = |x|/√2, u = 1/(1 + z/2)
// (Numerical Recipes' Chebyshev fit, ~1.2e-7 relative), and erfc(-z) = 2 - erfc(z).
// In the tail the exponent is large (−z² ≈ −80 at x ≈ −12.6), and any rounding of it costs
// |exponent|·2^-24 relative error in the result; so z² = x²/2 is taken exactly from x (an FMA splits
// x² into hi + lo) rather than from a rounded x/√2, and the rounding of p − hi is recovered by Fast2Sum.
template <int N>
static inline void v_erfc_sqrt_half_n(V::F (&x)[N]) {
  const V::F one = V::set1(1.0f), half = V::set1(0.5f);
  V::F u[N], p[N], corr[N], e[N];
  CK_EACH(j) u[j] = V::div(one, V::fmadd(half, V::mul(V::abs(x[j]), V::set1(0.70710678118654752f)), one));
  CK_EACH(j) p[j] = V::fmadd(V::set1(0.17087277f), u[j], V::set1(-0.82215223f));
  CK_EACH(j) p[j] = V::fmadd(p[j], u[j], V::set1(1.48851587f));
  CK_EACH(j) p[j] = V::fmadd(p[j], u[j], V::set1(-1.13520398f));
  CK_EACH(j) p[j] = V::fmadd(p[j], u[j], V::set1(0.27886807f));
  CK_EACH(j) p[j] = V::fmadd(p[j], u[j], V::set1(-0.18628806f));
  CK_EACH(j) p[j] = V::fmadd(p[j], u[j], V::set1(0.09678418f));
  CK_EACH(j) p[j] = V::fmadd(p[j], u[j], V::set1(0.37409196f));
  CK_EACH(j) p[j] = V::fmadd(p[j], u[j], V::set1(1.00002368f));
  CK_EACH(j) p[j] = V::fmadd(p[j], u[j], V::set1(-1.26551223f));
  CK_EACH(j) {
    V::F x2 = V::mul(x[j], x[j]);
    V::F hi = V::mul(x2, half);                                              // z² rounded (·½ is exact)
    V::F lo = V::mul(V::fma_exact(x[j], x[j], V::sub(V::zero(), x2)), half);  // z² - hi, exact
    V::F s = V::sub(p[j], hi);
    corr[j] = V::sub(V::sub(p[j], V::add(s, hi)), lo);                       // (p - hi - s) - lo
    e[j] = s;
  }
  v_exp_n<N>(e);
  CK_EACH(j) {
    V::F r = V::mul(u[j], V::fmadd(e[j], corr[j], e[j]));  // u · exp(s) · (1 + corr)
    x[j] = V::select(V::lt(x[j], V::zero()), V::sub(V::set1(2.0f), r), r);
  }
}

// GELU, erf form, in place: x·Φ(x) = x/2 · erfc(-x/√2).
template <int N>
static inline void v_gelu_n(V::F (&x)[N]) {
  V::F t[N];
  CK_EACH(j) t[j] = V::sub(V::zero(), x[j]);
  v_erfc_sqrt_half_n<N>(t);
  CK_EACH(j) x[j] = V::mul(V::mul(x[j], V::set1(0.5f)), t[j]);
}

// QuickGELU, in place: x·σ(1.702x).
template <int N>
static inline void v_quick_gelu_n(V::F (&x)[N]) {
  V::F s[N];
  CK_EACH(j) s[j] = V::mul(x[j], V::set1(1.702f));
  v_sigmoid_n<N>(s);
  CK_EACH(j) x[j] = V::mul(x[j], s[j]);
}

#undef CK_EACH

static inline V::F v_exp(V::F x) {
  V::F a[1] = {x};
  v_exp_n<1>(a);
  return a[0];
}
static inline V::F v_sigmoid(V::F x) {
  V::F a[1] = {x};
  v_sigmoid_n<1>(a);
  return a[0];
}
static inline V::F v_gelu(V::F x) {
  V::F a[1] = {x};
  v_gelu_n<1>(a);
  return a[0];
}
static inline V::F v_quick_gelu(V::F x) {
  V::F a[1] = {x};
  v_quick_gelu_n<1>(a);
  return a[0];
}
