// gemm: Y[m,n] = alpha · X[m,k] · W[n,k]ᵀ (+ bias) then GELU / QuickGELU, or + R. fp32 in, fp32
// accumulation, BLIS-style:
//   - W is packed once into 16-column panels [panel][k][16] (pack_weight), the same layout for every
//     ISA, so a weight packed under one ISA runs under any other.
//   - The driver (portable) walks M in MC-row blocks and K in KC blocks (the kernel's kc: 768 for
//     AVX-512, 384 for the others). An M block's X rows are packed into MR-row micro-panels (each
//     row copied, at a fixed stride), and the micro-kernel runs over (K block, N tile, micro-panel):
//     the KC×NR B tile is reused from L1 (AVX2: 24 KiB) or L2 (AVX-512: 96 KiB) while the MC×KC A
//     block is reused from L2. The threads share the work in one of two ways:
//       - rows enough for more than one M block (a batch): each thread takes its own contiguous
//         rows, packs them into its own buffer and runs them over every N tile;
//       - fewer (one image or text): the threads split the packing of the one M block, then its N
//         tiles (and its micro-panels when the N tiles are fewer than the threads), so that each
//         weight byte is read from memory once.
//     Either way a thread that finishes its share early takes over units of work (N tiles, or one
//     K block of one) that another has not started, and while a thread runs one B tile over its
//     micro-panels, each call fetches a slice of the tile the thread runs next, spread over its k
//     steps (GemmTileFetch).
//   - Only the MR×NR micro-kernel is ISA-specific (written once against V, tile chosen per pass):
//       gemm_f32_ukr_avx512_12x32  24 zmm accumulators, 2 B loads + 12 broadcasts per k
//       gemm_f32_ukr_avx512_13x32  26, for the row counts 13 cuts into fuller micro-panels (taller)
//       gemm_f32_ukr_avx2_6x16     12 ymm accumulators, 2 B loads + 6 broadcasts per k
//       gemm_f32_ukr_scalar_4x16   reference speed
//     A micro-panel with fewer rows runs a copy of the kernel with a third, two thirds or (MR >= 12)
//     MR - 2 accumulator rows (52 rows = 4·12 + 4: the fifth call costs a third of a tile), and a
//     single M block of few rows may be cut into micro-panels of MR - 2 rows (tile_cost).
//   - Partial sums across K blocks live in Y; the epilogue (bias, residual, alpha) is applied on the
//     first K block and the activation on the last (gemm_epilogue.h), so R may alias Y.
// Scratch: the driver packs A in ScratchSlot::kGemmPackedA (the calling thread's, or each thread's
// when the threads split the rows), X's activated rows in kGemmInputAct; gemm_unpacked packs B in
// kGemmPackedB.
#ifndef CK_ISA_PASS
#include "gemm.h"

#include <atomic>
#include <memory>
#include <cstdlib>
#include <optional>

#include "cpu_features.h"
#include "elementwise.h"
#include "gemm_kernel.h"

#define CK_SIMD_SELF "gemm.cpp"
#include "isa_passes.h"

