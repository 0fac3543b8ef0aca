// V for the AVX2 + FMA pass: 8 float lanes in a ymm register. Included inside ck::pass_avx2 only.
struct V {
  static constexpr int W = 8;
  static constexpr Isa kIsa = Isa::Avx2;
  using F = __m256;
  using M = __m256;

  static __m256i tail_mask(int n) {
    // Lane i is on when i < n.
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), idx);
  }

  static F zero() { return _mm256_setzero_ps(); }
  static F set1(float x) { return _mm256_set1_ps(x); }
  static F load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static F load_tail(const float* p, int n) { return _mm256_maskload_ps(p, tail_mask(n)); }
  static F first(F v, int n) { return _mm256_and_ps(v, _mm256_castsi256_ps(tail_mask(n))); }
  static void store_tail(float* p, F v, int n) { _mm256_maskstore_ps(p, tail_mask(n), v); }

  static F add(F a, F b) { return _mm256_add_ps(a, b); }
  static F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F div(F a, F b) { return _mm256_div_ps(a, b); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F min(F a, F b) { return _mm256_min_ps(a, b); }
  static F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fma_exact(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static F sqrt(F a) { return _mm256_sqrt_ps(a); }
  static F round(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static float reduce_add(F a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduce_max(F a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }

  static M lt(F a, F b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
  static F select(M m, F a, F b) { return _mm256_blendv_ps(b, a, m); }

  static F pow2i(F n) {
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }

  // y·2^n for integral n in [-252, 254]: in two steps, so neither power of 2 overflows its exponent.
  static F scalef(F y, F n) {
    F n1 = round(sub(mul(n, set1(0.5f)), set1(0.25f)));  // floor(n/2)
    return mul(mul(y, pow2i(n1)), pow2i(sub(n, n1)));
  }
  static F round_bf16(F a) {
    __m256i b = _mm256_castps_si256(a);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(b, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF)));
    r = _mm256_and_si256(r, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u)));
    // NaN stays a quiet NaN.
    __m256 nan = _mm256_cmp_ps(a, a, _CMP_UNORD_Q);
    __m256 qnan = _mm256_castsi256_ps(_mm256_and_si256(
        _mm256_or_si256(b, _mm256_set1_epi32(0x00400000)), _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
    return _mm256_blendv_ps(_mm256_castsi256_ps(r), qnan, nan);
  }
  static F load_bf16(const uint16_t* p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
};
