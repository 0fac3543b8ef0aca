// The sm_90a GEMM path (H100 / H200): y = epilogue(alpha · x · wᵀ + bias) on wgmma fed by TMA.
//
// Design
//   - Block tile 128 × 256 × 64 (BM × BN × BK), 384 threads: warpgroup 0 produces, warpgroups 1 and 2
//     consume. Consumer c owns rows [64c, 64c + 64) of the tile and all 256 columns: one
//     m64n256k16 wgmma per k16 step, 128 fp32 accumulators per thread. The widest wgmma does the most
//     MMA work per byte of shared memory it reads, the 128 × 256 tile loads less x and w per output
//     than 128 × 128, and 128 accumulators fit in the 168 registers per thread of a 384-thread
//     block. setmaxnreg moves the producer's spare registers to the consumers (40 + 2 · 232 =
//     3 · 168: the pool must balance, or the increase waits forever). CLIP's widths (512, 768,
//     1024, 2304, 3072) are multiples of 256.
//   - One producer thread issues TMA loads of an x box [128 rows × 64 k] and a w box [256 rows × 64 k]
//     per stage into a 4-stage ring (48 KiB per stage), 128-byte swizzled. Per stage a "full"
//     mbarrier (TMA transaction bytes) and an "empty" one (one arrival per consumer warp, given once
//     the wgmma that read the stage has completed). Ring plus epilogue staging: 224 KiB of 227.
//   - Persistent: grid = min(tiles, SMs), CTA b takes tiles b, b + grid, ...; tile t is placed in bands
//     of 8 m-tiles (all n-tiles of a band before the next band), so CTAs running together share x and
//     w tiles in L2. The producer runs ahead into the next tile while the consumers store this one.
//   - Epilogue: each warp passes its 16 accumulator rows through shared memory, 64 columns at a
//     time, and stores every row as one contiguous run (2 elements a lane) with gemm_epilogue_value.
//   - Tails: TMA fills the parts of a box outside [m or n) × [k) with zeros, so a k tail adds 0 and
//     m / n tails compute rows and columns that the epilogue's bounds checks drop.
//
// Device code exists only in the sm_90a pass (wgmma, TMA and setmaxnreg are sm_90a features); the
// sm_80 and compute_80 passes see an empty kernel body, and the host code compiles in every pass.
#include <cuda.h>          // CUtensorMap and its enums: types only, the library does not link libcuda
#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

#include <atomic>
#include <climits>
#include <string>
#include <type_traits>

#include "gemm.cuh"

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ >= 900) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define CKC_GEMM_SM90A_DEVICE 1
#endif

namespace ckc {
namespace {

constexpr int kBM = 128, kBN = 256, kBK = 64;  // kBK · 2 bytes = 128: one swizzle row per tile row
constexpr int kStages = 4;
constexpr int kThreads = 384;
constexpr int kConsumerWarps = 8;
constexpr int kEpiCols = 64;    // accumulator columns staged per epilogue round
constexpr int kEpiRows = 16;    // rows of one warp's accumulator fragment

constexpr uint32_t kABytes = kBM * kBK * 2;      // 16 KiB
constexpr uint32_t kBBytes = kBN * kBK * 2;      // 32 KiB
constexpr uint32_t kStageBytes = kABytes + kBBytes;
constexpr uint32_t kEpiWarpBytes = kEpiRows * kEpiCols * 4;
// Shared memory from a 1024-byte aligned base: A ring, B ring, epilogue staging, mbarriers.
constexpr uint32_t kOffB = kStages * kABytes;
constexpr uint32_t kOffEpi = kStages * kStageBytes;
constexpr uint32_t kOffBar = kOffEpi + kConsumerWarps * kEpiWarpBytes;
constexpr uint32_t kSmemUsed = kOffBar + 2 * kStages * 8;
constexpr uint32_t kSmemBytes = kSmemUsed + 1024;  // room to round the dynamic base up to 1024
// 128-byte swizzle repeats every 8 rows × 128 bytes: each TMA destination must start on 1024 bytes,
// which the descriptors (base offset 0) and the swizzle both assume.
static_assert(kABytes % 1024 == 0 && kBBytes % 1024 == 0 && (kABytes / 2) % 1024 == 0 && kOffB % 1024 == 0,
              "TMA destinations on swizzle atoms");
static_assert(kSmemBytes <= 227 * 1024, "over the sm_90 shared memory per block");

struct Sm90Params {
  GemmEpilogue e;
  uint32_t m_tiles, n_tiles, k_blocks;
  int vec;  // y's rows take 2-element stores: ldy even and y aligned to 2 elements
};

template <class TY>
struct alignas(2 * sizeof(TY)) Pair {
  TY lo, hi;
};

#ifdef CKC_GEMM_SM90A_DEVICE

__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// ---- mbarriers ----
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(bar), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(bar) : "memory");
}
// Returns once the phase of the given parity has completed. A fresh barrier is in phase 0, so
// waiting for parity 1 returns at once: the producer's first pass over the empty ring.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  uint32_t done;
  do {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n"
        "}\n"
        : "=r"(done)
        : "r"(bar), "r"(parity)
        : "memory");
  } while (!done);
}

