// Internal to gemm*.cpp: how the driver cuts one GEMM (the BLIS planning step). Given a kernel's
// register tile and K block (gemm_kernel.h) and the block sizes (gemm_blocks.h), it picks the tile
// height, the K blocks, the M blocks and how the threads share them. Nothing here touches data.
#pragma once
#include <cstddef>
#include <vector>

#include "gemm_kernel.h"

namespace ck {

inline size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

// K into nkb equal blocks of kc (multiples of the kernel's k_align; K = 0 still runs one empty
// block, for the epilogue), and M into blocks of at most mc_max rows.
struct Blocking {
  size_t nkb, kc;
  size_t a_bytes;        // what an A micro-panel holds (its cache footprint)
  size_t a_panel_bytes;  // where consecutive A micro-panels start
  size_t mc_max;
};

// Rows [ic, ic + mb) of X packed as one A block for K blocks [g0, g1).
struct ABlock {
  size_t ic, mb, g0, g1;
};

struct GemmPlan {
  const GemmKernel* kern;
  Blocking blk;
  size_t mr;        // rows per A micro-panel: the kernel's MR, or MR - 2 for a single block it fits better
  size_t n_tiles;   // N tiles of kern->nr columns
  size_t threads;
  // Rows enough for several M blocks and more than one thread: each thread takes its own rows
  // (part_rows) and packs its own A blocks. Else the threads share each A block: they pack it
  // together, then split its N tiles.
  bool rows_per_thread;

  size_t micro_panels(size_t mb) const { return (mb + mr - 1) / mr; }
  // An A block's K blocks run inner (its C tiles' partial sums stay in cache between K blocks)
  // when nk K blocks of mp micro-panels fit the share of L2 gemm_blocks.h allows; else N tiles inner.
  bool k_inner(size_t nk, size_t mp) const;
};

// The plan for m rows of X times a weight of n × K on `threads` threads; the kernel's taller tile
// (GemmKernel::taller) where it cuts the rows into fewer, fuller micro-panels. The sums run in the
// same order whichever tile: same results bit for bit.
GemmPlan plan_gemm(const GemmKernel& kern, size_t m, size_t n, size_t K, size_t threads);

// Thread `part` of `parts`' rows of m: [*r0, *r1), cut at a third of the kernel's MR (so a part
// ends in a third or two thirds of a micro-panel at worst), or at MR when 3 does not divide it.
void part_rows(const GemmPlan& plan, size_t m, size_t part, size_t parts, size_t* r0, size_t* r1);

// The A blocks of rows [r0, r1) in the order they run: M blocks of equal height (a multiple of mr,
// at most mc_max), each cut into K groups of at most gemm_blocks::kPackedABudget of packed A.
std::vector<ABlock> a_blocks(const GemmPlan& plan, size_t r0, size_t r1);

}  // namespace ck
