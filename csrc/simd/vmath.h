// Transcendental functions written once against V; included in every ISA pass after its vec_*.h.
// Accuracy (checked by the op tests against float64): exp within 2 ulp on [-87.3, 88.7] and exactly 0
// below (so masked scores give weight exactly 0); gelu within ~1e-6 relative everywhere, the far
// negative tail included.

// e^x. Range reduction x = n·ln2 + r with ln2 split in two (Cody–Waite), then a degree-6
// polynomial for e^r on |r| <= ln2/2 (Cephes expf coefficients) and a scale by 2^n.
static inline V::F v_exp(V::F x) {
  const V::F hi = V::set1(88.72283172607421875f), lo = V::set1(-87.33654022216796875f);
  V::F xc = V::min(V::max(x, lo), hi);
  V::F n = V::round(V::mul(xc, V::set1(1.44269504088896341f)));
  V::F r = V::fnmadd(n, V::set1(0.693359375f), xc);
  r = V::fnmadd(n, V::set1(-2.12194440e-4f), r);
  V::F p = V::set1(1.9875691500e-4f);
  p = V::fmadd(p, r, V::set1(1.3981999507e-3f));
  p = V::fmadd(p, r, V::set1(8.3334519073e-3f));
  p = V::fmadd(p, r, V::set1(4.1665795894e-2f));
  p = V::fmadd(p, r, V::set1(1.6666665459e-1f));
  p = V::fmadd(p, r, V::set1(5.0000001201e-1f));
  V::F r2 = V::mul(r, r);
  V::F y = V::add(V::fmadd(p, r2, r), V::set1(1.0f));
  // n can reach 128 at the top of the range: scale in two steps so 2^n never overflows the exponent.
  V::F n1 = V::mul(n, V::set1(0.5f));
  n1 = V::round(V::sub(n1, V::set1(0.25f)));  // floor(n/2) for integral n
  V::F n2 = V::sub(n, n1);
  y = V::mul(V::mul(y, V::pow2i(n1)), V::pow2i(n2));
  return V::select(V::lt(x, lo), V::zero(), y);  // underflow (and -inf) to exactly 0
}

// 1/(1 + e^-x)
static inline V::F v_sigmoid(V::F x) {
  const V::F one = V::set1(1.0f);
  return V::div(one, V::add(one, v_exp(V::sub(V::zero(), x))));
}

// erfc(x/√2) for all x, from erfc(z) = u·exp(-z² + P(u)), z = |x|/√2, u = 1/(1 + z/2) (Numerical
// Recipes' Chebyshev fit, ~1.2e-7 relative), and erfc(-z) = 2 - erfc(z).
// In the tail the exponent is large (−z² ≈ −80 at x ≈ −12.6), and any rounding of it costs
// |exponent|·2^-24 relative error in the result; so z² = x²/2 is taken exactly from x (an FMA splits
// x² into hi + lo) rather than from a rounded x/√2, and the rounding of p − hi is recovered by Fast2Sum.
static inline V::F v_erfc_sqrt_half(V::F x) {
  const V::F one = V::set1(1.0f), half = V::set1(0.5f);
  V::F z = V::mul(V::abs(x), V::set1(0.70710678118654752f));
  V::F u = V::div(one, V::fmadd(half, z, one));
  V::F p = V::set1(0.17087277f);
  p = V::fmadd(p, u, V::set1(-0.82215223f));
  p = V::fmadd(p, u, V::set1(1.48851587f));
  p = V::fmadd(p, u, V::set1(-1.13520398f));
  p = V::fmadd(p, u, V::set1(0.27886807f));
  p = V::fmadd(p, u, V::set1(-0.18628806f));
  p = V::fmadd(p, u, V::set1(0.09678418f));
  p = V::fmadd(p, u, V::set1(0.37409196f));
  p = V::fmadd(p, u, V::set1(1.00002368f));
  p = V::fmadd(p, u, V::set1(-1.26551223f));
  V::F x2 = V::mul(x, x);
  V::F hi = V::mul(x2, half);                                        // z² rounded (·½ is exact)
  V::F lo = V::mul(V::fma_exact(x, x, V::sub(V::zero(), x2)), half);  // z² - hi, exact
  V::F s = V::sub(p, hi);
  V::F err = V::sub(p, V::add(s, hi));                               // (p - hi) - s
  V::F e = v_exp(s);
  e = V::fmadd(e, V::sub(err, lo), e);                                // · exp(err - lo) ≈ 1 + err - lo
  V::F r = V::mul(u, e);
  return V::select(V::lt(x, V::zero()), V::sub(V::set1(2.0f), r), r);
}

// GELU, erf form: x·Φ(x) = x/2 · erfc(-x/√2).
static inline V::F v_gelu(V::F x) {
  return V::mul(V::mul(x, V::set1(0.5f)), v_erfc_sqrt_half(V::sub(V::zero(), x)));
}

// QuickGELU: x·σ(1.702x).
static inline V::F v_quick_gelu(V::F x) { return V::mul(x, v_sigmoid(V::mul(x, V::set1(1.702f)))); }
