// attention: fused multi-head attention, out = softmax(scale·Q·Kᵀ + mask)·V per (batch, head).
//
// FlashAttention-style streaming softmax on the CPU. A task owns one (batch, head) and a contiguous
// range of query blocks (up to 64 rows each). Scores are kept transposed, Sᵀ [keys][queries], so the
// softmax runs down the key axis with the queries in vector lanes: no horizontal reductions, and
// the running max / sum / rescale factor of W queries are one vector each.
// For each query block (Qᵀ packed once, [D][queries], pre-scaled by `scale`), the key blocks of kBk
// keys are walked in order; a block's visible keys (key mask != 0) are listed by row pointer, so
// masked keys cost nothing:
//   Sᵀ = K·Qᵀ                     register tile kMR keys × kAttnWide vectors of queries (4 on
//                                 AVX-512 and NEON, 2 on AVX2), V::fmadd over D
//                                 (K rows broadcast straight from the input, no packing)
//   m' = max(m, colmax Sᵀ); pᵀ = exp(Sᵀ − m'); l = l·e^(m−m') + Σ pᵀ   (causal: per-lane select)
//   O = O·e^(m−m') + P·V          register tile kMR queries × kAttnWide vectors of D (V rows in place, or
//                                 packed with zero padding when D is not a multiple of the width)
// and finally out = O / l (0 where l == 0: every key of the row was masked). Only a
// [kBk, 64] score tile exists at any time, never [seq, seq].
//
// Exactness under padding: key-block boundaries are fixed multiples of kBk, masked keys are left out
// (not just weighted 0), and every query's arithmetic sits in its own lane independent of the other
// queries and of the thread count, so a padded batch gives its real tokens bit-identical outputs to
// an unpadded run.
// Accumulation is float32 throughout (dot products over D, sums over keys in the running l).
#ifndef CK_ISA_PASS
#include "attention.h"

#include <atomic>

namespace ck {
namespace attention_detail {
constexpr int kMR = 6;          // keys (Q·Kᵀ) or queries (P·V) per register tile
constexpr size_t kBk = 64;      // keys per block; fixed so block boundaries never depend on seq
constexpr size_t kBqMax = 64;   // query rows per block at most
constexpr size_t kBqCausal = 16;  // with a causal mask: small blocks see few keys past their rows
constexpr size_t kBqGrain = 16; // query blocks are multiples of this (two AVX2 vectors of lanes)

// How a call is cut into tasks: each task is one (batch, head) and `blocks_per_task` query blocks.
struct Plan {
  size_t bq;               // query rows per block
  size_t q_blocks;         // ceil(q_rows / bq)
  size_t blocks_per_task;
  size_t tasks_per_head;
};
}  // namespace attention_detail
}  // namespace ck

#define CK_SIMD_SELF "attention.cpp"
#include "isa_passes.h"

