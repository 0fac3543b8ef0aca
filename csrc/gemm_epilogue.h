// Stores a micro-kernel's accumulator tile with the fused epilogue (see GemmTileEpilogue in
// gemm_kernel.h). Included inside the ISA passes of gemm*.cpp, after V and vmath: no include guard.
// The row and vector loops are fully unrolled so acc stays in registers; rows past mv and columns
// past nv (the M and N edges) are not touched.
template <int MR, int NV>
static inline void gemm_store_tile(V::F (&acc)[MR][NV], float* c, size_t ldc, int mv, int nv,
                                   const GemmTileEpilogue& e) {
  const V::F alpha = V::set1(e.alpha);
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
    if (r >= mv) break;
    float* cr = c + r * ldc;
    const float* rr = e.residual ? e.residual + r * e.ldr : nullptr;
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const int c0 = v * V::W;
      const int cnt = nv - c0;
      if (cnt <= 0) break;
      V::F init, val;
      if (cnt >= V::W) {
        if (e.first) {
          init = e.bias ? V::load(e.bias + c0) : V::zero();
          if (rr) init = V::add(init, V::load(rr + c0));
        } else {
          init = V::load(cr + c0);
        }
      } else {
        if (e.first) {
          init = e.bias ? V::load_tail(e.bias + c0, cnt) : V::zero();
          if (rr) init = V::add(init, V::load_tail(rr + c0, cnt));
        } else {
          init = V::load_tail(cr + c0, cnt);
        }
      }
      val = V::fmadd(alpha, acc[r][v], init);
      if (e.last) {
        if (e.act == Epilogue::Gelu) val = v_gelu(val);
        else if (e.act == Epilogue::QuickGelu) val = v_quick_gelu(val);
      }
      if (cnt >= V::W) V::store(cr + c0, val);
      else V::store_tail(cr + c0, val, cnt);
    }
  }
}
