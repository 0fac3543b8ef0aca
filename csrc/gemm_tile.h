// The GEMM register tile of each ISA pass, shared by the fp32 and bf16-weight micro-kernels:
// MR rows × NV vectors (NR = NV·V::W columns, a multiple of the 16-column weight panels).
// kGemmKC: the K block the driver aims for (GemmKernel::kc), from the block-size table (gemm_blocks.h).
// Included inside the ISA passes of gemm*.cpp (after V): no include guard.
#if defined(CK_PASS_AVX512)
constexpr int kGemmMR = 12, kGemmNV = 2;
constexpr size_t kGemmKC = gemm_blocks::kKcF32Avx512;
#define CK_GEMM_TILE "avx512_12x32"
// A 13-row tile beside it (26 accumulators, 29 of the 32 registers), for row counts that 13 divides
// better than 12 (gemm_driver picks by tile_cost): a text of 52 tokens is 4 × 13 rows instead of
// 4 × 12 + a 4-row kernel, 8 of them split 208 + 208 between two threads, 16 × 13 each.
constexpr int kGemmMRTall = 13;
#define CK_GEMM_TILE_TALL "avx512_13x32"
#elif defined(CK_PASS_AVX2)
constexpr int kGemmMR = 6, kGemmNV = 2;
#define CK_GEMM_TILE "avx2_6x16"
constexpr size_t kGemmKC = gemm_blocks::kKcF32;
#elif defined(CK_PASS_NEON)
constexpr int kGemmMR = 6, kGemmNV = 4;
#define CK_GEMM_TILE "neon_6x16"
constexpr size_t kGemmKC = gemm_blocks::kKcF32;
#else
constexpr int kGemmMR = 4, kGemmNV = 16 / V::W;
#define CK_GEMM_TILE "scalar_4x16"
constexpr size_t kGemmKC = gemm_blocks::kKcF32;
#endif

// Calls run(std::integral_constant<int, RA>) with RA = gemm_rows_for(mv, MR) (gemm_kernel.h): the
// accumulator rows a micro-panel of mv rows needs (a last micro-panel: 52 rows = 4·12 + 4; micro-panels
// of 10 rows). The micro-kernels are instantiated for those row counts.
template <int MR, typename Run>
static inline void gemm_by_rows(int mv, Run&& run) {
  constexpr int R1 = gemm_rows_for(1, MR), R2 = gemm_rows_for(R1 + 1, MR), R3 = gemm_rows_for(R2 + 1, MR);
  if (mv <= R1) run(std::integral_constant<int, R1>());
  else if (mv <= R2) run(std::integral_constant<int, R2>());
  else if (mv <= R3) run(std::integral_constant<int, R3>());
  else run(std::integral_constant<int, MR>());
}
