// The GEMM's loop nest (BLIS-style, portable): for each A block of the plan (gemm_plan.h), pack its
// rows of X into MR-row micro-panels, then run the micro-kernel over (K block, N tile, micro-panel):
// the KC×NR B tile is reused from L1 or L2 while the MC×KC A block is reused from L2. The threads
// share the work in one of two ways (GemmPlan::rows_per_thread):
//   - rows enough for more than one M block (a batch): each thread takes its own contiguous rows,
//     packs them into its own scratch and runs them over every N tile;
//   - fewer (one image or text): the threads split the packing of each A block, then its N tiles
//     (and its micro-panels when the N tiles are fewer than the threads), so that each weight
//     byte is read from memory once.
// Either way each thread owns a queue of work units (UnitQueue, thread_pool.h) and, once done with
// its own, takes units from the back of the others' queues. While a thread runs one B tile over its
// micro-panels, each call fetches a slice of the tile the thread runs next (GemmTileFetch).
//
// What must stay true: every C tile's sums run over its K blocks in order, whoever runs them, so
// the result is the same bit for bit for any thread count and any stealing. Partial sums across K
// blocks live in Y; the epilogue (bias, residual, alpha) is applied on the first K block and the
// activation on the last, so R may alias Y.
#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>

#include "elementwise.h"
#include "gemm_kernel.h"
#include "gemm_plan.h"
#include "thread_pool.h"

namespace ck {

namespace {

// One A block's work over N tiles [j0, j0 + nj), as units of a UnitQueue: one N tile with all its
// K blocks (by_tile), or one (K block, N tile) step, K blocks outer (a step waits for the tile's
// previous K block: the queue's lag is nj).
struct Phase {
  ABlock blk;
  size_t j0 = 0, nj = 0;
  bool by_tile = true;
  const char* abuf = nullptr;
  std::unique_ptr<std::atomic<uint32_t>[]> k_done;  // per N tile of the phase, steps by K block: K blocks done
  UnitQueue queue;
};

// A thread's phases, run in order. Others take units of the open one (opened - 1): it is packed.
struct Owner {
  std::unique_ptr<Phase[]> phases;
  size_t count = 0;
  std::atomic<size_t> opened{0};
  // A thread runs this owner's task (else no thief may wait on it: the pool may run that task on
  // the thief itself, later), and has claimed all its units.
  std::atomic<bool> started{false}, finished{false};
};

class GemmRun {
 public:
  GemmRun(const GemmPlan& plan, const GemmWeightView& w, const GemmArgs& a, std::optional<Unary> x_act)
      : p_(plan), k_(*plan.kern), w_(w), a_(a), x_act_(x_act), n_panels_((w.n + kPanelCols - 1) / kPanelCols) {}

  ck_status run(size_t m) { return p_.rows_per_thread ? run_rows_per_thread(m) : run_shared_blocks(m); }

 private:
  size_t a_block_bytes(const ABlock& b) const {
    return std::max<size_t>(64, (b.g1 - b.g0) * p_.micro_panels(b.mb) * p_.blk.a_panel_bytes);
  }

  // Packs the micro-panels [i0, i1) of A block b: micro-panel (kb, p) at ((kb - g0)·mp + p). With
  // x_act the rows go through the activation into the scratch of thread t first. False when that
  // scratch cannot be had.
  bool pack(char* abuf, const ABlock& b, size_t i0, size_t i1, int t) const {
    const size_t mp = p_.micro_panels(b.mb), mr = p_.mr, kc = p_.blk.kc, K = w_.k;
    float* act_rows = nullptr;
    if (x_act_) {
      act_rows = static_cast<float*>(pool().scratch(t, std::max<size_t>(64, mr * kc * sizeof(float)), ScratchSlot::kGemmInputAct));
      if (!act_rows) return false;
    }
    for (size_t i = i0; i < i1; ++i) {
      const size_t kb = b.g0 + i / mp, p = i % mp;
      const size_t k0 = kb * kc, kcb = std::min(kc, K - k0), r0 = b.ic + p * mr, rows = std::min(mr, b.ic + b.mb - r0);
      const float* x = a_.x + r0 * a_.ldx + k0;
      size_t ldx = a_.ldx;
      if (act_rows) {
        for (size_t r = 0; r < rows; ++r) unary_span_f32(*x_act_, x + r * ldx, act_rows + r * kcb, kcb);
        x = act_rows;
        ldx = kcb;
      }
      k_.pack_a(x, ldx, rows, kcb, abuf + i * p_.blk.a_panel_bytes);
    }
    return true;
  }

