// attention: fused multi-head attention, out = softmax(scale·Q·Kᵀ + mask)·V per (batch, head).
//
// FlashAttention-style streaming softmax on the CPU. A task owns one (batch, head) and a contiguous
// range of query blocks. It first packs that head's keys transposed, block by block ([D, kBk] per
// block of kBk keys, zero beyond the last key), and its values ([kBk, Dp] per block, Dp = D rounded
// up to the vector width, zero padded), then for each block of up to ~72 query rows (Q pre-scaled
// by `scale`) walks the key blocks in order:
//   S = Q·Kᵀ                     register tile kMR rows × 2 vectors of keys, V::fmadd over D
//   m' = max(m, rowmax S); p = exp(S - m'); l = l·e^(m-m') + Σp     (masked scores are -inf: p = 0)
//   O = O·e^(m-m') + P·V          register tile kMR rows × 2 vectors of D
// and finally writes O / l (0 where l == 0: every key of the row was masked). Only a [rows, kBk]
// score tile exists at any time, never [seq, seq].
//
// Exactness under padding: key-block boundaries are fixed multiples of kBk and every query row's
// arithmetic is independent of the other rows and of the thread count, so masked keys (weight
// exactly 0, v_exp(-inf) == 0) and key blocks that are skipped because they are fully masked leave
// the real rows' outputs bit-identical to an unpadded run.
// Accumulation is float32 throughout (dot products over D, sums over keys in the running l).
#ifndef CK_ISA_PASS
#include "attention.h"

#include <atomic>

namespace ck {
namespace attention_detail {
constexpr int kMR = 6;          // query rows per register tile
constexpr size_t kBk = 64;      // keys per block; fixed so block boundaries never depend on seq
constexpr size_t kBqMax = 72;   // query rows per block at most (a multiple of kMR)

// How a call is cut into tasks: each task is one (batch, head) and `blocks_per_task` query blocks.
struct Plan {
  size_t bq;               // query rows per block, a multiple of kMR
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