// ---- TMA: box (c0 = k element, c1 = row) of map into shared memory, completing on bar ----
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int c0, int c1, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];" ::"r"(dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(bar)
      : "memory");
}
__device__ __forceinline__ void tma_prefetch_map(const CUtensorMap* map) {
  asm volatile("prefetch.tensormap [%0];" ::"l"(reinterpret_cast<uint64_t>(map)) : "memory");
}

// ---- wgmma ----
// Shared-memory matrix descriptor of a K-major tile written by TMA with 128-byte swizzle: rows of
// 128 bytes (64 elements of k) one after the other, 8-row groups 1024 bytes apart (stride byte
// offset), leading byte offset unused for swizzled K-major layouts (1 by convention), base offset 0
// (tile on 1024 bytes), swizzle mode 1 = 128B in bits 62-63. Fields hold byte values >> 4.
// Stepping k by 16 elements inside the 128-byte row adds 32 bytes (2 in the address field): the
// hardware applies the swizzle to the final address bits, as TMA did when writing.
__device__ __forceinline__ uint64_t smem_desc(uint32_t addr) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | (static_cast<uint64_t>(1) << 16) |
         (static_cast<uint64_t>(1024 >> 4) << 32) | (static_cast<uint64_t>(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;" ::"n"(N) : "memory");
}
// Keeps the compiler from moving accumulator reads or writes across the point where it stands
// (wgmma writes them asynchronously, behind the compiler's back).
__device__ __forceinline__ void fence_acc(float (&d)[128]) {
#pragma unroll
  for (int i = 0; i < 128; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

#define CKC_ACC4(i) "+f"(d[(i) + 0]), "+f"(d[(i) + 1]), "+f"(d[(i) + 2]), "+f"(d[(i) + 3])
#define CKC_ACC16(i) CKC_ACC4(i), CKC_ACC4((i) + 4), CKC_ACC4((i) + 8), CKC_ACC4((i) + 12)
#define CKC_ACC64(i) CKC_ACC16(i), CKC_ACC16((i) + 16), CKC_ACC16((i) + 32), CKC_ACC16((i) + 48)
// d (64 × 256, fp32) = A (64 × 16) · B (256 × 16)ᵀ + (scale_d ? d : 0), both operands K-major in
// shared memory (transpose flags 0). Accumulator layout (thread t of the warpgroup, warp w = t / 32,
// lane l): d[4j + 0..1] = row 16w + l/4, columns 8j + 2(l%4) + 0..1; d[4j + 2..3] = row + 8.
#define CKC_WGMMA_M64N256K16(TYPES)                                                                          \
  asm volatile(                                                                                              \
      "{\n"                                                                                                  \
      ".reg .pred p;\n"                                                                                      \
      "setp.ne.b32 p, %130, 0;\n"                                                                            \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32" TYPES " {"                                              \
      "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                               \
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "                     \
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "                     \
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "                     \
      "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "                     \
      "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "                     \
      "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, "         \
      "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"       \
      "}, %128, %129, p, 1, 1, 0, 0;\n"                                                                      \
      "}\n"                                                                                                  \
      : CKC_ACC64(0), CKC_ACC64(64)                                                                          \
      : "l"(desc_a), "l"(desc_b), "r"(scale_d))

template <class TIn>
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], uint64_t desc_a, uint64_t desc_b, uint32_t scale_d) {
  if constexpr (std::is_same_v<TIn, __nv_bfloat16>) {
    CKC_WGMMA_M64N256K16(".bf16.bf16");
  } else {
    CKC_WGMMA_M64N256K16(".f16.f16");
  }
}
#undef CKC_WGMMA_M64N256K16
#undef CKC_ACC64
#undef CKC_ACC16
#undef CKC_ACC4

// Tile t's (m-tile, n-tile): bands of kGroupM m-tiles, m fastest inside a band.
__device__ __forceinline__ void tile_coords(const Sm90Params& p, uint32_t t, uint32_t& tm, uint32_t& tn) {
  constexpr uint32_t kGroupM = 8;
  const uint32_t per_band = kGroupM * p.n_tiles;
  const uint32_t band = t / per_band;
  const uint32_t first_m = band * kGroupM;
  const uint32_t rows = min(kGroupM, p.m_tiles - first_m);
  const uint32_t local = t - band * per_band;
  tm = first_m + local % rows;
  tn = local / rows;
}

// Elements (r, c) and (r, c + 1) of y from their accumulators; r < m checked by the caller.
template <class TY>
__device__ __forceinline__ void store_pair(const Sm90Params& p, size_t r, size_t c, float a0, float a1) {
  const GemmEpilogue& e = p.e;
  if (p.vec && c + 1 < e.n) {
    Pair<TY> v;
    v.lo = from_f32<TY>(gemm_epilogue_value<TY>(e, r, c, a0));
    v.hi = from_f32<TY>(gemm_epilogue_value<TY>(e, r, c + 1, a1));
    *reinterpret_cast<Pair<TY>*>(static_cast<TY*>(e.y) + r * e.ldy + c) = v;
  } else {
    gemm_epilogue_store<TY>(e, r, c, a0);
    gemm_epilogue_store<TY>(e, r, c + 1, a1);
  }
}

#endif  // CKC_GEMM_SM90A_DEVICE

template <class TIn, class TY>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_sm90_kernel(const __grid_constant__ CUtensorMap map_x, const __grid_constant__ CUtensorMap map_w,
                     const Sm90Params p) {
#ifdef CKC_GEMM_SM90A_DEVICE
  // The dynamic base is rounded up here rather than declared 1024-aligned, so that nothing relies on
  // an alignment the launch does not promise.
  extern __shared__ __align__(16) uint8_t smem_raw[];
  const uint32_t raw = smem_u32(smem_raw);
  const uint32_t base = (raw + 1023u) & ~1023u;
  float* const epi = reinterpret_cast<float*>(smem_raw + (base - raw) + kOffEpi);
  const uint32_t a_ring = base, b_ring = base + kOffB;
  const uint32_t full_bar = base + kOffBar, empty_bar = full_bar + kStages * 8;

  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      mbar_init(full_bar + s * 8, 1);                 // the producer's arrive.expect_tx
      mbar_init(empty_bar + s * 8, kConsumerWarps);   // lane 0 of each consumer warp
    }
    // The barriers are used by the TMA unit (async proxy) as well.
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
  }
  __syncthreads();

  const uint32_t tiles = p.m_tiles * p.n_tiles;
  const int warpgroup = threadIdx.x / 128;
  // Producer and consumers walk the same tiles and k-blocks, so both sides count the same stage
  // sequence (stage, phase) and no other synchronisation is needed after this point.
  if (warpgroup == 0) {
    asm volatile("setmaxnreg.dec.sync.aligned.u32 40;");
    if (threadIdx.x == 0) {
      tma_prefetch_map(&map_x);
      tma_prefetch_map(&map_w);
      uint32_t stage = 0, phase = 0;
      for (uint32_t t = blockIdx.x; t < tiles; t += gridDim.x) {
        uint32_t tm, tn;
        tile_coords(p, t, tm, tn);
        for (uint32_t kb = 0; kb < p.k_blocks; ++kb) {
          mbar_wait(empty_bar + stage * 8, phase ^ 1);
          // Out-of-bounds elements are written (as zeros) and counted, so a stage always
          // receives the full box bytes.
          mbar_arrive_expect_tx(full_bar + stage * 8, kStageBytes);
          tma_load_2d(a_ring + stage * kABytes, &map_x, static_cast<int>(kb * kBK), static_cast<int>(tm * kBM),
                      full_bar + stage * 8);
          tma_load_2d(b_ring + stage * kBBytes, &map_w, static_cast<int>(kb * kBK), static_cast<int>(tn * kBN),
                      full_bar + stage * 8);
          if (++stage == kStages) {
            stage = 0;
            phase ^= 1;
          }
        }
      }
    }
  } else {
    asm volatile("setmaxnreg.inc.sync.aligned.u32 232;");
    const int consumer = warpgroup - 1;          // rows [64 · consumer, +64) of the tile
    const int warp = (threadIdx.x / 32) % 4;     // rows [16 · warp, +16) of those
    const int lane = threadIdx.x % 32;
    float* const stage_buf = epi + (consumer * 4 + warp) * (kEpiRows * kEpiCols);
    float acc[128];
#pragma unroll
    for (int i = 0; i < 128; ++i) acc[i] = 0.0f;

    uint32_t stage = 0, phase = 0;
    for (uint32_t t = blockIdx.x; t < tiles; t += gridDim.x) {
      uint32_t tm, tn;
      tile_coords(p, t, tm, tn);
      uint32_t held = 0;  // the stage the wgmma group in flight reads
      for (uint32_t kb = 0; kb < p.k_blocks; ++kb) {
        mbar_wait(full_bar + stage * 8, phase);
        const uint64_t da = smem_desc(a_ring + stage * kABytes + consumer * (kABytes / 2));
        const uint64_t db = smem_desc(b_ring + stage * kBBytes);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kBK / 16; ++kk)  // +32 bytes per k16 step = +2 in the address field
          wgmma_m64n256k16<TIn>(acc, da + 2 * kk, db + 2 * kk, (kb | kk) != 0);
        wgmma_commit();
        // At most the group just issued is still running: the previous one (and its stage) is done.
        wgmma_wait<1>();
        if (kb > 0 && lane == 0) mbar_arrive(empty_bar + held * 8);
        held = stage;
        if (++stage == kStages) {
          stage = 0;
          phase ^= 1;
        }
      }
      wgmma_wait<0>();
      fence_acc(acc);
      if (lane == 0) mbar_arrive(empty_bar + held * 8);

      // Epilogue. This warp's fragment rows are r = lane/4 and r + 8 of its 16; per n8 block j the
      // columns are 8j + 2(lane%4) + {0, 1}. Staging holds 16 rows × 64 columns as 32 float2 slots a
      // row; slot s of row i sits at s ^ (4 · (i % 8)), so that both the fragment-order writes (8
      // rows × 4 slots a warp) and the row-order reads (one row a warp) are free of bank conflicts.
      const int r = lane >> 2, q = lane & 3;
      const size_t row0 = static_cast<size_t>(tm) * kBM + consumer * 64 + warp * 16;
#pragma unroll
      for (int chunk = 0; chunk < kBN / kEpiCols; ++chunk) {
#pragma unroll
        for (int jj = 0; jj < kEpiCols / 8; ++jj) {
          const int j = chunk * (kEpiCols / 8) + jj;
          const int slot = (jj * 4 + q) ^ (r * 4);
          *reinterpret_cast<float2*>(stage_buf + r * kEpiCols + slot * 2) = make_float2(acc[4 * j], acc[4 * j + 1]);
          *reinterpret_cast<float2*>(stage_buf + (r + 8) * kEpiCols + slot * 2) =
              make_float2(acc[4 * j + 2], acc[4 * j + 3]);
        }
        __syncwarp();
        const size_t col = static_cast<size_t>(tn) * kBN + chunk * kEpiCols + 2 * lane;
#pragma unroll 4
        for (int i = 0; i < kEpiRows; ++i) {
          const size_t row = row0 + i;
          if (row < p.e.m) {  // the same for the whole warp
            const float2 v = *reinterpret_cast<const float2*>(stage_buf + i * kEpiCols + ((lane ^ ((i & 7) * 4)) * 2));
            store_pair<TY>(p, row, col, v.x, v.y);
          }
        }
        __syncwarp();  // the next chunk overwrites what the other lanes just read
      }
    }
  }