namespace ck {

using AttentionTaskFn = ck_status (*)(const AttentionArgs&, const attention_detail::Plan&, size_t task, int thread);
static const IsaTable<AttentionTaskFn> kAttention = {pass_scalar::attention_task, CK_X86_OR_NULL(pass_avx2::attention_task),
                                                     CK_X86_OR_NULL(pass_avx512::attention_task),
                                                     CK_NEON_OR_NULL(pass_neon::attention_task)};

ck_status attention_f32(const AttentionArgs& a) {
  using namespace attention_detail;
  if (a.batch == 0 || a.heads == 0 || a.q_rows == 0 || a.head_dim == 0) return CK_OK;
  if (!a.q || !a.k || !a.v || !a.out || a.q_rows > a.seq || (a.key_mask_i32 && a.key_mask_u8)) return CK_ERR_ARG;
  if (!std::isfinite(a.scale)) return CK_ERR_ARG;
  if (a.seq_starts) {  // ragged: starts from 0, increasing, no sequence longer than seq
    if (a.seq_starts[0] != 0) return CK_ERR_ARG;
    for (size_t b = 0; b < a.batch; ++b)
      if (a.seq_starts[b + 1] <= a.seq_starts[b] || static_cast<size_t>(a.seq_starts[b + 1] - a.seq_starts[b]) > a.seq)
        return CK_ERR_ARG;
  }

  Plan plan;
  const size_t bq_max = a.causal ? kBqCausal : kBqMax;
  const size_t n_blocks = (a.q_rows + bq_max - 1) / bq_max;
  const size_t rows_per_block = (a.q_rows + n_blocks - 1) / n_blocks;
  plan.bq = std::min(bq_max, (rows_per_block + kBqGrain - 1) / kBqGrain * kBqGrain);
  plan.q_blocks = (a.q_rows + plan.bq - 1) / plan.bq;
  // Split a head's query blocks over tasks only when (batch, head) pairs alone cannot keep every
  // thread busy (~4 tasks per thread); each task re-packs its head's K and V.
  const size_t heads_total = a.batch * a.heads;
  const size_t want_tasks = 4 * static_cast<size_t>(pool().threads());
  size_t split = heads_total >= want_tasks ? 1 : (want_tasks + heads_total - 1) / heads_total;
  split = std::min(split, plan.q_blocks);
  plan.blocks_per_task = (plan.q_blocks + split - 1) / split;
  plan.tasks_per_head = (plan.q_blocks + plan.blocks_per_task - 1) / plan.blocks_per_task;

  AttentionTaskFn fn = kAttention.pick();
  const size_t tasks = heads_total * plan.tasks_per_head;
  // Below ~2 MFLOP (a class-token-only layer, tiny batches) waking the other workers costs more
  // than it saves: run every task on this thread.
  const double flops = 4.0 * static_cast<double>(heads_total) * a.q_rows * a.seq * a.head_dim;
  const bool inline_all = flops < 2e6;
  std::atomic<int> status{CK_OK};
  pool().parallel_for(inline_all ? 1 : tasks, [&](size_t task, int thread) {
    for (size_t t = inline_all ? 0 : task, end = inline_all ? tasks : task + 1; t < end; ++t) {
      ck_status s = fn(a, plan, t, thread);
      if (s != CK_OK) status.store(s);
    }
  });
  return static_cast<ck_status>(status.load());
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

// The widest register tile in vectors: 6 rows × 4 vectors is 24 accumulators, which fits AVX-512's
// and NEON's 32 registers; AVX2 (16) takes 6 × 2.
constexpr int kAttnWide = V::W == 8 ? 2 : 4;

// Sᵀ[r, i0 : i0 + NV·W] = Σ_c K_r[c]·Qᵀ[c, i0 : …] for keys r < MR (row pointers kr).
template <int MR, int NV>
static inline void attn_qk_block(const float* const* kr, size_t d, const float* qp, size_t qs, float* st) {
  V::F acc[MR][NV];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V::zero();
  for (size_t c = 0; c < d; ++c, qp += qs) {
    V::F q[NV];
    for (int v = 0; v < NV; ++v) q[v] = V::load(qp + v * V::W);
    for (int r = 0; r < MR; ++r) {
      const V::F kb = V::set1(kr[r][c]);
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(kb, q[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) V::store(st + r * qs + v * V::W, acc[r][v]);
}

// Sᵀ[r, i] = Σ_c K_r[c]·Qᵀ[c, i] for keys r < MR (row pointers kr) and queries i < nq (a multiple of
// W). Qᵀ: [d][qs]; Sᵀ: row stride qs. Each lane's sum runs over c in order whatever the tile width.
template <int MR>
static inline void attn_qk_tile(const float* const* kr, size_t d, const float* qt, size_t qs, size_t nq, float* st) {
  const float* k[MR];
  for (int r = 0; r < MR; ++r) k[r] = kr[r];
  size_t i = 0;
  for (; i + kAttnWide * V::W <= nq; i += kAttnWide * V::W) attn_qk_block<MR, kAttnWide>(k, d, qt + i, qs, st + i);
  for (; i + 2 * V::W <= nq; i += 2 * V::W) attn_qk_block<MR, 2>(k, d, qt + i, qs, st + i);
  if (i < nq) attn_qk_block<MR, 1>(k, d, qt + i, qs, st + i);
}

// O[r, 0 : NV·W] = O[r, :]·alpha[r] + Σ_{j < nk} Pᵀ[j, r]·V_j[0 : NV·W] for queries r < MR.
// Pᵀ: row stride qs, offset to the first query; vr: value row pointers, offset to the column chunk;
// O: row stride dp, offset likewise.
template <int MR, int NV>
static inline void attn_pv_tile(const float* pt, size_t qs, size_t nk, const float* const* vr, size_t col,
                                const float* alpha, float* o, size_t dp) {
  V::F acc[MR][NV];
  for (int r = 0; r < MR; ++r) {
    const V::F al = V::set1(alpha[r]);
    for (int v = 0; v < NV; ++v) acc[r][v] = V::mul(V::load(o + r * dp + v * V::W), al);
  }
  for (size_t j = 0; j < nk; ++j) {
    const float* vj = vr[j] + col;
    V::F x[NV];
    for (int v = 0; v < NV; ++v) x[v] = V::load(vj + v * V::W);
    const float* pj = pt + j * qs;
    for (int r = 0; r < MR; ++r) {
      const V::F pb = V::set1(pj[r]);
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(pb, x[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) V::store(o + r * dp + v * V::W, acc[r][v]);
}

template <int MR>
static inline void attn_pv_rows(const float* pt, size_t qs, size_t nk, const float* const* vr, const float* alpha,
                                float* o, size_t dp) {
  size_t c = 0;
  for (; c + kAttnWide * V::W <= dp; c += kAttnWide * V::W) attn_pv_tile<MR, kAttnWide>(pt, qs, nk, vr, c, alpha, o + c, dp);
  for (; c + 2 * V::W <= dp; c += 2 * V::W) attn_pv_tile<MR, 2>(pt, qs, nk, vr, c, alpha, o + c, dp);
  if (c < dp) attn_pv_tile<MR, 1>(pt, qs, nk, vr, c, alpha, o + c, dp);
}

// The last register tile may be short: fewer keys (Q·Kᵀ) or fewer queries (P·V) than kMR.
static void attn_qk_any(int keys, const float* const* kr, size_t d, const float* qt, size_t qs, size_t nq, float* st) {
  switch (keys) {
    case 1: attn_qk_tile<1>(kr, d, qt, qs, nq, st); break;
    case 2: attn_qk_tile<2>(kr, d, qt, qs, nq, st); break;
    case 3: attn_qk_tile<3>(kr, d, qt, qs, nq, st); break;
    case 4: attn_qk_tile<4>(kr, d, qt, qs, nq, st); break;
    case 5: attn_qk_tile<5>(kr, d, qt, qs, nq, st); break;
    default: attn_qk_tile<6>(kr, d, qt, qs, nq, st); break;
  }
}
static void attn_pv_any(int rows, const float* pt, size_t qs, size_t nk, const float* const* vr, const float* alpha,
                        float* o, size_t dp) {
  switch (rows) {
    case 1: attn_pv_rows<1>(pt, qs, nk, vr, alpha, o, dp); break;
    case 2: attn_pv_rows<2>(pt, qs, nk, vr, alpha, o, dp); break;
    case 3: attn_pv_rows<3>(pt, qs, nk, vr, alpha, o, dp); break;
    case 4: attn_pv_rows<4>(pt, qs, nk, vr, alpha, o, dp); break;
    case 5: attn_pv_rows<5>(pt, qs, nk, vr, alpha, o, dp); break;
    default: attn_pv_rows<6>(pt, qs, nk, vr, alpha, o, dp); break;
  }
}

// Qᵀ[c, r] = scale·Q_r[c] for rows r < rows (row stride `stride`) and c < d; lanes [rows, nq) are 0.
static void attn_pack_qt(const float* q, size_t stride, size_t rows, size_t d, float scale, float* qt, size_t qs, size_t nq) {
  size_t r = 0;
#if defined(CK_PASS_AVX2) || defined(CK_PASS_AVX512)
  // 8×8 register transposes (both passes have AVX2).
  const __m256 vs = _mm256_set1_ps(scale);
  for (; r + 8 <= rows; r += 8) {
    size_t c = 0;
    for (; c + 8 <= d; c += 8) {
      __m256 x[8], t[8];
      for (int i = 0; i < 8; ++i) x[i] = _mm256_mul_ps(_mm256_loadu_ps(q + (r + i) * stride + c), vs);
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(x[i], x[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(x[i], x[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        x[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        x[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        x[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        x[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
      }
      for (int i = 0; i < 4; ++i) {
        _mm256_storeu_ps(qt + (c + i) * qs + r, _mm256_permute2f128_ps(x[i], x[i + 4], 0x20));
        _mm256_storeu_ps(qt + (c + i + 4) * qs + r, _mm256_permute2f128_ps(x[i], x[i + 4], 0x31));
      }
    }
    for (; c < d; ++c)
      for (size_t i = 0; i < 8; ++i) qt[c * qs + r + i] = q[(r + i) * stride + c] * scale;
  }
#endif
  for (; r < rows; ++r)
    for (size_t c = 0; c < d; ++c) qt[c * qs + r] = q[r * stride + c] * scale;
  if (nq > rows)
    for (size_t c = 0; c < d; ++c) std::memset(qt + c * qs + rows, 0, (nq - rows) * sizeof(float));
}

static ck_status attention_task(const AttentionArgs& a, const attention_detail::Plan& plan, size_t task, int thread) {
  using namespace attention_detail;
  static_assert(kMR == 6, "attn_qk_any / attn_pv_any dispatch up to 6");
  const float kNegInf = -std::numeric_limits<float>::infinity();

  const size_t bh = task / plan.tasks_per_head, part = task % plan.tasks_per_head;
  const size_t b = bh / a.heads, h = bh % a.heads;
  // This batch's rows: a fixed-size slab, or its own range of a ragged batch.
  const size_t row0 = a.seq_starts ? static_cast<size_t>(a.seq_starts[b]) : 0;
  const size_t seq = a.seq_starts ? static_cast<size_t>(a.seq_starts[b + 1]) - row0 : a.seq;
  const size_t blk0 = part * plan.blocks_per_task;
  const size_t blk1 = std::min(plan.q_blocks, blk0 + plan.blocks_per_task);
  const size_t row_begin = blk0 * plan.bq, row_end = std::min(std::min(a.q_rows, seq), blk1 * plan.bq);
  if (row_begin >= row_end) return CK_OK;

  const size_t d = a.head_dim;
  const size_t dp = (d + V::W - 1) / V::W * V::W;
  const bool v_in_place = dp == d;  // rows of V are read where they are; else packed with zero padding
  const size_t qs = (plan.bq + 2 * V::W - 1) / (2 * V::W) * (2 * V::W);  // query lanes per block
  // Keys this task can see: with a causal mask, none past its last query row.
  const size_t n_keys = a.causal ? std::min(seq, row_end) : seq;

  // Scratch, in floats; every region starts on a 64-byte boundary.
  auto pad16 = [](size_t n) { return (n + 15) / 16 * 16; };
  const size_t vp_n = v_in_place ? 0 : pad16(n_keys * dp);
  const size_t qt_n = pad16(d * qs), st_n = pad16(kBk * qs), o_n = pad16(plan.bq * dp), lane_n = pad16(qs);
  float* buf = static_cast<float*>(pool().scratch(thread, (vp_n + qt_n + st_n + o_n + 4 * lane_n) * sizeof(float), ScratchSlot::kOp));
  if (!buf) return CK_ERR_NOMEM;
  float* vp = buf;
  float* qt = vp + vp_n;     // Qᵀ [d][qs], scaled
  float* st = qt + qt_n;     // Sᵀ, then Pᵀ [kBk][qs]
  float* o = st + st_n;      // [bq][dp]
  float* m = o + o_n;        // running max per query lane
  float* l = m + lane_n;     // running sum
  float* alpha = l + lane_n; // rescale factor of the current key block
  float* qpos = alpha + lane_n;  // each lane's query index (causal)

  const size_t mask0 = a.seq_starts ? row0 : b * a.seq;
  auto keep = [&](size_t j) {
    if (a.key_mask_i32) return a.key_mask_i32[mask0 + j] != 0;
    if (a.key_mask_u8) return a.key_mask_u8[mask0 + j] != 0;
    return true;
  };
  const float* kbase = a.seq_starts ? a.k + row0 * a.k_row_stride + h * d : a.k + b * a.k_batch_stride + h * d;
  const float* vbase = a.seq_starts ? a.v + row0 * a.v_row_stride + h * d : a.v + b * a.v_batch_stride + h * d;
  if (!v_in_place)
    for (size_t j = 0; j < n_keys; ++j) {
      if (!keep(j)) continue;
      std::memcpy(vp + j * dp, vbase + j * a.v_row_stride, d * sizeof(float));
      std::memset(vp + j * dp + d, 0, (dp - d) * sizeof(float));
    }

  const bool q_by_row = a.seq_starts && !(a.q_rows == 1 && a.q_batch_stride);
  const float* qbase = (q_by_row ? a.q + row0 * a.q_row_stride : a.q + b * a.q_batch_stride) + h * d;
  float* obase = a.out + h * d +
                 (!a.seq_starts ? b * a.out_batch_stride : a.q_rows == 1 ? b * a.out_row_stride : row0 * a.out_row_stride);
  const size_t dv = d - d % V::W;
  const int dtail = static_cast<int>(d - dv);
  const float* krow[kBk];
  const float* vrow[kBk];
  float kpos[kBk];

  for (size_t i0 = row_begin; i0 < row_end; i0 += plan.bq) {
    const size_t rows = std::min(plan.bq, row_end - i0);
    const size_t nq = (rows + V::W - 1) / V::W * V::W;  // query lanes computed
    attn_pack_qt(qbase + i0 * a.q_row_stride, a.q_row_stride, rows, d, a.scale, qt, qs, nq);
    std::memset(o, 0, rows * dp * sizeof(float));
    for (size_t i = 0; i < nq; ++i) {
      m[i] = kNegInf;
      l[i] = 0.0f;
      qpos[i] = static_cast<float>(i0 + i);
    }

    const size_t last_row = i0 + rows - 1;
    const size_t key_end = a.causal ? std::min(n_keys, last_row + 1) : n_keys;
    for (size_t j0 = 0; j0 < key_end; j0 += kBk) {
      // The block's visible keys.
      size_t nk = 0;
      for (size_t j = j0, j1 = std::min(j0 + kBk, key_end); j < j1; ++j) {
        if (!keep(j)) continue;
        krow[nk] = kbase + j * a.k_row_stride;
        vrow[nk] = v_in_place ? vbase + j * a.v_row_stride : vp + j * dp;
        kpos[nk] = static_cast<float>(j);
        ++nk;
      }
      if (nk == 0) continue;  // nothing visible: nothing changes
      const bool diagonal = a.causal && kpos[nk - 1] > static_cast<float>(i0);  // some key lies after some query

      for (size_t r = 0; r < nk; r += kMR)
        attn_qk_any(static_cast<int>(std::min<size_t>(kMR, nk - r)), krow + r, d, qt, qs, nq, st + r * qs);

      // Online softmax down the keys, W queries at a time.
      const V::F neg_inf = V::set1(kNegInf);
      for (size_t i = 0; i < nq; i += V::W) {
        const V::F qv = V::load(qpos + i);
        const V::F m_old = V::load(m + i);
        V::F mx = m_old;
        for (size_t j = 0; j < nk; ++j) {
          V::F x = V::load(st + j * qs + i);
          if (diagonal) x = V::select(V::lt(qv, V::set1(kpos[j])), neg_inf, x);
          mx = V::max(mx, x);
        }
        // A lane that has seen no key yet keeps m = -inf; it subtracts 0 instead, so p = e^-inf = 0.
        const V::F m_sub = V::select(V::lt(neg_inf, mx), mx, V::zero());
        const V::F al = v_exp(V::sub(m_old, m_sub));  // 0 on a lane's first visible block
        V::F sum = V::zero();
        size_t j = 0;
        for (; j + 4 <= nk; j += 4) {  // four keys' exp chains at once (see vmath.h)
          V::F p[4];
          for (int u = 0; u < 4; ++u) {
            V::F x = V::load(st + (j + u) * qs + i);
            if (diagonal) x = V::select(V::lt(qv, V::set1(kpos[j + u])), neg_inf, x);
            p[u] = V::sub(x, m_sub);
          }
          v_exp_n<4>(p);
          for (int u = 0; u < 4; ++u) {
            V::store(st + (j + u) * qs + i, p[u]);
            sum = V::add(sum, p[u]);
          }
        }
        for (; j < nk; ++j) {
          V::F x = V::load(st + j * qs + i);
          if (diagonal) x = V::select(V::lt(qv, V::set1(kpos[j])), neg_inf, x);
          const V::F p = v_exp(V::sub(x, m_sub));
          V::store(st + j * qs + i, p);
          sum = V::add(sum, p);
        }
        V::store(m + i, mx);
        V::store(alpha + i, al);
        V::store(l + i, V::fmadd(V::load(l + i), al, sum));
      }

      for (size_t r = 0; r < rows; r += kMR)
        attn_pv_any(static_cast<int>(std::min<size_t>(kMR, rows - r)), st + r, qs, nk, vrow, alpha + r, o + r * dp, dp);
    }

    // out = O / l; rows that saw no key at all are 0.
    for (size_t r = 0; r < rows; ++r) {
      const V::F inv = V::set1(l[r] > 0.0f ? 1.0f / l[r] : 0.0f);
      const float* orow = o + r * dp;
      float* dst = obase + (i0 + r) * a.out_row_stride;
      size_t c = 0;
      for (; c < dv; c += V::W) V::store(dst + c, V::mul(V::load(orow + c), inv));
      if (dtail) V::store_tail(dst + c, V::mul(V::load(orow + c), inv), dtail);
    }
  }
  return CK_OK;
}

#endif
