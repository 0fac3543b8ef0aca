// Tensor-core GEMM for sm_80 and newer: y = epilogue(alpha · act(x) · wᵀ + bias) with x [m, k] and
// w [n, k] both K-major in bf16 or f16, fp32 accumulation in mma.sync.m16n8k16.
//
// Block tile 128×128×32, 256 threads (8 warps as 4 along m × 2 along n, each warp 32×64), a 4-stage
// cp.async pipeline in dynamic shared memory, fragments read with ldmatrix.x4. Needs k, ldx, ldw
// multiples of 8 and x, w 16-byte aligned (ckc_gemm checks): every 16-byte chunk of a row then
// lies wholly inside or wholly beyond k, and its global address is 16-byte aligned.
// x_act is applied to the A fragments in registers after ldmatrix (fp32, then rounded back to the
// input type); zero-filled padding stays zero because gelu(0) = quick_gelu(0) = 0.
#include <algorithm>
#include <cstring>
#include <type_traits>

#include "gemm.cuh"

namespace ckc {
namespace {

constexpr int kBM = 128, kBN = 128, kBK = 32;
constexpr int kStages = 4;
constexpr int kThreads = 256;
// One smem row of a tile holds kBK elements = 64 bytes = 4 chunks of 16 bytes.
constexpr int kRowBytes = kBK * 2;
constexpr int kStageBytes = (kBM + kBN) * kRowBytes;  // A tile, then B tile
constexpr int kSmemBytes = kStages * kStageBytes;

// Byte offset of 16-byte chunk c (0..3) of tile row r. The chunk index is XORed with bits 1..2 of
// the row, so the 8 rows that one ldmatrix phase reads at the same logical chunk (8 consecutive
// rows starting at a multiple of 8) land in 8 distinct 16-byte bank groups; the cp.async writes of
// 8 consecutive threads (2 whole rows) stay conflict-free as well.
__device__ __forceinline__ unsigned tile_offset(int r, int c) {
  return static_cast<unsigned>(r * kRowBytes + ((c ^ ((r >> 1) & 3)) << 4));
}

__device__ __forceinline__ void cp_async16(unsigned smem, const void* gmem, unsigned src_bytes) {
  // src_bytes 0 reads nothing and zero-fills the 16 bytes (rows beyond m / n, chunks beyond k).
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem),
               "l"(__cvta_generic_to_global(gmem)), "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], unsigned smem) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem)
               : "memory");
}

// d += a · b for one m16n8k16 tile.
template <class TI>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<TI, __nv_bfloat16>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Both elements of a packed pair through the activation, rounded back to the input type.
template <class TI>
__device__ __forceinline__ uint32_t activate_pair(ckc_activation act, uint32_t v) {
  if constexpr (std::is_same_v<TI, __nv_bfloat16>) {
    __nv_bfloat162 h;
    memcpy(&h, &v, 4);
    float2 f = __bfloat1622float2(h);
    h = __floats2bfloat162_rn(activate(act, f.x), activate(act, f.y));
    memcpy(&v, &h, 4);
  } else {
    __half2 h;
    memcpy(&h, &v, 4);
    float2 f = __half22float2(h);
    h = __floats2half2_rn(activate(act, f.x), activate(act, f.y));
    memcpy(&v, &h, 4);
  }
  return v;
}

// Two adjacent outputs (c, c+1) in one store; same rounding as from_f32.
template <class TY>
__device__ __forceinline__ void store_pair(TY* p, float v0, float v1) {
  if constexpr (std::is_same_v<TY, float>) {
    *reinterpret_cast<float2*>(p) = make_float2(v0, v1);
  } else if constexpr (std::is_same_v<TY, __nv_bfloat16>) {
    *reinterpret_cast<__nv_bfloat162*>(p) = __floats2bfloat162_rn(v0, v1);
  } else {
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(v0, v1);
  }
}

