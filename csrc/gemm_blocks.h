// The GEMM's cache block sizes, every kernel's in one table. The register tiles (MR × NR) are the
// ISA passes' own (gemm_tile.h); these say how much of X, W and K the driver takes at a time.
#pragma once
#include <cstddef>

namespace ck {
namespace gemm_blocks {

// K blocks (GemmKernel::kc): K is cut into equal blocks of at most this many k. A C tile's partial
// sums go through Y once per K block, so a block that holds a whole layer's K (768 for a ViT-B)
// stores each C tile once; the B tile (kc × NR) must still stream from L1 or L2 as the
// micro-kernel reads it.
constexpr size_t kKcF32Avx512 = 768;  // B tile kc·32 floats, from L2
constexpr size_t kKcF32 = 384;        // AVX2, NEON, scalar: the kc·16-float B tile stays in L1
constexpr size_t kKcBf16Dot = 768;    // AVX512-BF16: bf16 pairs, half the bytes of fp32 at the same kc
constexpr size_t kKcAmx = 768;        // AMX: a multiple of the 32-k tile step

// M blocks: at most this many rows (the L2 size bounds a block further, gemm_plan.cpp). 480 lets a
// 512-wide layer's A block fill 3/4 of a 1 MiB L2 (384 rows), so there the L2 sets the block, not
// this cap; a lower cap would cut a batch into more M blocks, each streaming every weight again.
constexpr size_t kMaxRowsMC = 480;

// The bytes an M block's packed A may take in an L2 of l2 bytes (beside it: the B tile and the C
// lines). 3/4, not 1/2: at K = 768 a 1 MiB L2 then holds the 197 rows of a ViT-B/16 image in one
// block, so every weight is streamed once, not twice.
constexpr size_t a_block_bytes(size_t l2) { return l2 * 3 / 4; }

// A thread runs an A group's K blocks inner (a C tile's partial sums then stay in cache from one K
// block to the next) when the group's packed A fits in this much of its L2; else N tiles inner.
constexpr size_t k_inner_bytes(size_t l2) { return l2 / 2; }

// Packed-A bytes per pass over K: a huge K is cut into K groups of this much packed A, so the
// scratch stays bounded.
constexpr size_t kPackedABudget = size_t(4) << 20;

}  // namespace gemm_blocks
}  // namespace ck
