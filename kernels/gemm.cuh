// The GEMM's paths behind ckc_gemm (kernels/gemm.cu checks the arguments and picks one) and the
// epilogue they share, so that every path rounds and fuses in the same order:
//   v = alpha · acc;  v += bias[c];  v = GELU / QuickGELU (v)  or  v += residual[r, c];  y[r, c] = (TY) v
#pragma once
#include "common.cuh"

namespace ckc {

// sm_90a: wgmma fed by TMA, warp-specialised producer / consumer warpgroups (kernels/gemm_sm90.cu).
// Called only on a device of compute capability 9.0 with in_type bf16 / f16, x_act none, and the
// alignment rules of clipkit_cuda.h already checked.
ckc_status gemm_sm90(ckc_stream* s, const ckc_gemm_args& a);
// sm_80 and newer: mma.sync m16n8k16 with cp.async pipelining (kernels/gemm_sm80.cu); bf16 / f16
// inputs, any x_act (applied to the A fragments in registers).
ckc_status gemm_sm80(ckc_stream* s, const ckc_gemm_args& a);
// fp32 inputs, FFMA products, fp32 accumulation (kernels/gemm_f32.cu): the exact mode.
ckc_status gemm_f32(ckc_stream* s, const ckc_gemm_args& a);

// What a path's epilogue needs, by value in the kernel's parameters.
struct GemmEpilogue {
  const float* bias;       // [n] or null
  ckc_epilogue kind;
  const void* residual;    // [m, n] in the output type, row stride ldr
  size_t ldr;
  void* y;                 // [m, n], row stride ldy
  size_t ldy;
  size_t m, n;
  float alpha;
};

inline GemmEpilogue gemm_epilogue_of(const ckc_gemm_args& a) {
  return GemmEpilogue{a.bias, a.epilogue, a.residual, a.ldr, a.y, a.ldy, a.m, a.n, a.alpha};
}

// The fused value for element (r, c) from its fp32 accumulator; the caller has checked r < m, c < n.
template <class TY>
__device__ __forceinline__ float gemm_epilogue_value(const GemmEpilogue& e, size_t r, size_t c, float acc) {
  float v = e.alpha * acc;
  if (e.bias) v += e.bias[c];
  switch (e.kind) {
    case CKC_EPILOGUE_GELU: v = gelu(v); break;
    case CKC_EPILOGUE_QUICK_GELU: v = quick_gelu(v); break;
    case CKC_EPILOGUE_RESIDUAL: v += to_f32(static_cast<const TY*>(e.residual)[r * e.ldr + c]); break;
    default: break;
  }
  return v;
}

// Stores element (r, c), bounds-checked against m and n.
template <class TY>
__device__ __forceinline__ void gemm_epilogue_store(const GemmEpilogue& e, size_t r, size_t c, float acc) {
  if (r < e.m && c < e.n) static_cast<TY*>(e.y)[r * e.ldy + c] = from_f32<TY>(gemm_epilogue_value<TY>(e, r, c, acc));
}

// The launches of a grid of (n tiles) × (m tiles): grid.y holds at most 65535 tiles, so a larger m runs
// as several launches over row ranges. For each, launch(grid, r0, e) is called with the first row r0
// and the epilogue of rows [r0, r0 + e.m) (y and residual advanced to r0); x must be advanced by the
// caller's launch. Stops at the first launch error.
template <class TY, class Launch>
ckc_status gemm_row_launches(const ckc_gemm_args& a, size_t bm, size_t bn, const char* what, Launch&& launch) {
  constexpr size_t kMaxGridY = 65535;
  const unsigned gx = static_cast<unsigned>((a.n + bn - 1) / bn);
  const size_t mtiles = (a.m + bm - 1) / bm;
  for (size_t t0 = 0; t0 < mtiles; t0 += kMaxGridY) {
    const unsigned gy = static_cast<unsigned>(mtiles - t0 < kMaxGridY ? mtiles - t0 : kMaxGridY);
    const size_t r0 = t0 * bm;
    GemmEpilogue e = gemm_epilogue_of(a);
    e.m = a.m - r0 < gy * bm ? a.m - r0 : gy * bm;
    e.y = static_cast<TY*>(a.y) + r0 * a.ldy;
    if (e.residual) e.residual = static_cast<const TY*>(a.residual) + r0 * a.ldr;
    launch(dim3(gx, gy), r0, e);
    if (ckc_status st = check_launch(what)) return st;
  }
  return CKC_OK;
}

}  // namespace ckc
