// Fused attention against a float64 reference (the contract of csrc/attention.h): bf16 / f16 / f32,
// head dims 64 / 80 / 128, sequences of 1 to 577, causal, key masks (an all-masked sequence and
// queries left with no key give exactly 0), separate strided q / k / v and the packed QKV output of
// one GEMM, q_rows < seq, and ragged batches (seq_starts) with q_rows = 1 with and without
// q_batch_stride.
//
// Bound, per output element out[i, c] = Σ_j P_ij·v_jc, relative to A_ic = Σ_j P_ij·|v_jc| (so a
// convex combination is judged against the size of what it combines):
//   e = 2·u_P + 2·δ_i + 4e-6 + 2·u32·range_i + keys·c_acc,   tol = e·A_ic, then the store of out
//   u_P      bf16 2^-8, f16 2^-11: P is rounded to the input type for the P·V matrix product (fp32: 0);
//            each weight is then off by u_P relative when the row sum is taken before that rounding,
//            by up to 2·u_P when after it (both are valid)
//   δ_i      the error of a score, c_dot·max_j |scale|·Σ_c|q_ic·k_jc| with c_dot = D·2^-22 on tensor
//            cores (as gemm) and D·2^-23 for FFMA; shifting every score by <= δ moves each softmax
//            weight by <= 2δ relative
//   4e-6 + 2·u32·range_i   fp32 exp of arguments up to the row's score range, the running rescales
//   keys·c_acc   the fp32 accumulation of P·V over the visible keys (2^-22 tensor cores, 2^-23 FFMA)
//   f16 also: keys·2^-25·max|v| for weights that fall into f16's subnormals
// A query with no visible key must give exactly 0.
#include <algorithm>
#include <cmath>

#include "harness.h"