  // The B tile of K block kb and N tile j, for the calls on the tile before it to fetch (tiles span
  // one or two panels: nr <= 32).
  GemmTileFetch fetch_of(size_t kb, size_t j) const {
    GemmTileFetch f;
    const size_t kc = p_.blk.kc, k0 = kb * kc, panel = j * k_.nr / kPanelCols;
    f.lines = (std::min(kc, w_.k - k0) * w_.k_row_bytes + 63) / 64;
    f.panel[0] = w_.panel(panel) + k0 * w_.k_row_bytes;
    if (k_.nr > static_cast<int>(kPanelCols) && panel + 1 < n_panels_) f.panel[1] = w_.panel(panel + 1) + k0 * w_.k_row_bytes;
    return f;
  }

  // One step: K block kb of N tile j over micro-panels [p0, p1) of A block b (packed in abuf); the
  // calls fetch `next` meanwhile.
  void run_step(const char* abuf, const ABlock& b, size_t kb, size_t j, size_t p0, size_t p1, const GemmTileFetch& next) const {
    const size_t mp = p_.micro_panels(b.mb), np = p1 - p0, mr = p_.mr, n = w_.n;
    const size_t k0 = kb * p_.blk.kc, kcb = std::min(p_.blk.kc, w_.k - k0);
    GemmTileEpilogue e{nullptr, nullptr, a_.ldr, a_.alpha, a_.epilogue, kb == 0, kb == p_.blk.nkb - 1};
    const char* apanels = abuf + (kb - b.g0) * mp * p_.blk.a_panel_bytes;
    const size_t col0 = j * k_.nr;
    const int nv = static_cast<int>(std::min<size_t>(k_.nr, n - col0));
    const size_t panel = col0 / kPanelCols;
    const char* bt = w_.panel(panel) + k0 * w_.k_row_bytes;
    const ptrdiff_t second = panel + 1 < n_panels_ ? w_.panel(panel + 1) - w_.panel(panel) : 0;
    e.bias = e.first && a_.bias ? a_.bias + col0 : nullptr;
    for (size_t p = p0; p < p1; ++p) {
      const size_t r0 = b.ic + p * mr;
      e.residual = e.first && a_.epilogue == Epilogue::Residual ? a_.residual + r0 * a_.ldr + col0 : nullptr;
      k_.ukr(kcb, apanels + p * p_.blk.a_panel_bytes, bt, second, a_.y + r0 * a_.ldy + col0, a_.ldy,
             static_cast<int>(std::min(mr, b.ic + b.mb - r0)), nv, e, next.slice(p - p0, np));
    }
  }

  // A static share of A block b: N tiles [j0, j1) over micro-panels [p0, p1), K blocks inner where
  // the plan says so (GemmPlan::k_inner), else N tiles inner.
  void run_tiles(const char* abuf, const ABlock& b, size_t j0, size_t j1, size_t p0, size_t p1) const {
    const size_t nk = b.g1 - b.g0, nj = j1 - j0, steps = nk * nj;
    const bool k_inner = p_.k_inner(nk, p_.micro_panels(b.mb));
    auto step_at = [&](size_t s, size_t* kb, size_t* j) {
      *kb = b.g0 + (k_inner ? s % nk : s / nj);
      *j = j0 + (k_inner ? s / nk : s % nj);
    };
    for (size_t s = 0; s < steps; ++s) {
      size_t kb, j, kn, jn;
      step_at(s, &kb, &j);
      GemmTileFetch next;
      if (s + 1 < steps) {
        step_at(s + 1, &kn, &jn);
        next = fetch_of(kn, jn);
      }
      run_step(abuf, b, kb, j, p0, p1, next);
    }
  }

  // Sets a phase's units up over N tiles [j0, j0 + nj); `keep`: units thieves leave to its owner.
  void init_phase(Phase& ph, const ABlock& b, size_t j0, size_t nj, size_t keep) const {
    const size_t nk = b.g1 - b.g0;
    ph.blk = b;
    ph.j0 = j0;
    ph.nj = nj;
    ph.by_tile = nk == 1 || p_.k_inner(nk, p_.micro_panels(b.mb));
    if (ph.by_tile) {
      ph.queue.reset(nj, 0, keep);
      return;
    }
    ph.k_done.reset(new std::atomic<uint32_t>[nj]);
    for (size_t j = 0; j < nj; ++j) ph.k_done[j].store(0, std::memory_order_relaxed);
    ph.queue.reset(nk * nj, nj, keep);
  }