// Grid: x over n tiles (fastest, so blocks running together share one x row panel), y over m tiles.
template <class TI, class TY, bool kAct>
__global__ void __launch_bounds__(kThreads, 2)
    gemm_sm80_kernel(const TI* __restrict__ x, size_t ldx, const TI* __restrict__ w, size_t ldw, int k,
                     ckc_activation act, GemmEpilogue e) {
  extern __shared__ __align__(128) unsigned char smem[];
  const unsigned sbase = static_cast<unsigned>(__cvta_generic_to_shared(smem));

  const int tid = threadIdx.x;
  const int lane = tid & 31;
  const int warp = tid >> 5;
  const int wm = warp >> 1;  // 0..3: rows wm·32 .. +31 of the block tile
  const int wn = warp & 1;   // 0..1: cols wn·64 .. +63
  const size_t m0 = static_cast<size_t>(blockIdx.y) * kBM;
  const size_t n0 = static_cast<size_t>(blockIdx.x) * kBN;

  // Global -> smem copies: each tile (128 rows × 4 chunks) is 512 chunks, 2 per thread;
  // chunk id = tid + i·256 is row id / 4, chunk id % 4. Same mapping for A (x) and B (w).
  const TI* ga[2];
  const TI* gb[2];
  bool ra[2], rb[2];
  int kc[2];
  unsigned so[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int id = tid + i * kThreads;
    const int r = id >> 2, c = id & 3;
    ra[i] = m0 + r < e.m;
    rb[i] = n0 + r < e.n;
    kc[i] = c * 8;
    ga[i] = x + (ra[i] ? (m0 + r) * ldx : 0) + kc[i];
    gb[i] = w + (rb[i] ? (n0 + r) * ldw : 0) + kc[i];
    so[i] = tile_offset(r, c);
  }
  const int ktiles = (k + kBK - 1) / kBK;

  auto load_tile = [&](int stage, int kt) {
    const int k0 = kt * kBK;
    const unsigned sa = sbase + stage * kStageBytes;
    const unsigned sb = sa + kBM * kRowBytes;
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const bool kin = k0 + kc[i] < k;
      const bool oka = ra[i] && kin, okb = rb[i] && kin;
      cp_async16(sa + so[i], oka ? static_cast<const void*>(ga[i] + k0) : x, oka ? 16u : 0u);
      cp_async16(sb + so[i], okb ? static_cast<const void*>(gb[i] + k0) : w, okb ? 16u : 0u);
    }
  };

  // ldmatrix addresses. A, m16 tile i, k16 step kk: lane l gives row (l & 15), chunk 2·kk + (l >> 4),
  // so matrices 0..3 are (rows 0-7, k 0-7), (rows 8-15, k 0-7), (rows 0-7, k 8-15), (rows 8-15,
  // k 8-15) = a0a1, a2a3, a4a5, a6a7 of the m16n8k16 A fragment.
  // B (w rows = n), n16 pair j, step kk: lane l gives row (l & 7) + 8·(l >> 4), chunk 2·kk + ((l >> 3) & 1),
  // so matrices are (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) = b0b1, b2b3 of
  // n8 tile 2j, then of 2j+1 (a non-transposed 8×8 load of [n][k] gives thread t row t/4 = n, k pair
  // 2·(t%4): exactly the col-major B fragment).
  const int a_row = wm * 32 + (lane & 15);
  const int a_chk = lane >> 4;
  const int b_row = wn * 64 + (lane & 7) + ((lane >> 4) << 3);
  const int b_chk = (lane >> 3) & 1;

  float acc[2][8][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j)
#pragma unroll
      for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.0f;

  // Prologue: stages 0..kStages-2 in flight, one commit group each (empty past the last tile, so
  // that the group count below stays uniform).