namespace ckt {

namespace {

enum class Mask { None, Random, AllMaskedSequence, Leading };
enum class Layout { Separate, Packed, Ragged, RaggedQOnly };

struct AttnCase {
  ckc_dtype t;
  size_t batch, seq, heads, dim;
  bool causal;
  Mask mask;
  Layout layout;
  std::vector<size_t> lens;  // ragged only: each sequence's length (seq = the longest)
  size_t q_rows;             // 0: seq
  size_t pad;                // Separate / Ragged: elements added to every row stride (and a gap row per batch)
  double sigma;              // spread of q and k
  float scale;               // 0: 1/sqrt(dim)
  ckc_precision prec;
  bool quick;
};

void attention_case(Ctx& ctx, const AttnCase& k) {
  const bool ragged = k.layout == Layout::Ragged || k.layout == Layout::RaggedQOnly;
  const size_t q_rows = k.q_rows ? k.q_rows : k.seq;
  const size_t H = k.heads, D = k.dim, HD = H * D;
  const float scale = k.scale != 0.0f ? k.scale : static_cast<float>(1.0 / std::sqrt(double(D)));

  std::string test = "attention";
  if (k.causal) test += ".causal";
  if (k.mask == Mask::Random) test += ".mask";
  if (k.mask == Mask::AllMaskedSequence) test += ".all_masked";
  if (k.mask == Mask::Leading) test += ".leading_masked";
  if (k.layout == Layout::Packed) test += ".packed";
  if (k.layout == Layout::Ragged) test += q_rows == 1 ? ".ragged_q1" : ".ragged";
  if (k.layout == Layout::RaggedQOnly) test += ".ragged_q1_batch_stride";
  if (!ragged && q_rows < k.seq) test += ".q_rows";
  if (k.pad) test += ".strided";
  if (k.prec == CKC_PRECISION_EXACT_F32) test += ".exact_f32";
  std::string shape = shape_str({{"batch", k.batch}, {"seq", k.seq}, {"heads", H}, {"head_dim", D}, {"q_rows", q_rows}});
  if (ragged) {
    shape += ",lens=";
    for (size_t b = 0; b < k.lens.size(); ++b) shape += (b ? "/" : "") + std::to_string(k.lens[b]);
  }
  if (k.scale != 0.0f) shape += fmt(",scale=%g", k.scale);
  if (k.sigma != 1.0) shape += fmt(",sigma=%g", k.sigma);
  const std::string key = test + " " + dtype_name(k.t) + " " + shape;
  if (!ctx.selected(key, k.quick)) return;
  Check c(test, dtype_name(k.t), shape,
          "(2u_P + 2*d_s + 4e-6 + 2u32*range + keys*c_acc)*sum_j P|v| + u_out*|ref|; no key -> exactly 0");
  Rng r(seed_for(key, ctx.opt.seed));

  // Logical rows: sequence b is rows [start[b], start[b] + len[b]) of Q, K, V [T, H·D].
  std::vector<size_t> len(k.batch, k.seq), start(k.batch + 1, 0);
  if (ragged) len = k.lens;
  for (size_t b = 0; b < k.batch; ++b) start[b + 1] = start[b] + len[b];
  const size_t T = start[k.batch];
  const auto Q = randn(k.t, T * HD, r, k.sigma), K = randn(k.t, T * HD, r, k.sigma), V = randn(k.t, T * HD, r);
  std::vector<int32_t> mask;
  if (k.mask != Mask::None) {
    mask.assign(ragged ? T : k.batch * k.seq, 0);
    for (size_t b = 0; b < k.batch; ++b) {
      const size_t m0 = ragged ? start[b] : b * k.seq;
      const size_t keep = 1 + r.below(len[b]);  // a random-length prefix (>= 1 key) with a few holes
      for (size_t j = 0; j < len[b]; ++j) {
        int32_t v = static_cast<int32_t>(1 + r.below(3));  // any nonzero value keeps the key
        if (k.mask == Mask::Random && (j >= keep || (j > 0 && r.uniform(0, 1) < 0.1))) v = 0;
        if (k.mask == Mask::AllMaskedSequence && b == std::min<size_t>(1, k.batch - 1)) v = 0;
        if (k.mask == Mask::Leading && j < 3) v = 0;
        mask[m0 + j] = v;
      }
    }
  }
  auto visible = [&](size_t b, size_t i, size_t j) {
    if (k.causal && j > i) return false;
    return mask.empty() || mask[(ragged ? start[b] : b * k.seq) + j] != 0;
  };

  // Storage. Gaps (row padding, the gap row per batch, the unused part of a q_batch_stride) are NaN.
  const size_t es = dtype_size(k.t);
  size_t q_rs, q_bs, k_rs, k_bs, v_rs, v_bs;
  size_t q_col = 0, k_col = 0, v_col = 0;  // offsets of q, k, v in a packed row
  std::vector<double> qs, ks, vs;          // separate buffers (ks, vs unused when packed)
  if (k.layout == Layout::Packed) {
    q_rs = k_rs = v_rs = 3 * HD;
    q_bs = k_bs = v_bs = k.seq * 3 * HD;
    k_col = HD, v_col = 2 * HD;
    qs.assign(k.batch * q_bs, NAN);
    for (size_t row = 0; row < T; ++row)
      for (size_t e = 0; e < HD; ++e) {
        qs[row * 3 * HD + e] = Q[row * HD + e];
        qs[row * 3 * HD + HD + e] = K[row * HD + e];
        qs[row * 3 * HD + 2 * HD + e] = V[row * HD + e];
      }
  } else {
    const size_t rs = HD + k.pad;
    q_rs = k_rs = v_rs = rs;
    q_bs = k_bs = v_bs = ragged ? 0 : k.seq * rs + (k.pad ? rs : 0);
    const size_t rows_stored = ragged ? T : k.batch * (k.seq + (k.pad ? 1 : 0));
    qs.assign(rows_stored * rs, NAN), ks = qs, vs = qs;
    for (size_t b = 0; b < k.batch; ++b)
      for (size_t i = 0; i < len[b]; ++i) {
        const size_t at = ragged ? (start[b] + i) * rs : b * q_bs + i * rs, row = start[b] + i;
        for (size_t e = 0; e < HD; ++e) qs[at + e] = Q[row * HD + e], ks[at + e] = K[row * HD + e], vs[at + e] = V[row * HD + e];
      }
    if (k.layout == Layout::RaggedQOnly) {  // q holds each sequence's first row alone, q_batch_stride apart
      q_bs = HD + 16;
      qs.assign(k.batch * q_bs, NAN);
      for (size_t b = 0; b < k.batch; ++b)
        for (size_t e = 0; e < HD; ++e) qs[b * q_bs + e] = Q[start[b] * HD + e];
    }
  }
  // Output rows: [batch, q_rows] at out_batch_stride; ragged q_rows = 1: row b; ragged: row start[b] + i.
  const size_t o_rs = HD + k.pad;
  const size_t o_bs = ragged ? 0 : q_rows * o_rs + (k.pad ? o_rs : 0);
  const size_t out_rows = ragged ? (q_rows == 1 ? k.batch : T) : 0;
  const size_t out_elems = ragged ? out_rows * o_rs : k.batch * o_bs;
  auto out_at = [&](size_t b, size_t i) {
    if (!ragged) return b * o_bs + i * o_rs;
    return (q_rows == 1 ? b : start[b] + i) * o_rs;
  };

  Dev dq(ctx.s, qs.size() * es, Guard::No), dk(ctx.s, ks.size() * es, Guard::No), dv(ctx.s, vs.size() * es, Guard::No);
  Dev dmask(ctx.s, mask.size() * 4, Guard::No), dstarts(ctx.s, (k.batch + 1) * 4, Guard::No), dout(ctx.s, out_elems * es);
  std::vector<int32_t> starts32(start.begin(), start.end());
  std::vector<uint8_t> mb(mask.size() * 4), sb(starts32.size() * 4);
  std::memcpy(mb.data(), mask.data(), mb.size());
  std::memcpy(sb.data(), starts32.data(), sb.size());
  bool ok = upload(ctx.s, dq, encode(k.t, qs), c) && upload_poisoned(ctx.s, dout, k.t, c);
  if (ok && k.layout != Layout::Packed) ok = upload(ctx.s, dk, encode(k.t, ks), c) && upload(ctx.s, dv, encode(k.t, vs), c);
  if (ok && !mask.empty()) ok = upload(ctx.s, dmask, mb, c);
  if (ok && ragged) ok = upload(ctx.s, dstarts, sb, c);
  if (!ok) return ctx.report(c);

  ckc_attention_args a{};
  char* qbase = static_cast<char*>(dq.get());
  a.q = qbase + q_col * es;
  a.k = k.layout == Layout::Packed ? static_cast<const void*>(qbase + k_col * es) : dk.get();
  a.v = k.layout == Layout::Packed ? static_cast<const void*>(qbase + v_col * es) : dv.get();
  a.q_batch_stride = q_bs;
  a.q_row_stride = q_rs;
  a.k_batch_stride = k_bs;
  a.k_row_stride = k_rs;
  a.v_batch_stride = v_bs;
  a.v_row_stride = v_rs;
  if (k.layout == Layout::Ragged) a.q_batch_stride = 0;  // q read by row
  a.dtype = k.t;
  a.key_mask = mask.empty() ? nullptr : dmask.as<int32_t>();
  a.seq_starts = ragged ? dstarts.as<int32_t>() : nullptr;
  a.out = dout.get();
  a.out_batch_stride = o_bs;
  a.out_row_stride = o_rs;
  a.batch = k.batch;
  a.seq = k.seq;
  a.heads = H;
  a.head_dim = D;
  a.q_rows = q_rows;
  a.scale = scale;
  a.causal = k.causal ? 1 : 0;
  a.precision = k.prec;
  const ckc_status st = ckc_attention(ctx.s, &a);
  if (st != CKC_OK) c.fail("ckc_attention: " + status_text(st));
  std::vector<uint8_t> out;
  if (st != CKC_OK || !sync(ctx.s, c, "attention") || !download(ctx.s, dout, out, c)) return ctx.report(c);

  const bool tc = k.t != CKC_F32;
  const double c_dot = double(D) * (tc ? 0x1p-22 : 0x1p-23), c_acc = tc ? 0x1p-22 : 0x1p-23;
  const double u_P = tc ? unit_roundoff(k.t) : 0.0;
  std::vector<double> want(out_elems, 0.0), tl(out_elems, 0.0), mg(out_elems, 0.0);
  std::vector<char> written(out_elems, 0);
  parallel_for(k.batch * H, [&](size_t bh) {
    const size_t b = bh / H, h = bh % H;
    const size_t rows_b = std::min(q_rows, len[b]);
    std::vector<double> s(len[b]), mag(len[b]);
    for (size_t i = 0; i < rows_b; ++i) {
      const size_t at = out_at(b, i) + h * D;
      const double* qi = &Q[(start[b] + i) * HD + h * D];
      double mx = -INFINITY, mn = INFINITY, amax = 0;
      size_t keys = 0;
      for (size_t j = 0; j < len[b]; ++j) {
        if (!visible(b, i, j)) continue;
        const double* kj = &K[(start[b] + j) * HD + h * D];
        double dot = 0, ad = 0;
        for (size_t cc = 0; cc < D; ++cc) dot += qi[cc] * kj[cc], ad += std::fabs(qi[cc] * kj[cc]);
        s[j] = double(scale) * dot;
        mag[j] = std::fabs(double(scale)) * ad;
        mx = std::max(mx, s[j]), mn = std::min(mn, s[j]), amax = std::max(amax, mag[j]);
        ++keys;
      }
      for (size_t cc = 0; cc < D; ++cc) written[at + cc] = 1;
      if (!keys) continue;  // no key left: exactly 0 (want and tol stay 0)
      double sum = 0, vmax = 0;
      for (size_t j = 0; j < len[b]; ++j)
        if (visible(b, i, j)) sum += std::exp(s[j] - mx);
      const double e = 2.0 * u_P + 2.0 * c_dot * amax + 4e-6 + 2.0 * kU32 * (mx - mn) + double(keys) * c_acc;
      std::vector<double> o(D, 0.0), ao(D, 0.0);
      for (size_t j = 0; j < len[b]; ++j) {
        if (!visible(b, i, j)) continue;
        const double p = std::exp(s[j] - mx) / sum;
        const double* vj = &V[(start[b] + j) * HD + h * D];
        for (size_t cc = 0; cc < D; ++cc) o[cc] += p * vj[cc], ao[cc] += p * std::fabs(vj[cc]), vmax = std::max(vmax, std::fabs(vj[cc]));
      }
      const double underflow = k.t == CKC_F16 ? double(keys) * 0x1p-25 * vmax : 0.0;
      for (size_t cc = 0; cc < D; ++cc) {
        want[at + cc] = o[cc];
        const double ec = e * ao[cc] + underflow;
        tl[at + cc] = ec * (1.0 + unit_roundoff(k.t)) + unit_roundoff(k.t) * std::fabs(o[cc]) + subnormal_floor(k.t);
        mg[at + cc] = ao[cc];
      }
    }
  });
  size_t zero_rows = 0;
  for (size_t i = 0; i < out_elems; ++i)
    if (written[i]) {
      c.value(i, load_elem(k.t, out.data(), i), want[i], tl[i], mg[i]);
      if (tl[i] == 0.0) ++zero_rows;
    }
  if (zero_rows) c.note(fmt("%zu output elements of queries with no visible key, required to be exactly 0", zero_rows));
  check_untouched(c, k.t, out, written);
  ctx.report(c);
}

}  // namespace

void attention_tests(Ctx& ctx) {
  const ckc_precision D = CKC_PRECISION_DEFAULT;
  const Mask M0 = Mask::None, MR = Mask::Random;
  const Layout S = Layout::Separate, P = Layout::Packed;
  for (ckc_dtype t : {CKC_BF16, CKC_F16, CKC_F32}) {
    const bool bf = t == CKC_BF16;
    const AttnCase cases[] = {
        {t, 2, 1, 3, 64, false, M0, S, {}, 0, 0, 1.0, 0.0f, D, true},                // one token
        {t, 3, 7, 2, 80, false, MR, S, {}, 0, 8, 1.0, 0.0f, D, true},                // head dim 80, strided rows
        {t, 2, 50, 12, 64, false, M0, P, {}, 0, 0, 1.0, 0.0f, D, bf},                // ViT-B/32
        {t, 2, 77, 8, 64, true, MR, P, {}, 0, 0, 1.0, 0.0f, D, false},               // CLIP text: causal + padding
        {t, 1, 197, 12, 64, false, M0, P, {}, 0, 0, 1.0, 0.0f, D, false},            // ViT-B/16
        {t, 1, 197, 12, 64, false, M0, P, {}, 1, 0, 1.0, 0.0f, D, false},            // the class token alone
        {t, 1, 20, 2, 64, false, M0, P, {}, 1, 0, 1.0, 0.0f, D, true},
        {t, 1, 257, 4, 128, false, MR, S, {}, 0, 0, 1.0, 0.0f, D, false},            // head dim 128
        {t, 1, 257, 4, 80, false, M0, P, {}, 0, 0, 1.0, 0.0f, D, false},             // ViT-H/14 heads
        {t, 1, 577, 2, 64, false, M0, P, {}, 0, 0, 1.0, 0.0f, D, false},             // ViT-L/14@336
        {t, 1, 577, 2, 128, true, M0, S, {}, 0, 0, 1.0, 0.0f, D, false},
        {t, 2, 130, 2, 64, true, M0, S, {}, 5, 8, 1.0, 0.0f, D, false},              // q_rows < seq, causal
        {t, 3, 63, 2, 64, false, Mask::AllMaskedSequence, S, {}, 0, 0, 1.0, 0.0f, D, bf},
        {t, 2, 20, 2, 64, true, Mask::Leading, S, {}, 0, 0, 1.0, 0.0f, D, true},     // first queries see no key
        {t, 4, 77, 4, 64, true, MR, Layout::Ragged, {7, 1, 50, 77}, 0, 0, 1.0, 0.0f, D, false},
        {t, 3, 12, 2, 64, false, MR, Layout::Ragged, {5, 1, 12}, 0, 8, 1.0, 0.0f, D, true},
        {t, 3, 77, 4, 64, false, MR, Layout::Ragged, {50, 3, 77}, 1, 0, 1.0, 0.0f, D, false},
        {t, 3, 77, 4, 80, false, M0, Layout::RaggedQOnly, {50, 3, 77}, 1, 0, 1.0, 0.0f, D, false},
        {t, 3, 12, 2, 128, false, MR, Layout::RaggedQOnly, {12, 1, 5}, 1, 0, 1.0, 0.0f, D, true},
        {t, 2, 63, 2, 64, false, MR, S, {}, 0, 0, 3.0, 0.0f, D, false},              // peaky rows
        {t, 1, 7, 2, 64, false, M0, S, {}, 0, 0, 1.0, 0.05f, D, false},              // a scale of the caller's
    };
    for (const auto& k : cases) attention_case(ctx, k);
  }
  attention_case(ctx, {CKC_F32, 2, 50, 4, 64, false, MR, P, {}, 0, 0, 1.0, 0.0f, CKC_PRECISION_EXACT_F32, true});
}

}  // namespace ckt