  // The K block and N tile of unit u (its first K block when by_tile).
  static void step_of(const Phase& ph, size_t u, size_t* kb, size_t* j) {
    *kb = ph.by_tile ? ph.blk.g0 : ph.blk.g0 + u / ph.nj;
    *j = ph.j0 + (ph.by_tile ? u : u % ph.nj);
  }

  // Unit u of a phase, over all its micro-panels; `then`: the unit this thread runs next in the
  // same phase (for the fetch), or kNone.
  void run_unit(Phase& ph, size_t u, size_t then) const {
    const ABlock& b = ph.blk;
    const size_t mp = p_.micro_panels(b.mb);
    size_t kb, j, kn = 0, jn = 0;
    step_of(ph, u, &kb, &j);
    const bool has_then = then != UnitQueue::kNone;
    if (has_then) step_of(ph, then, &kn, &jn);
    if (ph.by_tile) {
      for (; kb < b.g1; ++kb) {
        GemmTileFetch next;
        if (kb + 1 < b.g1) next = fetch_of(kb + 1, j);
        else if (has_then) next = fetch_of(kn, jn);
        run_step(ph.abuf, b, kb, j, 0, mp, next);
      }
    } else {
      std::atomic<uint32_t>& done = ph.k_done[j - ph.j0];
      const uint32_t before = static_cast<uint32_t>(kb - b.g0);
      spin_until([&] { return done.load(std::memory_order_acquire) >= before; });
      run_step(ph.abuf, b, kb, j, 0, mp, has_then ? fetch_of(kn, jn) : GemmTileFetch());
      done.store(before + 1, std::memory_order_release);
    }
    ph.queue.finished();
  }

  // Thread t's own work as owner `own`: its phases in order, units from the front. With `packs` the
  // owner packs each phase into its own scratch first, once every unit of the one before has
  // finished (others may still read that scratch). False when the scratch cannot be had.
  bool run_owner(Owner& own, bool packs, int t) const {
    own.started.store(true, std::memory_order_release);
    bool ok = true;
    for (size_t f = 0; f < own.count && ok; ++f) {
      Phase& ph = own.phases[f];
      if (packs) {
        if (f > 0) spin_until([&] { return own.phases[f - 1].queue.drained(); });
        char* abuf = static_cast<char*>(pool().scratch(t, a_block_bytes(ph.blk), ScratchSlot::kGemmPackedA));
        ok = abuf && pack(abuf, ph.blk, 0, (ph.blk.g1 - ph.blk.g0) * p_.micro_panels(ph.blk.mb), t);
        if (!ok) break;
        ph.abuf = abuf;
        own.opened.store(f + 1, std::memory_order_release);
      }
      for (size_t u, then; ph.queue.take_front(&u, &then);) run_unit(ph, u, then);
    }
    own.finished.store(true, std::memory_order_release);
    return ok;
  }

  // Units from the back of another owner's open phase while it has any, waiting for its next phase
  // while it packs one. Never waits on an owner that has not started.
  void steal_from(Owner& other) const {
    if (!other.started.load(std::memory_order_acquire)) return;
    while (!other.finished.load(std::memory_order_acquire)) {
      const size_t f = other.opened.load(std::memory_order_acquire);
      if (f > 0) {
        size_t u, then;
        Phase& ph = other.phases[f - 1];
        if (ph.queue.take_back(&u, &then)) {
          run_unit(ph, u, then);
          continue;
        }
        if (ph.queue.left_for_thieves()) {  // the next one waits for the owner to claim the one it follows
          spin_until([&] {
            return ph.queue.stealable() || !ph.queue.left_for_thieves() || other.finished.load(std::memory_order_acquire);
          });
          continue;
        }
        if (f == other.count) return;  // its last phase: nothing more will open
      }
      spin_until([&] {
        return other.opened.load(std::memory_order_acquire) != f || other.finished.load(std::memory_order_acquire);
      });
    }
  }

  // Runs `count` owners on as many pool tasks: each its own work, then the others'.
  bool run_owners(Owner* owners, size_t count, bool packs) const {
    std::atomic<bool> failed{false};
    pool().parallel_for(count, [&](size_t i, int t) {
      if (!run_owner(owners[i], packs, t)) failed = true;
      for (size_t q = 1; q < count; ++q) steal_from(owners[(i + q) % count]);
    });
    return !failed;
  }