namespace ck {

namespace {

// M block, at most (in rows; L2 bounds it further below): 480 lets a 512-wide layer's block fill
// 3/4 of a 1 MiB L2 (384 rows), so there L2 sets the block, not this cap; a lower cap would cut a
// batch into more M blocks, each streaming every weight again.
constexpr size_t kMC = 480;
constexpr size_t kABudget = size_t(4) << 20;   // packed-A bytes per pass over K (bounds scratch for huge K)

size_t round_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

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

// How the driver cuts a GEMM of K for a kernel: K into nkb equal blocks of kc (multiples of
// k_align; K = 0 still runs one empty block for the epilogue), and M into blocks of at most mc_max
// rows: kMC and an A block of at most 3/4 of L2 (beside it: the B tile and the C lines). 3/4, not
// half: at K = 768 a 1 MiB L2 then holds the 197 rows of a ViT-B/16 image in one block, so every
// weight is streamed once, not twice.
struct Blocking {
  size_t nkb, kc;
  size_t a_bytes, a_panel_bytes;  // what an A micro-panel holds (its cache footprint); where they start
  size_t mc_max;
};

Blocking blocking_for(const GemmKernel& kern, size_t K) {
  Blocking b;
  b.nkb = std::max<size_t>(1, (K + kern.kc - 1) / kern.kc);
  b.kc = round_up((K + b.nkb - 1) / b.nkb, kern.k_align);
  if (b.kc) b.nkb = std::max<size_t>(1, (K + b.kc - 1) / b.kc);
  b.a_bytes = b.kc * kern.a_bytes_per_k;
  b.a_panel_bytes = kern.a_panel_fixed ? kern.a_panel_fixed : b.a_bytes;
  const size_t mr = kern.mr, l2_panels = b.a_bytes ? cpu_features().l2_bytes * 3 / 4 / b.a_bytes : kMC;
  b.mc_max = std::max(mr, std::min(kMC / mr, l2_panels) * mr);
  return b;
}

// Part `part` of `parts` of m rows for MR-row micro-panels: rows [*r0, *r1), cut at a third of MR
// (so a part ends in a third or two thirds of a micro-panel at worst), or at MR when 3 does not divide it.
void part_rows(size_t m, size_t part, size_t parts, size_t mr, size_t* r0, size_t* r1) {
  const size_t unit = mr % 3 == 0 ? mr / 3 : mr;
  *r0 = std::min(m, round_up(m * part / parts, unit));
  *r1 = part + 1 == parts ? m : std::min(m, round_up(m * (part + 1) / parts, unit));
}

// The rows of the micro-panels for one M block of m rows (the only one): MR, or MR - 2 when those
// cover m for less (the 12-row AVX-512 tiles, whose kernels come in 10-row copies through
// gemm_by_rows). A 50-row ViT-B/32 image: 5 × 10 rows instead of 4 × 12 and a 4-row kernel for the
// last 2; a 77-token text: 7 × 10 + 7.
size_t single_block_rows(const GemmKernel& kern, size_t m) {
  const size_t mr = kern.mr;
  return mr == 12 && tile_cost(m, mr - 2, mr) < 0.985 * tile_cost(m, mr, mr) ? mr - 2 : mr;
}

// The busiest thread's micro-kernel work (tile_cost) for m rows, as gemm_driver splits them.
double driver_cost(const GemmKernel& kern, const Blocking& b, size_t m, size_t threads) {
  const size_t mr = kern.mr;
  if (threads > 1 && m > b.mc_max) {  // each thread its own rows (gemm_driver)
    double worst = 0;
    for (size_t part = 0; part < threads; ++part) {
      size_t r0, r1;
      part_rows(m, part, threads, mr, &r0, &r1);
      if (r0 >= r1) continue;
      const size_t rows = r1 - r0, blocks = (rows + b.mc_max - 1) / b.mc_max, mcp = round_up((rows + blocks - 1) / blocks, mr);
      double cost = 0;
      for (size_t ic = r0; ic < r1; ic += mcp) cost += tile_cost(std::min(mcp, r1 - ic), mr, mr);
      worst = std::max(worst, cost);
    }
    return worst;
  }
  if (m <= b.mc_max) return tile_cost(m, single_block_rows(kern, m), mr);
  const size_t blocks = (m + b.mc_max - 1) / b.mc_max, mc = round_up((m + blocks - 1) / blocks, mr);
  double cost = 0;
  for (size_t ic = 0; ic < m; ic += mc) cost += tile_cost(std::min(mc, m - ic), mr, mr);
  return cost;
}

const IsaTable<const GemmKernel*> kGemmF32 = {&pass_scalar::kGemmF32Kernel, CK_X86_OR_NULL(&pass_avx2::kGemmF32Kernel),
                                              CK_X86_OR_NULL(&pass_avx512::kGemmF32Kernel),
                                              CK_NEON_OR_NULL(&pass_neon::kGemmF32Kernel)};

void* aligned_bytes(size_t bytes) { return std::aligned_alloc(64, round_up(bytes ? bytes : 1, 64)); }

// Copies W [n,k] (b_is_nk) or B [k,n] into fp32 panels [panel][k][16], zero past n.
void pack_panels_f32(const float* b, size_t ldb, bool b_is_nk, size_t n, size_t k, float* out) {
  const size_t panels = (n + kPanelCols - 1) / kPanelCols;
  pool().parallel_for(panels, [&](size_t p, int) {
    float* dst = out + p * k * kPanelCols;
    const size_t c0 = p * kPanelCols, cols = std::min(kPanelCols, n - c0);
    if (cols < kPanelCols) std::memset(dst, 0, k * kPanelCols * sizeof(float));
    if (b_is_nk) {
      // 16×16 blocks, so the block of the panel being written stays in L1 while its 16 rows are read.
      for (size_t k0 = 0; k0 < k; k0 += kPanelCols) {
        const size_t k1 = std::min(k, k0 + kPanelCols);
        for (size_t c = 0; c < cols; ++c) {
          const float* src = b + (c0 + c) * ldb;
          for (size_t kk = k0; kk < k1; ++kk) dst[kk * kPanelCols + c] = src[kk];
        }
      }
    } else {
      for (size_t kk = 0; kk < k; ++kk) std::memcpy(dst + kk * kPanelCols, b + kk * ldb + c0, cols * sizeof(float));
    }
  });
}

// bf16 panels [panel][k/2][16][2], zero past n and at the odd-k pad. In blocks of 16 k: each
// column's 16 values are rounded with vectors (bf16_round), then the block's 8 k pairs — one 32-bit
// word per column and pair — are transposed into place (a scalar rounding per element would be a
// large share of loading a bf16 model).
void pack_panels_bf16(const float* w, size_t ldw, size_t n, size_t k, uint16_t* out) {
  constexpr size_t kBlock = 16;
  const size_t panels = (n + kPanelCols - 1) / kPanelCols, kp = (k + 1) / 2;
  pool().parallel_for(panels, [&](size_t p, int) {
    uint16_t* dst = out + p * kp * kPanelCols * 2;
    const size_t c0 = p * kPanelCols, cols = std::min(kPanelCols, n - c0);
    alignas(64) uint16_t block[kPanelCols][kBlock];
    for (size_t k0 = 0; k0 < k; k0 += kBlock) {
      const size_t kb = std::min(kBlock, k - k0);
      std::memset(block, 0, sizeof(block));
      for (size_t c = 0; c < cols; ++c) bf16_round(w + (c0 + c) * ldw + k0, kb, block[c]);
      uint32_t* pairs = reinterpret_cast<uint32_t*>(dst) + (k0 / 2) * kPanelCols;
      for (size_t q = 0; q < (kb + 1) / 2; ++q)
        for (size_t c = 0; c < kPanelCols; ++c) std::memcpy(pairs + q * kPanelCols + c, &block[c][2 * q], 4);
    }
  });
}

}  // namespace

PackedWeight::~PackedWeight() {
  if (owned) std::free(data);
}

ck_status pack_weight_parts_in_place(float* const* parts, const size_t* ns, size_t count, size_t k, PackedWeight* out) {
  if (!out || (count && (!parts || !ns))) return CK_ERR_ARG;
  size_t n = 0, total = 0;
  for (size_t i = 0; i < count; ++i) {
    if ((!parts[i] && ns[i] && k) || ns[i] % kPanelCols != 0) return CK_ERR_ARG;
    n += ns[i];
  }
  std::vector<const char*> panel_ptrs;
  for (size_t i = 0; i < count; ++i) {
    size_t bytes;
    if (!mul_ok(ns[i], k, &bytes) || !mul_ok(bytes, sizeof(float), &bytes)) return CK_ERR_NOMEM;
    if (bytes) {
      // Panels into scratch (reused from call to call, so its pages are touched once), then back over W.
      float* panels = static_cast<float*>(pool().scratch(ThreadPool::current_thread(), bytes, ScratchSlot::kGemmPackedB));
      if (!panels) return CK_ERR_NOMEM;
      pack_panels_f32(parts[i], k, true, ns[i], k, panels);
      std::memcpy(parts[i], panels, bytes);
    }
    for (size_t p = 0; p < ns[i] / kPanelCols; ++p)
      panel_ptrs.push_back(reinterpret_cast<const char*>(parts[i]) + p * k * kPanelCols * sizeof(float));
    total += bytes;
  }
  if (out->owned) std::free(out->data);
  out->n = n;
  out->k = k;
  out->type = WeightType::F32;
  out->data = count ? parts[0] : nullptr;
  out->bytes = total;
  out->owned = false;
  // One part is contiguous: its panels need no table.
  if (count > 1) out->panels = std::move(panel_ptrs);
  else out->panels.clear();
  return CK_OK;
}

ck_status pack_weight_in_place(float* w, size_t n, size_t k, PackedWeight* out) {
  return pack_weight_parts_in_place(&w, &n, 1, k, out);
}

ck_status pack_weight(const float* w, size_t n, size_t k, size_t ldw, WeightType type, PackedWeight* out) {
  if (!out || (!w && n && k) || ldw < k) return CK_ERR_ARG;
  const size_t panels = (n + kPanelCols - 1) / kPanelCols;
  const size_t elem = type == WeightType::BF16 ? 2 : 4;
  const size_t kpad = type == WeightType::BF16 ? round_up(k, 2) : k;
  size_t bytes;
  if (!mul_ok(panels * kPanelCols, kpad, &bytes) || !mul_ok(bytes, elem, &bytes)) return CK_ERR_NOMEM;
  void* data = aligned_bytes(bytes);
  if (!data) return CK_ERR_NOMEM;
  if (type == WeightType::BF16) pack_panels_bf16(w, ldw, n, k, static_cast<uint16_t*>(data));
  else pack_panels_f32(w, ldw, true, n, k, static_cast<float*>(data));
  if (out->owned) std::free(out->data);
  out->n = n;
  out->k = k;
  out->type = type;
  out->data = data;
  out->bytes = bytes;
  out->owned = true;
  out->panels.clear();
  return CK_OK;
}

ck_status gemm_driver(const GemmKernel& kern, const GemmWeightView& w, const GemmArgs& a) {
  const size_t m = a.m, n = w.n, K = w.k;
  if (m == 0 || n == 0) return CK_OK;
  if (!a.x || !a.y || !w.data || a.ldy < n || a.ldx < K) return CK_ERR_ARG;
  if (a.epilogue == Epilogue::Residual && (!a.residual || a.ldr < n)) return CK_ERR_ARG;
  const size_t threads = static_cast<size_t>(pool().threads());
  const Blocking blk = blocking_for(kern, K);
  // The taller tile where it cuts the rows into fewer, fuller micro-panels. The sums run in the
  // same order either way: same results bit for bit.
  if (kern.taller) {
    const GemmKernel& tall = *kern.taller;
    if (driver_cost(tall, blocking_for(tall, K), m, threads) < 0.995 * driver_cost(kern, blk, m, threads))
      return gemm_driver(tall, w, a);
  }
  const size_t nkb = blk.nkb, kc = blk.kc, a_bytes = blk.a_bytes, a_panel_bytes = blk.a_panel_bytes, mc_max = blk.mc_max;
  const size_t nr = kern.nr, m_blocks = (m + mc_max - 1) / mc_max;
  std::optional<Unary> x_act;
  if (a.x_act == Activation::Gelu) x_act = Unary::Gelu;
  else if (a.x_act == Activation::QuickGelu) x_act = Unary::QuickGelu;
  else if (a.x_act != Activation::None) return CK_ERR_ARG;
  const size_t mr = m <= mc_max ? single_block_rows(kern, m) : kern.mr;
  const size_t mc = round_up((m + m_blocks - 1) / m_blocks, mr);
  const size_t n_tiles = (n + nr - 1) / nr;
  const int me = ThreadPool::current_thread();

  // Packs the micro-panels [i0, i1) of the M block at row ic (mb rows) for K blocks from g0:
  // micro-panel (kb, p) at ((kb-g0)·mp + p). With x_act the rows go through the activation into the
  // scratch of thread t first. False when that scratch cannot be had.
  auto pack = [&](char* abuf, size_t ic, size_t mb, size_t g0, size_t i0, size_t i1, int t) {
    const size_t mp = (mb + mr - 1) / mr;
    float* act_rows =
        x_act ? static_cast<float*>(pool().scratch(t, std::max<size_t>(64, mr * kc * sizeof(float)), ScratchSlot::kGemmInputAct)) : nullptr;
    if (x_act && !act_rows) return false;
    for (size_t i = i0; i < i1; ++i) {
      const size_t kb = g0 + i / mp, p = i % mp;
      const size_t k0 = kb * kc, kcb = std::min(kc, K - k0), r0 = ic + p * mr, rows = std::min(mr, ic + mb - r0);
      const float* x = a.x + r0 * a.ldx + k0;
      size_t ldx = a.ldx;
      if (act_rows) {
        for (size_t r = 0; r < rows; ++r) unary_span_f32(*x_act, x + r * ldx, act_rows + r * kcb, kcb);
        x = act_rows;
        ldx = kcb;
      }
      kern.pack_a(x, ldx, rows, kcb, abuf + i * a_panel_bytes);
    }
    return true;
  };

  const size_t panels_per_tile = nr / kPanelCols, n_panels = (n + kPanelCols - 1) / kPanelCols;
  // The B tile of K block kb and N tile j, for the calls on the tile before it to fetch (tiles span
  // one or two panels: nr <= 32).
  auto fetch_of = [&](size_t kb, size_t j) {
    GemmTileFetch f;
    const size_t k0 = kb * kc, panel = j * nr / kPanelCols;
    f.lines = (std::min(kc, K - k0) * w.k_row_bytes + 63) / 64;
    f.panel[0] = w.panel(panel) + k0 * w.k_row_bytes;
    if (panels_per_tile > 1 && panel + 1 < n_panels) f.panel[1] = w.panel(panel + 1) + k0 * w.k_row_bytes;
    return f;
  };

  // One step: K block kb of N tile j over micro-panels [p0, p1) of the M block at row ic (mb rows),
  // packed in abuf from K block g0; the calls fetch `next` meanwhile.
  auto run_step = [&](const char* abuf, size_t ic, size_t mb, size_t g0, size_t kb, size_t j, size_t p0, size_t p1,
                      const GemmTileFetch& next) {
    const size_t mp = (mb + mr - 1) / mr, np = p1 - p0;
    const size_t k0 = kb * kc, kcb = std::min(kc, K - k0);
    GemmTileEpilogue e{nullptr, nullptr, a.ldr, a.alpha, a.epilogue, kb == 0, kb == nkb - 1};
    const char* apanels = abuf + (kb - g0) * mp * a_panel_bytes;
    const size_t col0 = j * nr;
    const int nv = static_cast<int>(std::min(nr, n - col0));
    const size_t p0_panel = col0 / kPanelCols;
    const char* b = w.panel(p0_panel) + k0 * w.k_row_bytes;
    const ptrdiff_t second = p0_panel + 1 < n_panels ? w.panel(p0_panel + 1) - w.panel(p0_panel) : 0;
    e.bias = e.first && a.bias ? a.bias + col0 : nullptr;
    for (size_t p = p0; p < p1; ++p) {
      const size_t r0 = ic + p * mr;
      e.residual = e.first && a.epilogue == Epilogue::Residual ? a.residual + r0 * a.ldr + col0 : nullptr;
      kern.ukr(kcb, apanels + p * a_panel_bytes, b, second, a.y + r0 * a.ldy + col0, a.ldy,
               static_cast<int>(std::min(mr, ic + mb - r0)), nv, e, next.slice(p - p0, np));
    }
  };

  // A thread's steps (K block, N tile) over an A group of nk K blocks and mp micro-panels run with K
  // blocks inner when the group fits in half of L2, so that a C tile's partial sums stay in cache
  // from one K block to the next (Y is not re-read from memory); else N tiles inner, reusing one A
  // block from L2.
  auto k_inner_for = [&](size_t nk, size_t mp) { return nk > 1 && nk * mp * a_bytes <= cpu_features().l2_bytes / 2; };

  // One thread's share of an M block (row ic, mb rows) packed in abuf for K blocks [g0, g1): N tiles
  // [j0, j1) over micro-panels [p0, p1).
  auto run_tiles = [&](const char* abuf, size_t ic, size_t mb, size_t g0, size_t g1, size_t j0, size_t j1, size_t p0,
                       size_t p1) {
    const size_t nk = g1 - g0, nj = j1 - j0, steps = nk * nj;
    const bool k_inner = k_inner_for(nk, (mb + mr - 1) / mr);
    auto step_at = [&](size_t s, size_t* kb, size_t* j) {
      *kb = g0 + (k_inner ? s % nk : s / nj);
      *j = j0 + (k_inner ? s / nk : s % nj);
    };
    for (size_t s = 0; s < steps; ++s) {
      size_t kb, j, kn, jn;
      step_at(s, &kb, &j);
      GemmTileFetch next;  // the B tile this thread runs next: each call on this tile fetches its slice of it
      if (s + 1 < steps) {
        step_at(s + 1, &kn, &jn);
        next = fetch_of(kn, jn);
      }
      run_step(abuf, ic, mb, g0, kb, j, p0, p1, next);
    }
  };

  // One unit of the work that threads claim (run_ranges and the batch path below), over every
  // micro-panel of the M block at row ic (mb rows) packed in abuf for K blocks [g0, g1): without
  // k_done, N tile j with all of its K blocks in order; with k_done (a count of K blocks done per
  // N tile), K block kb of tile j alone, once the tile's previous K block has finished. (kn, jn):
  // the step this thread runs next, for the fetch; jn == n_tiles for none.
  auto run_unit = [&](const char* abuf, size_t ic, size_t mb, size_t g0, size_t g1, std::atomic<uint32_t>* k_done,
                      size_t kb, size_t j, size_t kn, size_t jn) {
    const size_t mp = (mb + mr - 1) / mr;
    if (!k_done) {
      for (kb = g0; kb < g1; ++kb) {
        GemmTileFetch next;
        if (kb + 1 < g1) next = fetch_of(kb + 1, j);
        else if (jn < n_tiles) next = fetch_of(kn, jn);
        run_step(abuf, ic, mb, g0, kb, j, 0, mp, next);
      }
      return;
    }
    const uint32_t before = static_cast<uint32_t>(kb - g0);
    spin_until([&] { return k_done[j].load(std::memory_order_acquire) >= before; });
    run_step(abuf, ic, mb, g0, kb, j, 0, mp, jn < n_tiles ? fetch_of(kn, jn) : GemmTileFetch());
    k_done[j].store(before + 1, std::memory_order_release);
  };

  // The N tiles of one M block (row ic, mb rows) packed in abuf for K blocks [g0, g1), over all its
  // micro-panels, shared by tn threads: each runs its own contiguous range of units from the front,
  // in run_tiles' order, then takes units from the back of the others' ranges (their owners have
  // started them; each weight tile is still read once). A unit is one N tile with all its K blocks,
  // or, with N tiles inner, one (K block, N tile) step; a thief takes a step only once the owner
  // has claimed the tile's previous K block, and waits for it to finish. Same sums in the same order.
  auto run_ranges = [&](const char* abuf, size_t ic, size_t mb, size_t g0, size_t g1, size_t tn) {
    const size_t mp = (mb + mr - 1) / mr, nk = g1 - g0;
    const bool by_tile = nk == 1 || k_inner_for(nk, mp);
    struct Range {
      size_t j0 = 0, nj = 0, units = 0;
      std::atomic<uint64_t> front_back{0};  // next unit from the front (high half), end of the unclaimed ones (low)
      std::atomic<bool> started{false};
    };
    std::unique_ptr<Range[]> ranges(new Range[tn]);
    for (size_t tj = 0; tj < tn; ++tj) {
      Range& r = ranges[tj];
      r.j0 = n_tiles * tj / tn;
      r.nj = n_tiles * (tj + 1) / tn - r.j0;
      r.units = by_tile ? r.nj : nk * r.nj;
      r.front_back.store(r.units, std::memory_order_relaxed);
    }
    std::unique_ptr<std::atomic<uint32_t>[]> k_done;  // per N tile, steps by K block: K blocks done
    if (!by_tile) {
      k_done.reset(new std::atomic<uint32_t>[n_tiles]);
      for (size_t j = 0; j < n_tiles; ++j) k_done[j].store(0, std::memory_order_relaxed);
    }
    // Unit u of range r; `then`: the unit this thread runs next (for the fetch), or r.units for none.
    auto run_range_unit = [&](const Range& r, size_t u, size_t then) {
      // The K block and N tile of a unit (its first K block when by_tile).
      auto step_of = [&](size_t v, size_t* kb, size_t* j) {
        *kb = by_tile ? g0 : g0 + v / r.nj;
        *j = r.j0 + (by_tile ? v : v % r.nj);
      };
      size_t kb, j, kn = 0, jn = n_tiles;
      step_of(u, &kb, &j);
      if (then < r.units) step_of(then, &kn, &jn);
      run_unit(abuf, ic, mb, g0, g1, k_done.get(), kb, j, kn, jn);
    };
    pool().parallel_for(tn, [&](size_t tj, int) {
      Range& own = ranges[tj];
      own.started.store(true, std::memory_order_release);
      for (uint64_t v = own.front_back.load(std::memory_order_relaxed);;) {
        const size_t front = v >> 32, back = v & 0xFFFFFFFFu;
        if (front >= back) break;
        if (own.front_back.compare_exchange_weak(v, v + (uint64_t(1) << 32), std::memory_order_relaxed))
          run_range_unit(own, front, front + 1 < back ? front + 1 : own.units);
      }
      for (size_t q = 1; q < tn; ++q) {
        Range& other = ranges[(tj + q) % tn];
        if (!other.started.load(std::memory_order_acquire)) continue;
        for (uint64_t v = other.front_back.load(std::memory_order_relaxed);;) {
          const size_t front = v >> 32, back = v & 0xFFFFFFFFu;
          if (front >= back) break;
          const size_t u = back - 1;
          if (!by_tile && u >= other.nj && u - other.nj >= front) break;  // its previous K block is not claimed yet
          if (other.front_back.compare_exchange_weak(v, v - 1, std::memory_order_relaxed))
            run_range_unit(other, u, u > front ? u - 1 : other.units);
        }
      }
    });
  };

  // K groups: as many K blocks as kABudget of packed A holds for mp micro-panels.
  auto group_of = [&](size_t mp) { return a_panel_bytes ? std::max<size_t>(1, kABudget / (mp * a_panel_bytes)) : nkb; };

  if (threads > 1 && m > mc_max) {
    // Rows enough for several M blocks: each thread takes its own contiguous rows (part_rows) and
    // runs them over every N tile, packing its own micro-panels. The weights are read once per M block either way,
    // but here a thread's A block is packed and read in its own L2, and the threads meet once per
    // GEMM instead of twice per M block.
    //
    // A thread that is done takes units of work that another thread has not started yet (stealing),
    // so that a thread the OS holds up (another process, the JS thread, a GC thread on a machine
    // with as many cores as threads) delays the GEMM by one unit, not by the whole hold-up. Each
    // thread's rows are phases (M block, K group), each packed by its owner into its own scratch;
    // a phase's units are claimed from a counter by the owner first, then by others once the owner
    // has packed it. A unit is one N tile with all the phase's K blocks, or, with N tiles inner, one
    // (K block, N tile) step that waits for the tile's previous K block (it has long finished, but a
    // thief may run the two at once). The owner packs its next phase over the same scratch only once
    // every unit of the last one has finished. Every C tile's sums run in the same order whoever
    // runs it: same results bit for bit.
    struct Phase {
      size_t ic = 0, mb = 0, g0 = 0, g1 = 0, units = 0;
      bool by_tile = true;
      const char* abuf = nullptr;
      std::atomic<bool> ready{false};
      std::atomic<size_t> next{0}, done{0};
      std::unique_ptr<std::atomic<uint32_t>[]> k_done;  // per N tile, steps by K block: K blocks done
    };
    struct Part {
      std::unique_ptr<Phase[]> phases;
      size_t count = 0;
      std::atomic<size_t> cur{0};  // the phase whose units are being claimed; count: none left
      std::atomic<bool> started{false};  // a thread runs its owner's task (else no thief may wait on it:
                                         // the pool may run that task on the thief itself, later)
    };
    std::unique_ptr<Part[]> parts(new Part[threads]);
    for (size_t part = 0; part < threads; ++part) {
      size_t r0, r1;
      part_rows(m, part, threads, mr, &r0, &r1);
      if (r0 >= r1) continue;
      const size_t rows = r1 - r0, blocks = (rows + mc_max - 1) / mc_max, mcp = round_up((rows + blocks - 1) / blocks, mr);
      struct Span { size_t ic, mb, g0, g1; };
      std::vector<Span> spans;
      for (size_t ic = r0; ic < r1; ic += mcp) {
        const size_t mb = std::min(mcp, r1 - ic), group = group_of((mb + mr - 1) / mr);
        for (size_t g0 = 0; g0 < nkb; g0 += group) spans.push_back({ic, mb, g0, std::min(nkb, g0 + group)});
      }
      Part& pt = parts[part];
      pt.phases.reset(new Phase[spans.size()]);
      pt.count = spans.size();
      for (size_t f = 0; f < spans.size(); ++f) {
        Phase& ph = pt.phases[f];
        const Span& sp = spans[f];
        const size_t nk = sp.g1 - sp.g0;
        ph.ic = sp.ic;
        ph.mb = sp.mb;
        ph.g0 = sp.g0;
        ph.g1 = sp.g1;
        ph.by_tile = nk == 1 || k_inner_for(nk, (sp.mb + mr - 1) / mr);
        ph.units = ph.by_tile ? n_tiles : nk * n_tiles;
        if (!ph.by_tile) {
          ph.k_done.reset(new std::atomic<uint32_t>[n_tiles]);
          for (size_t j = 0; j < n_tiles; ++j) ph.k_done[j].store(0, std::memory_order_relaxed);
        }
      }
    }

    auto run_phase_unit = [&](Phase& ph, size_t u) {
      // The K block and N tile of a unit (its first K block when by_tile).
      auto step_of = [&](size_t v, size_t* kb, size_t* j) {
        *kb = ph.by_tile ? ph.g0 : ph.g0 + v / n_tiles;
        *j = ph.by_tile ? v : v % n_tiles;
      };
      size_t kb, j, kn = 0, jn = n_tiles;
      step_of(u, &kb, &j);
      if (u + 1 < ph.units) step_of(u + 1, &kn, &jn);
      run_unit(ph.abuf, ph.ic, ph.mb, ph.g0, ph.g1, ph.k_done.get(), kb, j, kn, jn);
      ph.done.fetch_add(1, std::memory_order_release);
    };
    std::atomic<bool> failed{false};
    pool().parallel_for(threads, [&](size_t part, int t) {
      Part& own = parts[part];
      own.started.store(true, std::memory_order_release);
      for (size_t f = 0; f < own.count; ++f) {
        Phase& ph = own.phases[f];
        if (f > 0) {  // units of the last phase that others took may still read the scratch
          const Phase& last = own.phases[f - 1];
          spin_until([&] { return last.done.load(std::memory_order_acquire) == last.units; });
        }
        const size_t mp = (ph.mb + mr - 1) / mr, nk = ph.g1 - ph.g0;
        char* abuf = static_cast<char*>(pool().scratch(t, std::max<size_t>(64, nk * mp * a_panel_bytes), ScratchSlot::kGemmPackedA));
        if (!abuf || !pack(abuf, ph.ic, ph.mb, ph.g0, 0, nk * mp, t)) {
          failed = true;
          own.cur.store(own.count, std::memory_order_release);
          return;
        }
        ph.abuf = abuf;
        ph.ready.store(true, std::memory_order_release);
        own.cur.store(f, std::memory_order_release);
        for (size_t u; (u = ph.next.fetch_add(1, std::memory_order_relaxed)) < ph.units;) run_phase_unit(ph, u);
      }
      own.cur.store(own.count, std::memory_order_release);
      // Then other threads' phases: a unit at a time, leaving each phase's last unit to its owner
      // (whose L2 holds the phase's A block).
      for (size_t q = 1; q < threads; ++q) {
        Part& other = parts[(part + q) % threads];
        while (other.started.load(std::memory_order_acquire)) {
          const size_t f = other.cur.load(std::memory_order_acquire);
          if (f >= other.count) break;
          Phase& ph = other.phases[f];
          if (!ph.ready.load(std::memory_order_acquire)) {  // its owner is still packing it
            spin_until([&] { return ph.ready.load(std::memory_order_acquire) || other.cur.load(std::memory_order_acquire) != f; });
            continue;
          }
          size_t u = ph.next.load(std::memory_order_relaxed);
          if (u + 1 >= ph.units) {  // nothing to take here; wait for the owner's next phase
            spin_until([&] { return other.cur.load(std::memory_order_acquire) != f; });
            continue;
          }
          if (ph.next.compare_exchange_weak(u, u + 1, std::memory_order_relaxed)) run_phase_unit(ph, u);
        }
      }
    });
    return failed ? CK_ERR_NOMEM : CK_OK;
  }

  for (size_t ic = 0; ic < m; ic += mc) {
    const size_t mb = std::min(mc, m - ic), mp = (mb + mr - 1) / mr, group = group_of(mp);
    for (size_t g0 = 0; g0 < nkb; g0 += group) {
      const size_t g1 = std::min(nkb, g0 + group);
      char* abuf = static_cast<char*>(pool().scratch(me, std::max<size_t>(64, (g1 - g0) * mp * a_panel_bytes), ScratchSlot::kGemmPackedA));
      if (!abuf) return CK_ERR_NOMEM;
      // The threads split the packing, then the N tiles (and the M micro-panels when the N tiles are
      // fewer than the threads), each a contiguous range.
      std::atomic<bool> no_scratch{false};
      pool().parallel_ranges((g1 - g0) * mp, [&](size_t begin, size_t end, int t) {
        if (!pack(abuf, ic, mb, g0, begin, end, t)) no_scratch = true;
      });
      if (no_scratch) return CK_ERR_NOMEM;
      const size_t tn = std::min(threads, n_tiles);
      const size_t tm = std::max<size_t>(1, std::min(threads / tn, mp));
      if (tn > 1 && tm == 1) {
        run_ranges(abuf, ic, mb, g0, g1, tn);
        continue;
      }
      pool().parallel_for(tn * tm, [&](size_t task, int) {
        const size_t tj = task % tn, ti = task / tn;
        run_tiles(abuf, ic, mb, g0, g1, n_tiles * tj / tn, n_tiles * (tj + 1) / tn, mp * ti / tm, mp * (ti + 1) / tm);
      });
    }
  }
  return CK_OK;
}

ck_status gemm(const GemmArgs& a) {
  if (!a.w) return CK_ERR_ARG;
  const PackedWeight& pw = *a.w;
  const bool bf16 = pw.type == WeightType::BF16;
  const size_t panels = (pw.n + kPanelCols - 1) / kPanelCols;
  const size_t elem = bf16 ? 2 : 4;
  const size_t kpad = bf16 ? round_up(pw.k, 2) : pw.k;
  const size_t row0 = a.w_row0, rows = a.w_rows == GemmArgs::kAllRows ? pw.n - std::min(row0, pw.n) : a.w_rows;
  if (row0 % kPanelCols || row0 > pw.n || rows > pw.n - row0 || (rows % kPanelCols && row0 + rows != pw.n)) return CK_ERR_ARG;
  GemmWeightView view{rows, pw.k, pw.data, kpad * kPanelCols * elem, kPanelCols * elem};
  if (panels * view.panel_bytes > pw.bytes) return CK_ERR_ARG;
  if (!pw.panels.empty()) {
    if (pw.panels.size() != panels) return CK_ERR_ARG;
    view.panel_ptrs = pw.panels.data() + row0 / kPanelCols;
  } else {
    view.data = static_cast<const char*>(pw.data) + row0 / kPanelCols * view.panel_bytes;
  }
  const GemmKernel& kern = bf16 ? gemm_bf16_kernel(current_isa()) : *kGemmF32.pick();
  return gemm_driver(kern, view, a);
}

ck_status gemm_unpacked(const float* a, size_t lda, const float* b, size_t ldb, bool b_is_nk, float* c, size_t ldc,
                        size_t m, size_t n, size_t k, float alpha) {
  if (m == 0 || n == 0) return CK_OK;
  if (!a || !c || (!b && k) || ldb < (b_is_nk ? k : n)) return CK_ERR_ARG;
  const size_t panels = (n + kPanelCols - 1) / kPanelCols;
  size_t bytes;
  if (!mul_ok(panels * kPanelCols * sizeof(float), k, &bytes)) return CK_ERR_NOMEM;
  float* packed = static_cast<float*>(pool().scratch(ThreadPool::current_thread(), std::max<size_t>(64, bytes), ScratchSlot::kGemmPackedB));
  if (!packed) return CK_ERR_NOMEM;
  if (k) pack_panels_f32(b, ldb, b_is_nk, n, k, packed);
  GemmWeightView view{n, k, packed, k * kPanelCols * sizeof(float), kPanelCols * sizeof(float)};
  GemmArgs args;
  args.x = a;
  args.ldx = lda;
  args.y = c;
  args.ldy = ldc;
  args.m = m;
  args.alpha = alpha;
  return gemm_driver(*kGemmF32.pick(), view, args);
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

#include "gemm_epilogue.h"

#include "gemm_tile.h"

// The fp32 A micro-panel holds the MR rows of X one after another, at a fixed stride of a whole
// K block plus one cache line (kGemmAS floats): the micro-kernel broadcasts a[r·kGemmAS + k], one
// base register and an immediate per row, and the rows' lines fall in different L1 sets (AVX-512:
// 3136 bytes apart). Packing is a copy of each row instead of a 16×16 transpose per 16 k; the
// micro-kernel runs as fast on either layout.
constexpr size_t kGemmAS = kGemmKC + 64 / sizeof(float);

// A micro-panel of an MR-row tile: out[r·kGemmAS + k] = x[r, k] for k < kc (kc <= kGemmKC), rows past `rows` zero.
template <int MR>
static void gemm_f32_pack_a(const float* x, size_t ldx, size_t rows, size_t kc, void* out_) {
  float* out = static_cast<float*>(out_);
  for (size_t r = 0; r < static_cast<size_t>(MR); ++r) {
    if (r < rows) std::memcpy(out + r * kGemmAS, x + r * ldx, kc * sizeof(float));
    else std::memset(out + r * kGemmAS, 0, kc * sizeof(float));
  }
}

// RA rows of the A micro-panel (rows kGemmAS apart): the full tile, or fewer for a last micro-panel
// that holds only a few rows (gemm_f32_ukr below picks).
template <int MR, int RA, int NV>
static void gemm_f32_ukr_rows(size_t kc, const void* a_, const void* b_, ptrdiff_t b_panel_bytes, float* c, size_t ldc,
                              int mv, int nv, const GemmTileEpilogue& e, const GemmTileFetch& next) {
  constexpr int NR = NV * V::W;
  constexpr int NP = NR / 16;  // 16-column panels per tile
  static_assert(NR % 16 == 0, "the tile spans whole panels");
  const float* a = static_cast<const float*>(a_);
  const float* b[NP];
  for (int i = 0; i < NP; ++i)  // a panel past the N edge is never stored: read the first one instead
    b[i] = static_cast<const float*>(
        static_cast<const void*>(static_cast<const char*>(b_) + (nv > 16 * i ? i * b_panel_bytes : 0)));

  // The epilogue reads the C tile (partial sums, residual): start fetching it now.
  for (int r = 0; r < mv; ++r) {
    __builtin_prefetch(c + r * ldc);
    __builtin_prefetch(c + r * ldc + NR - 1);
  }
  V::F acc[RA][NV];
#pragma GCC unroll 32
  for (int r = 0; r < RA; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();

  TileFetcher fetch(next, kc);
#pragma GCC unroll 4
  for (size_t k = 0; k < kc; ++k) {
    fetch.step();
    V::F bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b[v * V::W / 16] + k * 16 + v * V::W % 16);
#pragma GCC unroll 32
    for (int r = 0; r < RA; ++r) {
      const V::F ar = V::set1(a[r * kGemmAS + k]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(ar, bv[v], acc[r][v]);
    }
  }
  gemm_store_tile_outlined<RA, NV>(acc, c, ldc, mv, nv, e);
}

// A micro-panel's rows past mv are zeros: a micro-panel of a third, two thirds or MR - 2 of the tile's
// rows runs a kernel with that many accumulator rows, not the whole tile (gemm_by_rows).
template <int MR, int NV>
static void gemm_f32_ukr(size_t kc, const void* a, const void* b, ptrdiff_t b_panel_bytes, float* c, size_t ldc, int mv,
                         int nv, const GemmTileEpilogue& e, const GemmTileFetch& next) {
  gemm_by_rows<MR>(mv, [&](auto ra) { gemm_f32_ukr_rows<MR, decltype(ra)::value, NV>(kc, a, b, b_panel_bytes, c, ldc, mv, nv, e, next); });
}

template <int MR>
constexpr GemmKernel gemm_f32_kernel(const char* name, const GemmKernel* taller) {
  return {MR, kGemmNV * V::W, 1, kGemmKC, MR * sizeof(float), gemm_f32_pack_a<MR>, gemm_f32_ukr<MR, kGemmNV>, name,
          MR * kGemmAS * sizeof(float), taller};
}
#ifdef CK_GEMM_TILE_TALL
static const GemmKernel kGemmF32KernelTall = gemm_f32_kernel<kGemmMRTall>("gemm_f32_ukr_" CK_GEMM_TILE_TALL, nullptr);
static const GemmKernel kGemmF32Kernel = gemm_f32_kernel<kGemmMR>("gemm_f32_ukr_" CK_GEMM_TILE, &kGemmF32KernelTall);
#undef CK_GEMM_TILE_TALL
#else
static const GemmKernel kGemmF32Kernel = gemm_f32_kernel<kGemmMR>("gemm_f32_ukr_" CK_GEMM_TILE, nullptr);
#endif
#undef CK_GEMM_TILE

#endif
