// Internal to the AVX-512 passes of gemm*.cpp (included inside the pass, after the ISA target is
// set; no include guard): the 16×16 transpose of 32-bit lanes that packs a 12-row A micro-panel.
// t[r] holds row r (rows 12..15 are padding); out[k·12 + r] = t[r][k] for k < kn (at most 16),
// each k's 12 values one masked store. The lanes are moved as bits, so they may hold fp32 or bf16 pairs.
// (GCC 12 warns falsely about the "undefined" pass-through operand inside its own unpack/shuffle
// intrinsics: its bug 105593.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
static inline void transpose16_store12_avx512(__m512* t, float* out, int kn = 16) {
  __m512 u[16];
  for (int r = 0; r < 16; r += 2) {  // pairs of rows interleaved: [a0 b0 a1 b1 | a4 b4 a5 b5 | …]
    u[r] = _mm512_unpacklo_ps(t[r], t[r + 1]);
    u[r + 1] = _mm512_unpackhi_ps(t[r], t[r + 1]);
  }
  for (int r = 0; r < 16; r += 4) {  // four rows per 128-bit lane: [a0 b0 c0 d0 | a4 …]
    t[r] = _mm512_shuffle_ps(u[r], u[r + 2], 0x44);
    t[r + 1] = _mm512_shuffle_ps(u[r], u[r + 2], 0xEE);
    t[r + 2] = _mm512_shuffle_ps(u[r + 1], u[r + 3], 0x44);
    t[r + 3] = _mm512_shuffle_ps(u[r + 1], u[r + 3], 0xEE);
  }
  // t[4g + j]: rows 4g..4g+3 at k = j + 4·(128-bit lane); pair up the lanes of groups 0,1 and 2,3.
  for (int j = 0; j < 4; ++j) {
    u[j] = _mm512_shuffle_f32x4(t[j], t[4 + j], 0x88);      // k = j, j+8
    u[4 + j] = _mm512_shuffle_f32x4(t[j], t[4 + j], 0xDD);  // k = j+4, j+12
    u[8 + j] = _mm512_shuffle_f32x4(t[8 + j], t[12 + j], 0x88);
    u[12 + j] = _mm512_shuffle_f32x4(t[8 + j], t[12 + j], 0xDD);
  }
  // Now u[k] = [g0 k | g0 k+8 | g1 k | g1 k+8] and u[8+k] the same of groups 2, 3 (k < 8).
  for (int k = 0; k < 8; ++k) {
    const __m512 lo = _mm512_shuffle_f32x4(u[k], u[8 + k], 0x88);  // rows 0..15 at k
    const __m512 hi = _mm512_shuffle_f32x4(u[k], u[8 + k], 0xDD);  // rows 0..15 at k + 8
    if (k < kn) _mm512_mask_storeu_ps(out + k * 12, 0x0FFF, lo);
    if (k + 8 < kn) _mm512_mask_storeu_ps(out + (k + 8) * 12, 0x0FFF, hi);
  }
}
#pragma GCC diagnostic pop
