// fp32 GEMM on FFMA, the exact mode: y = epilogue(alpha · act(x) · wᵀ + bias) with x [m, k] and
// w [n, k] fp32, both K-major, any row strides, 4-byte alignment only.
//
// Block tile 128×128×8, 256 threads, 8×8 outputs per thread (as 2×2 blocks of 4×4, so that the
// shared-memory reads are float4 broadcasts), tiles double-buffered in shared memory with the next
// tile's global loads held in registers while the current one is multiplied. Each output is one
// fp32 fmaf chain in k order (no split, no reassociation), which keeps it within the CPU path's
// tolerance of a float64 reference. x_act is applied to x once per element and block, on load.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "gemm.cuh"

namespace ckc {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 8;
constexpr int kThreads = 256;
// Row pitch of the transposed tiles [k][m]: +4 floats keeps the float4 alignment and puts the two
// k rows that one warp's stores touch (4 apart) in opposite bank halves.
constexpr int kPitch = kBM + 4;

// Four consecutive k of one row, zero beyond the row range or k. vec: the base pointer and ld allow
// 16-byte loads (then k0 + kc, a multiple of 4, gives an aligned address).
__device__ __forceinline__ void load4(float (&v)[4], const float* __restrict__ p, bool row_ok, int kq, int k,
                                      bool vec) {
  if (row_ok && vec && kq + 4 <= k) {
    const float4 q = __ldg(reinterpret_cast<const float4*>(p));
    v[0] = q.x;
    v[1] = q.y;
    v[2] = q.z;
    v[3] = q.w;
  } else {
#pragma unroll
    for (int j = 0; j < 4; ++j) v[j] = (row_ok && kq + j < k) ? __ldg(p + j) : 0.0f;
  }
}

// Four adjacent outputs (c .. c+3) of one row in one store; same rounding as from_f32.
template <class TY>
__device__ __forceinline__ void store4(TY* p, const float (&v)[4]) {
  if constexpr (std::is_same_v<TY, float>) {
    *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  } else if constexpr (std::is_same_v<TY, __nv_bfloat16>) {
    __nv_bfloat162 lo = __floats2bfloat162_rn(v[0], v[1]), hi = __floats2bfloat162_rn(v[2], v[3]);
    uint2 u;
    memcpy(&u.x, &lo, 4);
    memcpy(&u.y, &hi, 4);
    *reinterpret_cast<uint2*>(p) = u;
  } else {
    __half2 lo = __floats2half2_rn(v[0], v[1]), hi = __floats2half2_rn(v[2], v[3]);
    uint2 u;
    memcpy(&u.x, &lo, 4);
    memcpy(&u.y, &hi, 4);
    *reinterpret_cast<uint2*>(p) = u;
  }
}

// Grid: x over n tiles, y over m tiles.
template <class TY>
__global__ void __launch_bounds__(kThreads, 2)
    gemm_f32_kernel(const float* __restrict__ x, size_t ldx, const float* __restrict__ w, size_t ldw, int k,
                    ckc_activation act, GemmEpilogue e) {
  __shared__ __align__(16) float As[2][kBK][kPitch];  // As[.][kk][r] = act(x)[m0 + r, k0 + kk]
  __shared__ __align__(16) float Bs[2][kBK][kPitch];  // Bs[.][kk][c] = w[n0 + c, k0 + kk]

  const int tid = threadIdx.x;
  const size_t m0 = static_cast<size_t>(blockIdx.y) * kBM;
  const size_t n0 = static_cast<size_t>(blockIdx.x) * kBN;

  // Loads: thread t reads k0 + kc .. +3 of tile row lr (two threads per 32-byte row segment, so a
  // warp reads 16 whole segments), the same for x and w.
  const int lr = tid >> 1;
  const int kc = (tid & 1) * 4;
  const bool xrow = m0 + lr < e.m;
  const bool wrow = n0 + lr < e.n;
  const float* xp = x + (xrow ? (m0 + lr) * ldx : 0) + kc;
  const float* wp = w + (wrow ? (n0 + lr) * ldw : 0) + kc;
  const bool xvec = (reinterpret_cast<uintptr_t>(x) % 16 == 0) && (ldx % 4 == 0);
  const bool wvec = (reinterpret_cast<uintptr_t>(w) % 16 == 0) && (ldw % 4 == 0);

  // Outputs: rows ty·4 + {0..3} and 64 + ty·4 + {0..3}, cols tx·4 + {0..3} and 64 + tx·4 + {0..3}.
  const int tx = tid & 15, ty = tid >> 4;

  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

  float xa[4], wb[4];
  auto stage = [&](int buf) {
    // act(0) = 0, so the zero padding needs no exception.
    if (act != CKC_ACT_NONE) {
#pragma unroll
      for (int j = 0; j < 4; ++j) xa[j] = activate(act, xa[j]);
    }
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      As[buf][kc + j][lr] = xa[j];
      Bs[buf][kc + j][lr] = wb[j];
    }
  };