#endif  // CKC_GEMM_SM90A_DEVICE
}

// ---- host ----

// cuTensorMapEncodeTiled through the runtime's driver entry point (cudart is linked statically,
// libcuda is not linked); looked up once.
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q);
    if (e != cudaSuccess) (void)cudaGetLastError();  // do not leave it for the next launch check
    return (e == cudaSuccess && q == cudaDriverEntryPointSuccess) ? reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f)
                                                                  : nullptr;
  }();
  return fn;
}

// A row-major [rows, k] operand with row stride ld elements, read in boxes of box_rows × kBK.
ckc_status encode_operand(PFN_cuTensorMapEncodeTiled_v12000 encode, CUtensorMap* map, const void* ptr,
                          CUtensorMapDataType type, size_t rows, size_t k, size_t ld, uint32_t box_rows, const char* name) {
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(k), static_cast<cuuint64_t>(rows)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(ld) * 2};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kBK), box_rows};
  const cuuint32_t elem_strides[2] = {1, 1};
  const CUresult r = encode(map, type, 2, const_cast<void*>(ptr), dims, strides, box, elem_strides,
                            CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                            CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  if (r != CUDA_SUCCESS)
    return fail(CKC_ERR_CUDA, std::string("gemm (sm_90): cuTensorMapEncodeTiled failed for ") + name + " (CUresult " +
                                  std::to_string(static_cast<int>(r)) + ")");
  return CKC_OK;
}

