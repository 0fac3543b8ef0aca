// The GEMM's planning (gemm_plan.h): the tile height, the blocks, and the cost model that picks
// between tiles.
#include "gemm_plan.h"

#include <algorithm>

#include "cpu_features.h"
#include "gemm_blocks.h"

namespace ck {

namespace {

Blocking blocking_for(const GemmKernel& kern, size_t K) {
  Blocking b;
  b.nkb = std::max<size_t>(1, (K + kern.kc - 1) / kern.kc);
  b.kc = round_up((K + b.nkb - 1) / b.nkb, kern.k_align);
  if (b.kc) b.nkb = std::max<size_t>(1, (K + b.kc - 1) / b.kc);
  b.a_bytes = b.kc * kern.a_bytes_per_k;
  b.a_panel_bytes = kern.a_panel_fixed ? kern.a_panel_fixed : b.a_bytes;
  const size_t mr = kern.mr, max_panels = gemm_blocks::kMaxRowsMC / mr;
  const size_t l2_panels = b.a_bytes ? gemm_blocks::a_block_bytes(cpu_features().l2_bytes) / b.a_bytes : max_panels;
  b.mc_max = std::max(mr, std::min(max_panels, l2_panels) * mr);
  return b;
}

// The micro-kernel work of m rows in micro-panels of `rows` (<= MR) rows, in row-calls: each call
// runs the accumulator rows gemm_rows_for picks plus a fixed cost: about half a row, or 1.6 rows
// for a third-of-MR kernel, which runs at a lower rate than the others.
double tile_cost(size_t m, size_t rows, size_t MR) {
  auto run = [&](size_t mv) -> double {
    const int ra = gemm_rows_for(static_cast<int>(mv), static_cast<int>(MR));
    return ra + (ra == gemm_rows_for(1, static_cast<int>(MR)) ? 1.6 : 0.5);
  };
  return double(m / rows) * run(rows) + (m % rows ? run(m % rows) : 0.0);
}

// The rows of the micro-panels for one M block of m rows (the only one): MR, or MR - 2 when those
// cover m for less (the 12-row AVX-512 tiles, whose kernels come in 10-row copies through
// gemm_by_rows). A 50-row ViT-B/32 image: 5 × 10 rows instead of 4 × 12 and a 4-row kernel for the
// last 2; a 77-token text: 7 × 10 + 7.
size_t single_block_rows(const GemmKernel& kern, size_t m) {
  const size_t mr = kern.mr;
  return mr == 12 && tile_cost(m, mr - 2, mr) < 0.985 * tile_cost(m, mr, mr) ? mr - 2 : mr;
}

// Calls fn(ic, mb) for the M blocks of rows [r0, r1): equal heights, multiples of mr, at most mc_max.
template <typename Fn>
void for_m_blocks(const GemmPlan& plan, size_t r0, size_t r1, Fn&& fn) {
  if (r0 >= r1) return;
  const size_t rows = r1 - r0, blocks = (rows + plan.blk.mc_max - 1) / plan.blk.mc_max;
  const size_t mc = round_up((rows + blocks - 1) / blocks, plan.mr);
  for (size_t ic = r0; ic < r1; ic += mc) fn(ic, std::min(mc, r1 - ic));
}

GemmPlan plan_for(const GemmKernel& kern, size_t m, size_t n, size_t K, size_t threads) {
  GemmPlan p;
  p.kern = &kern;
  p.blk = blocking_for(kern, K);
  p.mr = m <= p.blk.mc_max ? single_block_rows(kern, m) : kern.mr;
  p.n_tiles = (n + kern.nr - 1) / kern.nr;
  p.threads = threads;
  p.rows_per_thread = threads > 1 && m > p.blk.mc_max;
  return p;
}

// The busiest thread's micro-kernel work (tile_cost) for m rows under the plan.
double busiest_thread_cost(const GemmPlan& plan, size_t m) {
  auto rows_cost = [&](size_t r0, size_t r1) {
    double cost = 0;
    for_m_blocks(plan, r0, r1, [&](size_t, size_t mb) { cost += tile_cost(mb, plan.mr, plan.kern->mr); });
    return cost;
  };
  if (!plan.rows_per_thread) return rows_cost(0, m);
  double worst = 0;
  for (size_t part = 0; part < plan.threads; ++part) {
    size_t r0, r1;
    part_rows(plan, m, part, plan.threads, &r0, &r1);
    if (r0 < r1) worst = std::max(worst, rows_cost(r0, r1));
  }
  return worst;
}

}  // namespace

bool GemmPlan::k_inner(size_t nk, size_t mp) const {
  return nk > 1 && nk * mp * blk.a_bytes <= gemm_blocks::k_inner_bytes(cpu_features().l2_bytes);
}

GemmPlan plan_gemm(const GemmKernel& kern, size_t m, size_t n, size_t K, size_t threads) {
  const GemmPlan plan = plan_for(kern, m, n, K, threads);
  if (kern.taller) {
    const GemmPlan tall = plan_for(*kern.taller, m, n, K, threads);
    if (busiest_thread_cost(tall, m) < 0.995 * busiest_thread_cost(plan, m)) return tall;
  }
  return plan;
}

void part_rows(const GemmPlan& plan, size_t m, size_t part, size_t parts, size_t* r0, size_t* r1) {
  const size_t mr = plan.kern->mr, unit = mr % 3 == 0 ? mr / 3 : mr;
  *r0 = std::min(m, round_up(m * part / parts, unit));
  *r1 = part + 1 == parts ? m : std::min(m, round_up(m * (part + 1) / parts, unit));
}

std::vector<ABlock> a_blocks(const GemmPlan& plan, size_t r0, size_t r1) {
  std::vector<ABlock> out;
  const size_t nkb = plan.blk.nkb;
  for_m_blocks(plan, r0, r1, [&](size_t ic, size_t mb) {
    const size_t panel_bytes = plan.micro_panels(mb) * plan.blk.a_panel_bytes;
    const size_t group = panel_bytes ? std::max<size_t>(1, gemm_blocks::kPackedABudget / panel_bytes) : nkb;
    for (size_t g0 = 0; g0 < nkb; g0 += group) out.push_back({ic, mb, g0, std::min(nkb, g0 + group)});
  });
  return out;
}

}  // namespace ck
