// Stores a micro-kernel's accumulator tile with the fused epilogue (see GemmTileEpilogue in
// gemm_kernel.h). Included inside the ISA passes of gemm*.cpp, after V and vmath: no include guard.
// The row and vector loops are fully unrolled so acc stays in registers; rows past mv and columns
// past nv (the M and N edges) are not touched.
template <int MR, int NV>
static inline void gemm_store_tile(V::F (&acc)[MR][NV], float* c, size_t ldc, int mv, int nv,
                                   const GemmTileEpilogue& e) {
  const V::F alpha = V::set1(e.alpha);
  // A whole tile without an activation (most calls): straight-line code, bias loaded once, one test
  // per tile instead of a few per vector.
  if (mv == MR && nv == NV * V::W && !(e.last && (e.act == Epilogue::Gelu || e.act == Epilogue::QuickGelu))) {
    if (!e.first) {
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) V::store(c + r * ldc + v * V::W, V::fmadd(alpha, acc[r][v], V::load(c + r * ldc + v * V::W)));
      return;
    }
    V::F bias[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bias[v] = e.bias ? V::load(e.bias + v * V::W) : V::zero();
    if (e.residual) {
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v)
          V::store(c + r * ldc + v * V::W, V::fmadd(alpha, acc[r][v], V::add(bias[v], V::load(e.residual + r * e.ldr + v * V::W))));
    } else {
#pragma GCC unroll 32
      for (int r = 0; r < MR; ++r)
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) V::store(c + r * ldc + v * V::W, V::fmadd(alpha, acc[r][v], bias[v]));
    }
    return;
  }
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
    if (r >= mv) break;
    float* cr = c + r * ldc;
    const float* rr = e.residual ? e.residual + r * e.ldr : nullptr;
    V::F val[NV];
    int nvec = 0;  // vectors of this row inside the tile's columns
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      const int c0 = v * V::W;
      const int cnt = nv - c0;
      if (cnt <= 0) break;
      V::F init;
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
      val[v] = V::fmadd(alpha, acc[r][v], init);
      nvec = v + 1;
    }
    // The activation runs on the row's vectors together (independent chains, see vmath.h); lanes
    // past nv hold values that are never stored.
    if (e.last && e.act == Epilogue::Gelu) v_gelu_n<NV>(val);
    else if (e.last && e.act == Epilogue::QuickGelu) v_quick_gelu_n<NV>(val);
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      if (v >= nvec) break;
      const int c0 = v * V::W, cnt = nv - c0;
      if (cnt >= V::W) V::store(cr + c0, val[v]);
      else V::store_tail(cr + c0, val[v], cnt);
    }
  }
}

// The same, out of line: a micro-kernel that calls this keeps its k loop free of the epilogue's
// register pressure (GCC otherwise spills an accumulator of the 12×32 AVX-512 tile inside the loop).
template <int MR, int NV>
__attribute__((noinline)) static void gemm_store_tile_outlined(V::F (&acc)[MR][NV], float* c, size_t ldc, int mv, int nv,
                                                               const GemmTileEpilogue& e) {
  gemm_store_tile<MR, NV>(acc, c, ldc, mv, nv, e);
}