template <class TIn, class TY>
ckc_status launch(ckc_stream* s, const ckc_gemm_args& a, const CUtensorMap& map_x, const CUtensorMap& map_w) {
  auto kernel = gemm_sm90_kernel<TIn, TY>;
  // The shared-memory opt-in belongs to the function on the current device: set it per device.
  static std::atomic<int> configured_device{-1};
  int device = -1;
  if (ckc_status st = check(cudaGetDevice(&device), "gemm (sm_90): cudaGetDevice")) return st;
  if (configured_device.load(std::memory_order_acquire) != device) {
    if (ckc_status st = check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(kSmemBytes)),
                              "gemm (sm_90): cudaFuncSetAttribute (dynamic shared memory)"))
      return st;
    configured_device.store(device, std::memory_order_release);
  }

  Sm90Params p;
  p.e = gemm_epilogue_of(a);
  p.m_tiles = static_cast<uint32_t>((a.m + kBM - 1) / kBM);
  p.n_tiles = static_cast<uint32_t>((a.n + kBN - 1) / kBN);
  p.k_blocks = static_cast<uint32_t>((a.k + kBK - 1) / kBK);
  p.vec = (a.ldy % 2 == 0) && (reinterpret_cast<uintptr_t>(a.y) % (2 * sizeof(TY)) == 0);

  const uint32_t tiles = p.m_tiles * p.n_tiles;
  int sms = device_sm_count();
  if (sms <= 0) sms = 132;
  const unsigned grid = tiles < static_cast<uint32_t>(sms) ? tiles : static_cast<unsigned>(sms);
  kernel<<<grid, kThreads, kSmemBytes, s->stream>>>(map_x, map_w, p);
  return check_launch("gemm (sm_90): kernel launch");
}

}  // namespace

