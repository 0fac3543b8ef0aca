// V for the scalar pass: one lane, plain float arithmetic. Included inside ck::pass_scalar only.
struct V {
  static constexpr int W = 1;
  static constexpr Isa kIsa = Isa::Scalar;
  using F = float;
  using M = bool;  // comparison mask

  static F zero() { return 0.0f; }
  static F set1(float x) { return x; }
  static F load(const float* p) { return *p; }
  static void store(float* p, F v) { *p = v; }
  static F load_tail(const float* p, int n) { return n > 0 ? *p : 0.0f; }
  static F first(F v, int n) { return n > 0 ? v : 0.0f; }  // lanes < n kept, others 0
  static void store_tail(float* p, F v, int n) { if (n > 0) *p = v; }

  static F add(F a, F b) { return a + b; }
  static F sub(F a, F b) { return a - b; }
  static F mul(F a, F b) { return a * b; }
  static F div(F a, F b) { return a / b; }
  static F max(F a, F b) { return a > b ? a : b; }
  static F min(F a, F b) { return a < b ? a : b; }
  // Plain multiply-add: the baseline has no FMA instruction, and std::fma would be a library call.
  static F fmadd(F a, F b, F c) { return a * b + c; }   // a*b + c
  static F fnmadd(F a, F b, F c) { return c - a * b; } // c - a*b
  // Fused (one rounding), for the few places whose accuracy depends on it (exact products).
  static F fma_exact(F a, F b, F c) { return std::fma(a, b, c); }
  static F abs(F a) { return std::fabs(a); }
  static F sqrt(F a) { return std::sqrt(a); }
  static F round(F a) { return std::nearbyint(a); }  // to nearest, ties to even
  static float reduce_add(F a) { return a; }
  static float reduce_max(F a) { return a; }

  static M lt(F a, F b) { return a < b; }
  static F select(M m, F a, F b) { return m ? a : b; }  // m ? a : b

  // 2^n for integral n in [-126, 127].
  static F pow2i(F n) {
    uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
    float r;
    std::memcpy(&r, &bits, 4);
    return r;
  }

  // y·2^n for integral n in [-252, 254]: in two steps, so neither power of 2 overflows its exponent.
  static F scalef(F y, F n) {
    F n1 = round(sub(mul(n, set1(0.5f)), set1(0.25f)));  // floor(n/2)
    return mul(mul(y, pow2i(n1)), pow2i(sub(n, n1)));
  }
  // Rounds to the nearest bfloat16 (ties to even), returned widened to float.
  static F round_bf16(F a) {
    uint32_t b;
    std::memcpy(&b, &a, 4);
    if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFFu)) b |= 0x00400000u;  // keep NaN a quiet NaN
    else b += 0x7FFFu + ((b >> 16) & 1u);
    b &= 0xFFFF0000u;
    float r;
    std::memcpy(&r, &b, 4);
    return r;
  }
  static F load_bf16(const uint16_t* p) {
    uint32_t b = static_cast<uint32_t>(*p) << 16;
    float r;
    std::memcpy(&r, &b, 4);
    return r;
  }
};