  // Each thread its own rows (part_rows) over every N tile, packing its own A blocks: here a
  // thread's A block is packed and read in its own L2, and the threads meet once per GEMM instead
  // of twice per M block. Thieves leave a phase's last unit to its owner, whose L2 holds its A block.
  ck_status run_rows_per_thread(size_t m) const {
    const size_t threads = p_.threads;
    std::unique_ptr<Owner[]> owners(new Owner[threads]);
    for (size_t part = 0; part < threads; ++part) {
      size_t r0, r1;
      part_rows(p_, m, part, threads, &r0, &r1);
      const std::vector<ABlock> blocks = a_blocks(p_, r0, r1);
      Owner& own = owners[part];
      own.phases.reset(new Phase[blocks.size()]);
      own.count = blocks.size();
      for (size_t f = 0; f < blocks.size(); ++f) init_phase(own.phases[f], blocks[f], 0, p_.n_tiles, 1);
    }
    return run_owners(owners.get(), threads, true) ? CK_OK : CK_ERR_NOMEM;
  }

  // Each A block in turn: the threads split its packing, then its N tiles, each thread a contiguous
  // range it owns (or, with fewer N tiles than threads, N tiles × micro-panels, statically).
  ck_status run_shared_blocks(size_t m) const {
    const int me = ThreadPool::current_thread();
    const size_t threads = p_.threads, n_tiles = p_.n_tiles;
    for (const ABlock& b : a_blocks(p_, 0, m)) {
      const size_t mp = p_.micro_panels(b.mb);
      char* abuf = static_cast<char*>(pool().scratch(me, a_block_bytes(b), ScratchSlot::kGemmPackedA));
      if (!abuf) return CK_ERR_NOMEM;
      std::atomic<bool> no_scratch{false};
      pool().parallel_ranges((b.g1 - b.g0) * mp, [&](size_t begin, size_t end, int t) {
        if (!pack(abuf, b, begin, end, t)) no_scratch = true;
      });
      if (no_scratch) return CK_ERR_NOMEM;
      const size_t tn = std::min(threads, n_tiles), tm = std::max<size_t>(1, std::min(threads / tn, mp));
      if (tn > 1 && tm == 1) {
        std::unique_ptr<Owner[]> owners(new Owner[tn]);
        for (size_t i = 0; i < tn; ++i) {
          Owner& own = owners[i];
          own.phases.reset(new Phase[1]);
          own.count = 1;
          const size_t j0 = n_tiles * i / tn;
          init_phase(own.phases[0], b, j0, n_tiles * (i + 1) / tn - j0, 0);
          own.phases[0].abuf = abuf;
          own.opened.store(1, std::memory_order_relaxed);
        }
        run_owners(owners.get(), tn, false);
        continue;
      }
      pool().parallel_for(tn * tm, [&](size_t task, int) {
        const size_t tj = task % tn, ti = task / tn;
        run_tiles(abuf, b, n_tiles * tj / tn, n_tiles * (tj + 1) / tn, mp * ti / tm, mp * (ti + 1) / tm);
      });
    }
    return CK_OK;
  }

  const GemmPlan& p_;
  const GemmKernel& k_;
  const GemmWeightView& w_;
  const GemmArgs& a_;
  const std::optional<Unary> x_act_;
  const size_t n_panels_;
};

}  // namespace

ck_status gemm_driver(const GemmKernel& kern, const GemmWeightView& w, const GemmArgs& a) {
  if (a.m == 0 || w.n == 0) return CK_OK;
  if (!a.x || !a.y || !w.data || a.ldy < w.n || a.ldx < w.k) return CK_ERR_ARG;
  if (a.epilogue == Epilogue::Residual && (!a.residual || a.ldr < w.n)) return CK_ERR_ARG;
  std::optional<Unary> x_act;
  if (a.x_act == Activation::Gelu) x_act = Unary::Gelu;
  else if (a.x_act == Activation::QuickGelu) x_act = Unary::QuickGelu;
  else if (a.x_act != Activation::None) return CK_ERR_ARG;
  const GemmPlan plan = plan_gemm(kern, a.m, w.n, w.k, static_cast<size_t>(pool().threads()));
  return GemmRun(plan, w, a, x_act).run(a.m);
}

}  // namespace ck