#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < ktiles) load_tile(st, st);
    cp_async_commit();
  }

  for (int kt = 0; kt < ktiles; ++kt) {
    // Groups committed so far: kStages-1+kt; allowing kStages-2 pending means tile kt has landed
    // (for this thread); the barrier makes every thread's copies visible and also ensures that
    // everyone is done reading stage (kt-1) % kStages, which the prefetch below overwrites.
    cp_async_wait<kStages - 2>();
    __syncthreads();
    const int nk = kt + kStages - 1;
    if (nk < ktiles) load_tile(nk % kStages, nk);
    cp_async_commit();

    const unsigned sa = sbase + (kt % kStages) * kStageBytes;
    const unsigned sb = sa + kBM * kRowBytes;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[2][4];
      uint32_t bf[8][2];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        ldmatrix_x4(af[i], sa + tile_offset(a_row + i * 16, kk * 2 + a_chk));
        if constexpr (kAct) {
#pragma unroll
          for (int q = 0; q < 4; ++q) af[i][q] = activate_pair<TI>(act, af[i][q]);
        }
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        uint32_t r[4];
        ldmatrix_x4(r, sb + tile_offset(b_row + j * 16, kk * 2 + b_chk));
        bf[2 * j][0] = r[0];
        bf[2 * j][1] = r[1];
        bf[2 * j + 1][0] = r[2];
        bf[2 * j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) mma16816<TI>(acc[i][j], af[i], bf[j][0], bf[j][1]);
    }
  }
  cp_async_wait<0>();  // only empty groups can remain; leave none behind

  // Epilogue straight from the accumulators: c0, c1 are (row g, cols 2t, 2t+1), c2, c3 the same
  // columns of row g+8 (g = lane / 4, t = lane % 4).
  const int g = lane >> 2, t = lane & 3;
  const bool pair_ok = (reinterpret_cast<uintptr_t>(e.y) % (2 * sizeof(TY)) == 0) && (e.ldy % 2 == 0);
#pragma unroll
  for (int i = 0; i < 2; ++i) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const size_t r = m0 + wm * 32 + i * 16 + g + h * 8;
      if (r >= e.m) continue;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const size_t c = n0 + wn * 64 + j * 8 + t * 2;
        const float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
        if (pair_ok && c + 1 < e.n) {
          store_pair(static_cast<TY*>(e.y) + r * e.ldy + c, gemm_epilogue_value<TY>(e, r, c, v0),
                     gemm_epilogue_value<TY>(e, r, c + 1, v1));
        } else {
          gemm_epilogue_store<TY>(e, r, c, v0);
          gemm_epilogue_store<TY>(e, r, c + 1, v1);
        }
      }
    }
  }
}

template <class TI, class TY>
ckc_status launch(ckc_stream* s, const ckc_gemm_args& a) {
  const bool act = a.x_act != CKC_ACT_NONE;
  auto kernel = act ? gemm_sm80_kernel<TI, TY, true> : gemm_sm80_kernel<TI, TY, false>;
  // Above the 48 KiB default: opt in (per kernel; cheap enough to repeat on every call, and right
  // for whichever device is current).
  ckc_status st = check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes),
                        "gemm_sm80: cudaFuncSetAttribute");
  if (st != CKC_OK) return st;

  return gemm_row_launches<TY>(a, kBM, kBN, "gemm_sm80", [&](dim3 grid, size_t r0, const GemmEpilogue& e) {
    kernel<<<grid, kThreads, kSmemBytes, s->stream>>>(static_cast<const TI*>(a.x) + r0 * a.ldx, a.ldx,
                                                      static_cast<const TI*>(a.w), a.ldw, static_cast<int>(a.k),
                                                      a.x_act, e);
  });
}

}  // namespace

ckc_status gemm_sm80(ckc_stream* s, const ckc_gemm_args& a) {
  return with_dtype(a.in_type, [&](auto ti) -> ckc_status {
    using TI = decltype(ti);
    if constexpr (std::is_same_v<TI, float>) {
      return fail(CKC_ERR_ARG, "gemm_sm80: inputs must be bf16 or f16");
    } else {
      return with_dtype(a.y_type, [&](auto ty) -> ckc_status { return launch<TI, decltype(ty)>(s, a); });
    }
  });
}

}  // namespace ckc