ckc_status gemm_sm90(ckc_stream* s, const ckc_gemm_args& a) {
  if (a.in_type != CKC_BF16 && a.in_type != CKC_F16)
    return fail(CKC_ERR_UNSUPPORTED, std::string("gemm (sm_90): inputs must be bf16 or f16, not ") + dtype_name(a.in_type));
  if (!valid_dtype(a.y_type)) return fail(CKC_ERR_ARG, "gemm (sm_90): unknown output dtype");
  if (a.x_act != CKC_ACT_NONE) return fail(CKC_ERR_UNSUPPORTED, "gemm (sm_90): x_act must be none on this path");
  if (!a.x || !a.w || !a.y) return fail(CKC_ERR_ARG, "gemm (sm_90): null x, w or y");
  if (a.epilogue == CKC_EPILOGUE_RESIDUAL && !a.residual)
    return fail(CKC_ERR_ARG, "gemm (sm_90): residual epilogue without a residual");
  if (a.m == 0 || a.n == 0 || a.k == 0) return fail(CKC_ERR_ARG, "gemm (sm_90): m, n and k must be at least 1");
  // TMA: coordinates are int32, row strides a multiple of 16 bytes below 2^40, base 16-byte aligned.
  if (a.m > INT_MAX || a.n > INT_MAX || a.k > INT_MAX)
    return fail(CKC_ERR_UNSUPPORTED, "gemm (sm_90): m, n and k must be below 2^31");
  if (a.k % 8 || a.ldx % 8 || a.ldw % 8)
    return fail(CKC_ERR_ARG, "gemm (sm_90): k, ldx and ldw must be multiples of 8");
  if (a.ldx < a.k || a.ldw < a.k) return fail(CKC_ERR_ARG, "gemm (sm_90): ldx and ldw must be at least k");
  if ((a.ldx >> 39) || (a.ldw >> 39)) return fail(CKC_ERR_ARG, "gemm (sm_90): ldx or ldw too large for TMA");
  if (reinterpret_cast<uintptr_t>(a.x) % 16 || reinterpret_cast<uintptr_t>(a.w) % 16)
    return fail(CKC_ERR_ARG, "gemm (sm_90): x and w must be 16-byte aligned");
  const size_t m_tiles = (a.m + kBM - 1) / kBM, n_tiles = (a.n + kBN - 1) / kBN;
  if (m_tiles * n_tiles > static_cast<size_t>(INT_MAX))
    return fail(CKC_ERR_UNSUPPORTED, "gemm (sm_90): too many output tiles");

  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  if (!encode) return fail(CKC_ERR_DRIVER_TOO_OLD, "gemm (sm_90): the driver provides no cuTensorMapEncodeTiled");
  const CUtensorMapDataType type = a.in_type == CKC_BF16 ? CU_TENSOR_MAP_DATA_TYPE_BFLOAT16 : CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
  CUtensorMap map_x, map_w;
  if (ckc_status st = encode_operand(encode, &map_x, a.x, type, a.m, a.k, a.ldx, kBM, "x")) return st;
  if (ckc_status st = encode_operand(encode, &map_w, a.w, type, a.n, a.k, a.ldw, kBN, "w")) return st;

  return with_dtype(a.y_type, [&](auto y) -> ckc_status {
    using TY = decltype(y);
    return a.in_type == CKC_BF16 ? launch<__nv_bfloat16, TY>(s, a, map_x, map_w) : launch<__half, TY>(s, a, map_x, map_w);
  });
}

}  // namespace ckc