  Plan plan;
  const size_t n_blocks = (a.q_rows + kBqMax - 1) / kBqMax;
  const size_t rows_per_block = (a.q_rows + n_blocks - 1) / n_blocks;
  plan.bq = (rows_per_block + kMR - 1) / kMR * kMR;
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
  std::atomic<int> status{CK_OK};
  pool().parallel_for(heads_total * plan.tasks_per_head, [&](size_t t, int thread) {
    ck_status s = fn(a, plan, t, thread);
    if (s != CK_OK) status.store(s);
  });
  return static_cast<ck_status>(status.load());
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

// S[r, j] = Σ_c Qs[r, c]·Kt[c, j] for r < MR and j < nkp (a multiple of 2·W).
// Qs: row stride d; Kt: [d, kBk]; S: row stride kBk.
template <int MR>
static inline void attn_qk_tile(const float* qs, size_t d, const float* kt, size_t nkp, float* s) {
  constexpr size_t kBk = attention_detail::kBk;
  for (size_t j = 0; j < nkp; j += 2 * V::W) {
    V::F acc0[MR], acc1[MR];
    for (int r = 0; r < MR; ++r) acc0[r] = acc1[r] = V::zero();
    const float* kp = kt + j;
    for (size_t c = 0; c < d; ++c, kp += kBk) {
      const V::F k0 = V::load(kp), k1 = V::load(kp + V::W);
      for (int r = 0; r < MR; ++r) {
        const V::F qb = V::set1(qs[r * d + c]);
        acc0[r] = V::fmadd(qb, k0, acc0[r]);
        acc1[r] = V::fmadd(qb, k1, acc1[r]);
      }
    }
    for (int r = 0; r < MR; ++r) {
      V::store(s + r * kBk + j, acc0[r]);
      V::store(s + r * kBk + j + V::W, acc1[r]);
    }
  }
}

// O[r, 0 : NV·W] = O[r, :]·alpha[r] + Σ_{j < nk} P[r, j]·Vp[j, 0 : NV·W] for r < MR.
// P: row stride kBk; Vp and O: row stride dp (O and Vp already offset to the column chunk).
template <int MR, int NV>
static inline void attn_pv_tile(const float* p, size_t nk, const float* vp, size_t dp, const float* alpha, float* o) {
  constexpr size_t kBk = attention_detail::kBk;
  V::F acc[MR][NV];
  for (int r = 0; r < MR; ++r) {
    const V::F al = V::set1(alpha[r]);
    for (int v = 0; v < NV; ++v) acc[r][v] = V::mul(V::load(o + r * dp + v * V::W), al);
  }
  for (size_t j = 0; j < nk; ++j) {
    V::F x[NV];
    for (int v = 0; v < NV; ++v) x[v] = V::load(vp + j * dp + v * V::W);
    for (int r = 0; r < MR; ++r) {
      const V::F pb = V::set1(p[r * kBk + j]);
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fmadd(pb, x[v], acc[r][v]);
    }
  }
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < NV; ++v) V::store(o + r * dp + v * V::W, acc[r][v]);
}

template <int MR>
static inline void attn_pv_rows(const float* p, size_t nk, const float* vp, size_t dp, const float* alpha, float* o) {
  size_t c = 0;
  for (; c + 2 * V::W <= dp; c += 2 * V::W) attn_pv_tile<MR, 2>(p, nk, vp + c, dp, alpha, o + c);
  if (c < dp) attn_pv_tile<MR, 1>(p, nk, vp + c, dp, alpha, o + c);
}

// The last register tile of a block may have fewer than kMR rows.
static void attn_qk_rows(int rows, const float* qs, size_t d, const float* kt, size_t nkp, float* s) {
  switch (rows) {
    case 1: attn_qk_tile<1>(qs, d, kt, nkp, s); break;
    case 2: attn_qk_tile<2>(qs, d, kt, nkp, s); break;
    case 3: attn_qk_tile<3>(qs, d, kt, nkp, s); break;
    case 4: attn_qk_tile<4>(qs, d, kt, nkp, s); break;
    case 5: attn_qk_tile<5>(qs, d, kt, nkp, s); break;
    default: attn_qk_tile<6>(qs, d, kt, nkp, s); break;
  }
}
static void attn_pv_any(int rows, const float* p, size_t nk, const float* vp, size_t dp, const float* alpha, float* o) {
  switch (rows) {
    case 1: attn_pv_rows<1>(p, nk, vp, dp, alpha, o); break;
    case 2: attn_pv_rows<2>(p, nk, vp, dp, alpha, o); break;
    case 3: attn_pv_rows<3>(p, nk, vp, dp, alpha, o); break;
    case 4: attn_pv_rows<4>(p, nk, vp, dp, alpha, o); break;
    case 5: attn_pv_rows<5>(p, nk, vp, dp, alpha, o); break;
    default: attn_pv_rows<6>(p, nk, vp, dp, alpha, o); break;
  }
}

static ck_status attention_task(const AttentionArgs& a, const attention_detail::Plan& plan, size_t task, int thread) {
  using namespace attention_detail;
  static_assert(kBk % (2 * V::W) == 0, "a key block must hold whole pairs of vectors");
  static_assert(kMR == 6, "attn_qk_rows / attn_pv_any dispatch up to 6 rows");
  const float kNegInf = -std::numeric_limits<float>::infinity();

  const size_t bh = task / plan.tasks_per_head, part = task % plan.tasks_per_head;
  const size_t b = bh / a.heads, h = bh % a.heads;
  const size_t blk0 = part * plan.blocks_per_task;
  const size_t blk1 = std::min(plan.q_blocks, blk0 + plan.blocks_per_task);
  const size_t row_begin = blk0 * plan.bq, row_end = std::min(a.q_rows, blk1 * plan.bq);
  if (row_begin >= row_end) return CK_OK;

  const size_t d = a.head_dim;
  const size_t dp = (d + V::W - 1) / V::W * V::W;
  const size_t bq = plan.bq;
  // Keys this task can see: with a causal mask, none past its last query row.
  const size_t n_keys = a.causal ? std::min(a.seq, row_end) : a.seq;
  const size_t n_kb = (n_keys + kBk - 1) / kBk;

  // Scratch, in floats; every region starts on a 64-byte boundary.
  auto pad16 = [](size_t n) { return (n + 15) / 16 * 16; };
  const size_t kt_n = pad16(n_kb * d * kBk), vp_n = pad16(n_kb * kBk * dp), bias_n = pad16(n_kb * kBk);
  const size_t qs_n = pad16(bq * d), s_n = pad16(bq * kBk), o_n = pad16(bq * dp), row_n = pad16(bq);
  const size_t live_n = pad16(n_kb);
  const size_t total = kt_n + vp_n + bias_n + qs_n + s_n + o_n + 3 * row_n + live_n;
  float* buf = static_cast<float*>(pool().scratch(thread, total * sizeof(float), 0));
  if (!buf) return CK_ERR_NOMEM;
  float* kt = buf;
  float* vp = kt + kt_n;
  float* bias = vp + vp_n;       // 0 (keep) or -inf (masked) per key, only with a key mask
  float* qs = bias + bias_n;
  float* s = qs + qs_n;
  float* o = s + s_n;
  float* m = o + o_n;
  float* l = m + row_n;
  float* alpha = l + row_n;
  float* live = alpha + row_n;   // 1 if the key block has at least one kept key

  // Pack this head's keys (transposed) and values, block by block.
  const float* kbase = a.k + b * a.k_batch_stride + h * d;
  const float* vbase = a.v + b * a.v_batch_stride + h * d;
  const bool has_mask = a.key_mask_i32 || a.key_mask_u8;
  for (size_t kb = 0; kb < n_kb; ++kb) {
    const size_t j0 = kb * kBk, nk = std::min(kBk, n_keys - j0);
    size_t kept = nk;
    if (has_mask) {
      kept = 0;
      for (size_t j = 0; j < kBk; ++j) {
        bool keep = j < nk && (a.key_mask_i32 ? a.key_mask_i32[b * a.seq + j0 + j] != 0 : a.key_mask_u8[b * a.seq + j0 + j] != 0);
        bias[kb * kBk + j] = keep ? 0.0f : kNegInf;
        kept += keep;
      }
    }
    live[kb] = kept ? 1.0f : 0.0f;
    if (!kept) continue;
    float* ktb = kt + kb * d * kBk;
    float* vpb = vp + kb * kBk * dp;
    for (size_t j = 0; j < nk; ++j) {
      const float* kr = kbase + (j0 + j) * a.k_row_stride;
      for (size_t c = 0; c < d; ++c) ktb[c * kBk + j] = kr[c];
      const float* vr = vbase + (j0 + j) * a.v_row_stride;
      std::memcpy(vpb + j * dp, vr, d * sizeof(float));
      for (size_t c = d; c < dp; ++c) vpb[j * dp + c] = 0.0f;
    }
    if (nk < kBk) {
      for (size_t c = 0; c < d; ++c) std::memset(ktb + c * kBk + nk, 0, (kBk - nk) * sizeof(float));
      std::memset(vpb + nk * dp, 0, (kBk - nk) * dp * sizeof(float));
    }
  }

  const float* qbase = a.q + b * a.q_batch_stride + h * d;
  float* obase = a.out + b * a.out_batch_stride + h * d;
  const V::F vscale = V::set1(a.scale);
  const size_t dv = d - d % V::W;
  const int dtail = static_cast<int>(d - dv);

  for (size_t i0 = row_begin; i0 < row_end; i0 += bq) {
    const size_t rows = std::min(bq, row_end - i0);
    // Q block, scaled.
    for (size_t r = 0; r < rows; ++r) {
      const float* qr = qbase + (i0 + r) * a.q_row_stride;
      size_t c = 0;
      for (; c < dv; c += V::W) V::store(qs + r * d + c, V::mul(V::load(qr + c), vscale));
      for (; c < d; ++c) qs[r * d + c] = qr[c] * a.scale;
    }
    std::memset(o, 0, rows * dp * sizeof(float));
    for (size_t r = 0; r < rows; ++r) {
      m[r] = kNegInf;
      l[r] = 0.0f;
    }

    const size_t kb_end = a.causal ? (std::min(n_keys, i0 + rows) + kBk - 1) / kBk : n_kb;
    for (size_t kb = 0; kb < kb_end; ++kb) {
      if (live[kb] == 0.0f) continue;  // every key of the block is masked: nothing changes
      const size_t j0 = kb * kBk, nk = std::min(kBk, n_keys - j0);
      const size_t nkp = (nk + 2 * V::W - 1) / (2 * V::W) * (2 * V::W);
      const float* ktb = kt + kb * d * kBk;
      const float* vpb = vp + kb * kBk * dp;
      const float* bb = bias + kb * kBk;

      for (size_t r = 0; r < rows; r += kMR)
        attn_qk_rows(static_cast<int>(std::min<size_t>(kMR, rows - r)), qs + r * d, d, ktb, nkp, s + r * kBk);

      // Online softmax, row by row.
      for (size_t r = 0; r < rows; ++r) {
        float* sr = s + r * kBk;
        size_t valid = nk;
        if (a.causal) {
          const size_t qi = i0 + r;
          valid = qi >= j0 ? std::min(nk, qi - j0 + 1) : 0;
        }
        for (size_t j = valid; j < nkp; ++j) sr[j] = kNegInf;
        V::F mx = V::set1(kNegInf);
        for (size_t j = 0; j < nkp; j += V::W) {
          V::F x = V::load(sr + j);
          if (has_mask) {
            x = V::add(x, V::load(bb + j));
            V::store(sr + j, x);
          }
          mx = V::max(mx, x);
        }
        const float m_new = std::max(m[r], V::reduce_max(mx));
        if (m_new == kNegInf) {  // no visible key yet: p = 0, nothing to rescale
          alpha[r] = 1.0f;
          std::memset(sr, 0, nkp * sizeof(float));
          continue;
        }
        alpha[r] = std::exp(m[r] - m_new);  // 0 on the first visible block (m = -inf)
        const V::F vm = V::set1(m_new);
        V::F sum0 = V::zero();
        for (size_t j = 0; j < nkp; j += V::W) {
          const V::F p = v_exp(V::sub(V::load(sr + j), vm));
          V::store(sr + j, p);
          sum0 = V::add(sum0, p);
        }
        l[r] = l[r] * alpha[r] + V::reduce_add(sum0);
        m[r] = m_new;
      }

      for (size_t r = 0; r < rows; r += kMR)
        attn_pv_any(static_cast<int>(std::min<size_t>(kMR, rows - r)), s + r * kBk, nk, vpb, dp, alpha + r, o + r * dp);
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