  const int ktiles = (k + kBK - 1) / kBK;
  load4(xa, xp, xrow, kc, k, xvec);
  load4(wb, wp, wrow, kc, k, wvec);
  stage(0);
  __syncthreads();

  for (int kt = 0; kt < ktiles; ++kt) {
    const int buf = kt & 1;
    const bool more = kt + 1 < ktiles;
    if (more) {
      const int k0 = (kt + 1) * kBK;
      load4(xa, xp + k0, xrow, k0 + kc, k, xvec);
      load4(wb, wp + k0, wrow, k0 + kc, k, wvec);
    }
#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a[8], b[8];
      const float4 a0 = *reinterpret_cast<const float4*>(&As[buf][kk][ty * 4]);
      const float4 a1 = *reinterpret_cast<const float4*>(&As[buf][kk][64 + ty * 4]);
      const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][kk][tx * 4]);
      const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][kk][64 + tx * 4]);
      a[0] = a0.x; a[1] = a0.y; a[2] = a0.z; a[3] = a0.w;
      a[4] = a1.x; a[5] = a1.y; a[6] = a1.z; a[7] = a1.w;
      b[0] = b0.x; b[1] = b0.y; b[2] = b0.z; b[3] = b0.w;
      b[4] = b1.x; b[5] = b1.y; b[6] = b1.z; b[7] = b1.w;
#pragma unroll
      for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // buf ^ 1 was last read in iteration kt-1, which every thread finished before the barrier at
    // its end; the barrier below publishes the new tile before iteration kt+1 reads it.
    if (more) stage(buf ^ 1);
    __syncthreads();
  }

  const bool vec_ok = (reinterpret_cast<uintptr_t>(e.y) % (4 * sizeof(TY)) == 0) && (e.ldy % 4 == 0);
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const size_t r = m0 + (i < 4 ? 0 : 64) + ty * 4 + (i & 3);
    if (r >= e.m) continue;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const size_t c = n0 + h * 64 + tx * 4;
      if (vec_ok && c + 3 < e.n) {
        float v[4];
#pragma unroll
        for (int j = 0; j < 4; ++j) v[j] = gemm_epilogue_value<TY>(e, r, c + j, acc[i][h * 4 + j]);
        store4(static_cast<TY*>(e.y) + r * e.ldy + c, v);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) gemm_epilogue_store<TY>(e, r, c + j, acc[i][h * 4 + j]);
      }
    }
  }
}

template <class TY>
ckc_status launch(ckc_stream* s, const ckc_gemm_args& a) {
  return gemm_row_launches<TY>(a, kBM, kBN, "gemm_f32", [&](dim3 grid, size_t r0, const GemmEpilogue& e) {
    gemm_f32_kernel<TY><<<grid, kThreads, 0, s->stream>>>(static_cast<const float*>(a.x) + r0 * a.ldx, a.ldx,
                                                          static_cast<const float*>(a.w), a.ldw, static_cast<int>(a.k),
                                                          a.x_act, e);
  });
}

}  // namespace

ckc_status gemm_f32(ckc_stream* s, const ckc_gemm_args& a) {
  if (a.in_type != CKC_F32) return fail(CKC_ERR_ARG, "gemm_f32: inputs must be f32");
  return with_dtype(a.y_type, [&](auto ty) -> ckc_status { return launch<decltype(ty)>(s, a); });
}

}  // namespace ckc
