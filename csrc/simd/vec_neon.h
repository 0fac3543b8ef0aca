// V for the NEON pass (arm64): 4 float lanes. Included inside ck::pass_neon only.
struct V {
  static constexpr int W = 4;
  static constexpr Isa kIsa = Isa::Neon;
  using F = float32x4_t;
  using M = uint32x4_t;

  static F zero() { return vdupq_n_f32(0.0f); }
  static F set1(float x) { return vdupq_n_f32(x); }
  static F load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, F v) { vst1q_f32(p, v); }
  static F load_tail(const float* p, int n) {
    float t[4] = {0, 0, 0, 0};
    for (int i = 0; i < n && i < 4; ++i) t[i] = p[i];
    return vld1q_f32(t);
  }
  static F first(F v, int n) {
    const uint32x4_t idx = {0, 1, 2, 3};
    return vreinterpretq_f32_u32(vandq_u32(vreinterpretq_u32_f32(v), vcltq_u32(idx, vdupq_n_u32(static_cast<uint32_t>(n)))));
  }
  static void store_tail(float* p, F v, int n) {
    float t[4];
    vst1q_f32(t, v);
    for (int i = 0; i < n && i < 4; ++i) p[i] = t[i];
  }

  static F add(F a, F b) { return vaddq_f32(a, b); }
  static F sub(F a, F b) { return vsubq_f32(a, b); }
  static F mul(F a, F b) { return vmulq_f32(a, b); }
  static F div(F a, F b) { return vdivq_f32(a, b); }
  static F max(F a, F b) { return vmaxq_f32(a, b); }
  static F min(F a, F b) { return vminq_f32(a, b); }
  static F fmadd(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static F fma_exact(F a, F b, F c) { return vfmaq_f32(c, a, b); }
  static F fnmadd(F a, F b, F c) { return vfmsq_f32(c, a, b); }
  static F abs(F a) { return vabsq_f32(a); }
  static F sqrt(F a) { return vsqrtq_f32(a); }
  static F round(F a) { return vrndnq_f32(a); }
  static float reduce_add(F a) { return vaddvq_f32(a); }
  static float reduce_max(F a) { return vmaxvq_f32(a); }

  static M lt(F a, F b) { return vcltq_f32(a, b); }
  static F select(M m, F a, F b) { return vbslq_f32(m, a, b); }

  static F pow2i(F n) {
    int32x4_t e = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(e, 23));
  }
  // y·2^n for integral n in [-252, 254]: in two steps, so neither power of 2 overflows its exponent.
  static F scalef(F y, F n) {
    F n1 = round(sub(mul(n, set1(0.5f)), set1(0.25f)));  // floor(n/2)
    return mul(mul(y, pow2i(n1)), pow2i(sub(n, n1)));
  }
  static F round_bf16(F a) {
    uint32x4_t b = vreinterpretq_u32_f32(a);
    uint32x4_t lsb = vandq_u32(vshrq_n_u32(b, 16), vdupq_n_u32(1));
    uint32x4_t r = vaddq_u32(b, vaddq_u32(lsb, vdupq_n_u32(0x7FFF)));
    r = vandq_u32(r, vdupq_n_u32(0xFFFF0000u));
    uint32x4_t nan = vmvnq_u32(vceqq_f32(a, a));
    uint32x4_t qnan = vandq_u32(vorrq_u32(b, vdupq_n_u32(0x00400000u)), vdupq_n_u32(0xFFFF0000u));
    return vreinterpretq_f32_u32(vbslq_u32(nan, qnan, r));
  }
  static F load_bf16(const uint16_t* p) {
    return vreinterpretq_f32_u32(vshlq_n_u32(vmovl_u16(vld1_u16(p)), 16));
  }
};
